"""The memory model: bytes a padded batch needs, per node, edge and triplet of each processor, so that a batch that
cannot fit is refused up front with the estimate (and evaluation batches are sized to fit) instead of dying in
the allocator.

For a batch of N nodes, E edges (self-loops included), P triplets and T padded hint steps, hidden size H, F
triplet features and K hint probes, in float32 (4 bytes):

    evaluation:  4 * (H * (n_eval N + e_eval E) + F * t_eval P)                                 + hints
    training:    4 * (H * ((n_train + n_step S) N + (e_train + e_step S) E) + F * (t_train + t_step S) P
                      + n_train_hh H^2 N) + hints
    hints:       4 * (T - 1) * K * (HINT_NODE_VALUES N + HINT_EDGE_VALUES E)

with S = T - 1 processor steps. The `_eval` / `_train` counts are [N, H] / [E, H] / [P, F] tensors live at once in a
forward pass / a training step; `_step` counts are what the backward pass keeps per step; the hint term is every
step's hint predictions, which the model returns stacked, and the metrics' temporaries over them. Only tropical
attention has an `n_train_hh` term: the backward pass of its max-plus projection holds [N, H, H] tensors. The counts of
`FOOTPRINTS` were read off XLA's memory analysis of the compiled jitted step (temporaries plus arguments, CPU,
H = 128 (MPNN also 64), BFS and Bellman-Ford) and rounded up; the evaluation edge counts were measured again
(H = 32) after the edge weights were folded into the encoders (`EdgeFeatures`), which keeps 3 fewer [E, H]
tensors; `tests/test_memory_model.py` checks them against fresh measurements and docs/scaling.md ("Memory
model") tabulates them. GraphFSA's tensors are [N, states] and [E, states], not [., H]: its counts are in floats,
independent of H, and its hint predictions have no edge term.

`check_plan` runs before any data is drawn or model built (`nar train`, `nar eval`, `nar bench`): the parameters,
counted with `nnx.eval_shape` (which allocates nothing), times the copies a run holds, plus a batch of the
planned graphs (`planned_pad`). Hint steps are only known from the data, so that estimate leaves them out (a floor
in training); `check_fits` checks each padded batch again, exactly, before it reaches the device.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import TYPE_CHECKING

import jax
from flax import nnx

from nar.data.batch import PadSizes, bucket, message_graph_for
from nar.model.classes import model_class
from nar.model.net import ModelConfig

if TYPE_CHECKING:
    from nar.config import Config, EvalConfig

TRIPLET_FEATURES = 8
HINT_NODE_VALUES = 4  # floats per node, per hint probe and step (predictions plus the metrics' temporaries)
HINT_EDGE_VALUES = 1  # floats per edge, per hint probe and step (pointer logits)
BYTES = 4  # float32
# Copies of the parameters a run holds. Training: parameters and Adam's two moments in and out of the jitted step
# (XLA's memory analysis of the step: 3 + 3; the gradients reuse those buffers), and the best-validation copy.
PARAM_COPIES = {True: 7, False: 1}
# Expected out-degree of the sparse test families without a degree option (Watts-Strogatz k = 4, grid, tree).
SPARSE_DEGREE = 4
COMPLETE_HINT = ("The complete message graph costs n^2 edges per graph: use message_graph='input' (sparse), which "
                 "scales to thousands of nodes")


@dataclasses.dataclass(frozen=True)
class Footprint:
    """Tensors a processor's model keeps per node and edge (in units of H) and per triplet (units of F)."""

    n_eval: float
    e_eval: float
    n_train: float
    e_train: float
    n_step: float
    e_step: float
    t_eval: float = 0.0
    t_train: float = 0.0
    t_step: float = 0.0
    n_train_hh: float = 0.0  # [H, H] per node, live in training (tropical attention's max-plus backward)
    per_hidden: bool = True  # False: node and edge counts are floats, not multiples of H (GraphFSA)
    edge_hints: bool = True  # False: hint predictions are per node only (GraphFSA predicts its node hint alone)


_MPNN = Footprint(n_eval=13, e_eval=3.5, n_train=24, e_train=9.5, n_step=11, e_step=8)
_GMPNN = Footprint(n_eval=14, e_eval=3.5, n_train=24, e_train=9.5, n_step=17, e_step=8)  # the gate: 6 H per step
FOOTPRINTS: dict[str, Footprint] = {
    "mpnn": _MPNN,
    "pgn": _MPNN,  # MPNN's equations, messages masked ([E] booleans per step, small beside the [E, H] tensors)
    "pgn_mask": _MPNN,  # MPNN's equations on the input message graph
    "gmpnn": _GMPNN,
    "triplet_mpnn": Footprint(n_eval=10, e_eval=5.5, n_train=18, e_train=15, n_step=11, e_step=11,
                              t_eval=4.5, t_train=5.5, t_step=1),
    "triplet_gmpnn": Footprint(n_eval=10, e_eval=5.5, n_train=18, e_train=15, n_step=17, e_step=11,
                               t_eval=4.5, t_train=5.5, t_step=1),
    # n_train_hh: the default per-head maps (tropical_maps = "head_shared"); "full" (d x d maps) needs about 6.5
    "tropical": Footprint(n_eval=23, e_eval=3, n_train=4, e_train=8, n_step=36, e_step=5, n_train_hh=1.0),
    # The wrappers around their default base, MPNN (their own history terms are [N, H] per step).
    "forgetnet": _MPNN,
    "g_forgetnet": _GMPNN,
    "graphfsa": Footprint(n_eval=4, e_eval=8, n_train=4, e_train=8, n_step=10, e_step=0, per_hidden=False,
                          edge_hints=False),
    "dnar": Footprint(n_eval=6, e_eval=5, n_train=8, e_train=8, n_step=6, e_step=5),
}


def footprint(processor: str | None, pad: PadSizes | None = None) -> Footprint:
    """A processor's footprint; None (a caller that does not say) is MPNN's, or Triplet-GMPNN's for a batch with
    triplets."""
    if processor is None:
        processor = "triplet_gmpnn" if pad is not None and pad.triplets else "mpnn"
    if processor not in FOOTPRINTS:
        raise ValueError(f"no memory footprint for processor {processor!r}; known: {', '.join(FOOTPRINTS)}")
    return FOOTPRINTS[processor]


def estimate_bytes(pad: PadSizes, hidden: int, train: bool, triplet_features: int = TRIPLET_FEATURES,
                   hint_probes: int = 0, processor: str | None = None) -> int:
    """Bytes a batch of padded shape `pad` needs on its device (module docstring)."""
    fp = footprint(processor, pad)
    steps = pad.steps - 1 if train else 0
    node, edge = ((fp.n_train + fp.n_step * steps, fp.e_train + fp.e_step * steps) if train
                  else (fp.n_eval, fp.e_eval))
    tri = fp.t_train + fp.t_step * steps if train else fp.t_eval
    width = hidden if fp.per_hidden else 1
    values = width * (node * pad.nodes + edge * pad.edges) + triplet_features * tri * pad.triplets
    if train:
        values += fp.n_train_hh * hidden * hidden * pad.nodes
    per_step = HINT_NODE_VALUES * pad.nodes + (HINT_EDGE_VALUES * pad.edges if fp.edge_hints else 0)
    hints = (pad.steps - 1) * hint_probes * per_step
    return int(BYTES * (values + hints))


def available_bytes() -> int:
    """Memory of the default device: its allocator limit on accelerators, physical memory on CPU."""
    dev = jax.devices()[0]
    stats = dev.memory_stats() if dev.platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"])
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_fits(pad: PadSizes, hidden: int, train: bool, message_graph: str, limit: int | None = None,
               triplet_features: int = TRIPLET_FEATURES, hint_probes: int = 0, processor: str | None = None) -> None:
    need = estimate_bytes(pad, hidden, train, triplet_features, hint_probes, processor)
    limit = available_bytes() if limit is None else limit
    if need > limit:
        hint = (f" {COMPLETE_HINT}." if message_graph == "complete" else
                " Use fewer graphs per batch or a smaller hidden size.")
        tri = f", {pad.triplets} triplets" if pad.triplets else ""
        raise MemoryError(f"a batch of {pad.nodes} nodes, {pad.edges} edges{tri} (message graph "
                          f"'{message_graph}', hidden {hidden}, {'training' if train else 'evaluation'}) needs about "
                          f"{need / 2**30:.1f} GiB, more than the {limit / 2**30:.1f} GiB available.{hint}")


def parameter_bytes(model: ModelConfig) -> int:
    """Bytes of every variable of the model `nar.train.build_model` builds for `model`, from `nnx.eval_shape`:
    shapes only, nothing allocated (so a model too large to build is measured, not built)."""
    abstract = nnx.eval_shape(lambda: model_class(model)(model, rngs=nnx.Rngs(0)))
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(nnx.split(abstract)[1]))


def planned_pad(model: ModelConfig, n: int, graphs: int, degree: float | None = None) -> PadSizes:
    """The padded shape of a batch of `graphs` graphs of n nodes before any is drawn: n^2 edges per graph on the
    complete message graph or for dense ER graphs (`degree` None), else n self-loops plus `degree` per node;
    triplets E^2 / n per graph (n^3 when complete); one hint step (steps are known only from the data)."""
    dense = degree is None or model.graph_kind == "complete"
    edges = n * (n if dense else min(n, 1 + math.ceil(min(degree, n))))
    triplets = graphs * edges * edges // n if model.triplets else 0
    return PadSizes(bucket(graphs * n), bucket(graphs * edges), 1, graphs + 1, triplets)


def plan_bytes(model: ModelConfig, train: bool, n: int = 2, graphs: int = 1, degree: float | None = None,
               params: int | None = None) -> tuple[int, int]:
    """(parameter bytes times the copies a run holds, batch bytes) of a planned run (`planned_pad`); `params`:
    `parameter_bytes(model)` when already known."""
    params = parameter_bytes(model) if params is None else params
    batch = estimate_bytes(planned_pad(model, n, graphs, degree), model.hidden, train, model.triplet_features,
                           processor=model.processor)
    return PARAM_COPIES[train] * params, batch


def check_plan(model: ModelConfig, train: bool, n: int = 2, graphs: int = 1, degree: float | None = None,
               limit: int | None = None) -> None:
    """Refuse (MemoryError) a run whose parameters and a batch of `graphs` graphs of n nodes (`plan_bytes`) would
    not fit in `limit` (default: `available_bytes`), before any data is drawn or model built; the message gives
    the estimate, the limit and what would fit: fewer graphs per batch, smaller graphs, or a smaller hidden size."""
    limit = available_bytes() if limit is None else limit
    params = parameter_bytes(model)
    fixed, batch = plan_bytes(model, train, n, graphs, degree, params)
    if fixed + batch <= limit:
        return
    fits = lambda g, m: sum(plan_bytes(model, train, m, g, degree, params)) <= limit  # noqa: E731
    if graphs > 1 and fits(1, n):
        advice = f"at most {_largest(lambda g: fits(g, n), 1, graphs)} graphs per batch fit"
    elif n > 2 and fits(1, 2):
        advice = f"graphs of at most about {_largest(lambda m: fits(1, m), 2, n)} nodes fit"
    else:  # the parameters alone are too many; hidden sizes are multiples of the heads
        hidden = lambda k: dataclasses.replace(model, hidden=k * model.heads)  # noqa: E731
        k = _largest(lambda k: sum(plan_bytes(hidden(k), train, n, graphs, degree)) <= limit, 1,
                     model.hidden // model.heads)
        advice = f"model.hidden up to {k * model.heads} fits" if k else "not even the smallest model fits"
    if fits(1, 2) and model.graph_kind != message_graph_for(model.algorithm, "input"):  # the graphs are too big
        advice += f". {COMPLETE_HINT}"
    raise MemoryError(
        f"{'training' if train else 'evaluating'} {model.algorithm} / {model.processor} (hidden {model.hidden}) on "
        f"batches of {graphs} graph{'s' * (graphs > 1)} of {n} nodes needs at least {(fixed + batch) / 2**30:,.1f} "
        f"GiB (parameters{' and optimiser state' * train} {fixed / 2**30:,.1f} GiB, a batch on the "
        f"'{model.graph_kind}' message graph {batch / 2**30:,.1f} GiB), more than the {limit / 2**30:,.1f} GiB "
        f"available; {advice}.")


def check_training_fits(config: Config) -> None:
    """`check_plan` for a training run: `train.batch_size` graphs of the largest training size per batch, dense
    (CLRS's ER graphs)."""
    check_plan(config.model, True, max(config.train.sizes), config.train.batch_size)


def check_evaluation_fits(model: ModelConfig, cfg: EvalConfig) -> None:
    """`check_plan` for every test size of `cfg` at one graph per batch (the fewest `nar.evaluate.batches` uses),
    with the edges per node of the size's graph family (`family_degree`)."""
    for n in cfg.sizes:
        check_plan(model, False, n, 1, family_degree(cfg.family(n), cfg.degree))


def family_degree(family: str, degree: float) -> float | None:
    """The edges per node `planned_pad` plans for a graph family: None (dense) for CLRS's 'er', `degree` for
    'sparse_er', `SPARSE_DEGREE` for the other sparse families."""
    return None if family == "er" else degree if family == "sparse_er" else SPARSE_DEGREE


def _largest(fits, lo: int, hi: int) -> int | None:
    """The largest x in [lo, hi) with fits(x), for a `fits` true up to some point and false after; None if none."""
    if not fits(lo):
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo
