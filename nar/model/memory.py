"""A memory estimate for a padded batch, so that a batch that cannot fit is refused up front with the estimate
instead of dying in the allocator.

The model's memory is dominated by [E, H] edge tensors (messages and their MLP, pointer decoders): about
`EDGE_TENSORS_EVAL` of them live at once in evaluation; training keeps `EDGE_TENSORS_PER_STEP` more per hint
step for the backward pass. Node tensors ([N, H]) are counted the same way but matter only on sparse graphs.
Triplet-GMPNN adds [P, F] triplet tensors (P triplets: n^3 per graph on the complete graph; F triplet features,
8 by default), counted the same way with their own multipliers, so in total

    bytes = 4 * ((E + N) * H * (8 + 6 (T - 1)) + P * F * (4 + 3 (T - 1)))      (training; T - 1 = 0 in evaluation)

plus, in training and evaluation alike, the hint predictions of every step, which the model returns stacked:
`STORED_HINT_COPIES` x 4 x (T - 1) x (E + N) per hint probe (an upper bound: pointer hints are [E] per step, node
hints [N]; the factor counts the scan's output buffer and the metrics' temporaries). For long trajectories (DFS at
n = 1,024: 3,072 steps) this term dominates and bounds the graphs per evaluation batch.
"""

from __future__ import annotations

import os

import jax

from nar.data.batch import PadSizes

EDGE_TENSORS_EVAL = 8
EDGE_TENSORS_PER_STEP = 6
TRIPLET_FEATURES = 8
TRIPLET_TENSORS_EVAL = 4
TRIPLET_TENSORS_PER_STEP = 3
STORED_HINT_COPIES = 2
BYTES = 4  # float32


def estimate_bytes(pad: PadSizes, hidden: int, train: bool, triplet_features: int = TRIPLET_FEATURES,
                   hint_probes: int = 0) -> int:
    steps = pad.steps - 1 if train else 0
    edges = (pad.edges + pad.nodes) * hidden * BYTES * (EDGE_TENSORS_EVAL + EDGE_TENSORS_PER_STEP * steps)
    triplets = pad.triplets * triplet_features * BYTES * (TRIPLET_TENSORS_EVAL + TRIPLET_TENSORS_PER_STEP * steps)
    hints = STORED_HINT_COPIES * BYTES * (pad.steps - 1) * (pad.edges + pad.nodes) * hint_probes
    return edges + triplets + hints


def available_bytes() -> int:
    """Memory of the default device: its allocator limit on accelerators, physical memory on CPU."""
    dev = jax.devices()[0]
    stats = dev.memory_stats() if dev.platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"])
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_fits(pad: PadSizes, hidden: int, train: bool, message_graph: str, limit: int | None = None,
               triplet_features: int = TRIPLET_FEATURES, hint_probes: int = 0) -> None:
    need = estimate_bytes(pad, hidden, train, triplet_features, hint_probes)
    limit = available_bytes() if limit is None else limit
    if need > limit:
        hint = (" The complete message graph costs n^2 edges per graph: use message_graph='input' (sparse), which "
                "scales to thousands of nodes." if message_graph == "complete" else
                " Use fewer graphs per batch or a smaller hidden size.")
        tri = f", {pad.triplets} triplets" if pad.triplets else ""
        raise MemoryError(f"a batch of {pad.nodes} nodes, {pad.edges} edges{tri} (message graph "
                          f"'{message_graph}', hidden {hidden}, {'training' if train else 'evaluation'}) needs about "
                          f"{need / 2**30:.1f} GiB, more than the {limit / 2**30:.1f} GiB available.{hint}")
