"""Padded batch shapes: the buckets batches are padded to, so that a run compiles once per bucket, not per batch.

A `PadSizes` is the static shape of a `nar.data.batch.Batch`. `bucket` rounds a count up to one of a few sizes per
octave; `bucket_of` is the shape a batch of samples needs; `GrowingPad` and `cover` merge shapes so a stream of
batches shares one; `check_fits` says why a batch does not fit a given shape. jraph's convention is kept: the last
graph slot is a padding graph owning every padding node and edge, and padding edges are self-loops of a padding
node, so a shape with padding edges needs a spare node.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from nar.trajectory import TrajectoryBatch

# Padding edges are self-loops of a padding node; when the real nodes fill their bucket exactly, this many nodes
# are added (not a whole bucket: node work is a large share of the cost on sparse graphs).
SPARE_NODES = 8


def bucket(x: int, minimum: int = 8) -> int:
    """Smallest value >= x of the form 2^k * {1, 1.25, 1.5, 1.75} (at least `minimum`): at most 25% padding and
    a number of distinct shapes that grows with log(x)."""
    if minimum < 1 or minimum & (minimum - 1):
        raise ValueError(f"bucket minimum must be a power of two, got {minimum}")
    b = minimum
    while b < x:
        b += max(1 << (b.bit_length() - 1) >> 2, 1)
    return b


@dataclasses.dataclass(frozen=True)
class PadSizes:
    """Static shape of a batch: nodes, edges, hint steps and triplets (all including padding) and graph slots.
    `triplets` is 0 unless the processor uses triplet features. On the complete message graph the triplets are laid
    out densely, `triplet_nodes` = M node positions per sample slot, and `triplets` = (graphs - 1) * M^3 follows."""

    nodes: int
    edges: int
    steps: int
    graphs: int
    triplets: int = 0
    triplet_nodes: int = 0


class GrowingPad:
    """Pads each batch of a stream to the largest bucket seen so far in each dimension, so a training run
    compiles at most once per growth of nodes, edges or steps (a handful of times), not once per combination."""

    def __init__(self, start: PadSizes | None = None):
        self.current = start

    def __call__(self, need: PadSizes) -> PadSizes:
        self.current = cover([need] if self.current is None else [self.current, need])
        return self.current


def cover(sizes: list[PadSizes]) -> PadSizes:
    """A padded shape every one of `sizes` fits in. A batch whose edges get padded beyond its own bucket needs a
    spare node for the padding edges, so nodes grow by `SPARE_NODES` where that node could be missing."""
    top = PadSizes(*(max(getattr(s, f.name) for s in sizes) for f in dataclasses.fields(PadSizes)))
    if any(s.edges < top.edges and s.nodes == top.nodes for s in sizes):
        top = dataclasses.replace(top, nodes=top.nodes + SPARE_NODES)
    return dense_triplet_count(top)


def dense_triplet_count(pad: PadSizes) -> PadSizes:
    """A dense-triplet shape's triplet count follows from its slots and M: (graphs - 1) * M^3."""
    return dataclasses.replace(pad, triplets=(pad.graphs - 1) * pad.triplet_nodes**3) if pad.triplet_nodes else pad


def dense_triplet_nodes(n_node: np.ndarray) -> int:
    """M, the node positions per sample slot of the dense triplet layout: a bucket of the largest sample."""
    return bucket(int(np.max(n_node, initial=1)), 4)


def bucket_of(tb: TrajectoryBatch, edges: int, num_graphs: int, triplets: int | None = None,
              dense_triplets: bool = False) -> PadSizes:
    """The bucket of a batch of `tb`'s samples with `edges` processing edges, `num_graphs` graph slots (plus the
    padding graph) and `triplets` listed triplets (None: no list), or the dense triplet layout."""
    nodes = int(tb.n_node.sum())
    pad_edges = bucket(edges)
    pad_nodes = bucket(nodes)
    if pad_edges > edges and pad_nodes == nodes:  # padding edges need a padding node: add a few, not a bucket
        pad_nodes += SPARE_NODES
    steps = bucket(int(tb.n_step.max()), 4)
    if dense_triplets:
        return dense_triplet_count(PadSizes(pad_nodes, pad_edges, steps, num_graphs + 1, 0,
                                            dense_triplet_nodes(tb.n_node)))
    return PadSizes(pad_nodes, pad_edges, steps, num_graphs + 1, 0 if triplets is None else bucket(triplets))


def check_fits(tb: TrajectoryBatch, pad: PadSizes, edges: int, num_graphs: int, triplets: int | None,
               want_triplets: bool, dense_triplets: bool) -> None:
    """Raise a ValueError naming the batch and `pad` unless a batch of `tb`'s samples (`edges` processing edges,
    `num_graphs` slots, `triplets` listed triplets or None) fits `pad`, with a spare node for padding edges, a
    spare graph slot, at least 2 steps and the same triplet layout."""
    nodes, steps, listed = int(tb.n_node.sum()), int(tb.n_step.max()), triplets or 0
    slot_nodes = dense_triplet_nodes(tb.n_node) if dense_triplets else 0
    if (nodes > pad.nodes or edges > pad.edges or (edges < pad.edges and nodes == pad.nodes) or steps > pad.steps
            or pad.steps < 2 or pad.graphs < num_graphs + 1 or listed > pad.triplets
            or (triplets is None and not dense_triplets and pad.triplets)
            or (dense_triplets and slot_nodes > pad.triplet_nodes)
            or (not dense_triplets and pad.triplet_nodes)):
        what = (f", samples of up to {int(tb.n_node.max())} nodes (dense triplets)" if dense_triplets
                else f", {listed} triplets" if want_triplets else ", no triplets")
        raise ValueError(f"batch of {nodes} nodes, {edges} edges, {steps} steps, {len(tb)} samples{what} does not "
                         f"fit the padded shape {pad} (padding edges need a spare node; a spare graph slot and at "
                         f"least 2 steps are needed)")
