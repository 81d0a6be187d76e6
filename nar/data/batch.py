"""Compact trajectories -> padded device batches on the processing graph.

A `Batch` is what the model consumes: a `jraph.GraphsTuple` holding the processing graph (the message graph the
processor passes messages over) and every probe laid out on it. Node pointers become edge indices: node i
pointing to j is the processing edge j -> i (sender j, receiver i), so a pointer is decoded by a softmax over the
edges a node receives, and memory grows with edges, not n^2.

Message graphs:
- `complete`: every ordered pair of nodes of a sample, self-pairs included (CLRS's MPNN and PGN; always used for
  sorts). PGN masks its messages on it to CLRS's adjacency (`nar.model.net.adjacency`, from the encoded `adj` and
  pointers), so its pointers are still decoded over every node.
- `input`: the input graph made symmetric, plus self-loops (`pgn_mask`, the sparse neighbours-only PGN). Every
  pointer of our graph algorithms follows an input edge, so the pointer edges CLRS adds to PGN's adjacency are
  already present; a pointer that is not an edge is an error, not a silent extra edge.

Batches are padded to shape buckets (`bucket`), so a run compiles once per bucket. jraph's convention is kept:
the last graph slot is a padding graph that owns every padding node and edge.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any, NamedTuple

import jraph
import numpy as np

from nar.specs import NUM_CLASSES, SPECS, Location, Stage, Type
from nar.trajectory import TrajectoryBatch

MESSAGE_GRAPHS = ("complete", "input")
# Padding edges are self-loops of a padding node; when the real nodes fill their bucket exactly, this many nodes
# are added (not a whole bucket: node work is a large share of the cost on sparse graphs).
SPARE_NODES = 8
# Host bytes per candidate pair while enumerating triplets (int64 index arrays).
TRIPLET_HOST_BYTES = 64


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


class Batch(NamedTuple):
    """One padded batch (a pytree of arrays; see the module docstring).

    Probe layouts by (location, type), T = padded steps (hints only get the leading T axis):
    node scalar/mask -> float [N]; node mask_one -> float one-hot [N]; node categorical -> int class [N];
    node pointer -> int edge index [N] (the edge from the target to the node); edge scalar/mask -> float [E];
    graph scalar -> float [G]; graph categorical -> int class [G]. Sorting outputs `pred` become a permutation
    pointer (the head re-pointed to the tail) plus `pred_mask`, the head as mask_one, as CLRS does.
    """

    graph: jraph.GraphsTuple  # senders/receivers (global ids, sorted by receiver), n_node/n_edge [G]
    node_graph: Any  # [N] graph slot of each node (padding nodes: G - 1)
    self_edge: Any  # [N] index of each node's self-loop edge (padding nodes: 0, never scored)
    lengths: Any  # [G] hint steps T of each sample (0 for padding/empty slots)
    inputs: Mapping[str, Any]
    hints: Mapping[str, Any]
    outputs: Mapping[str, Any]
    # Triplets, only when requested (`make_batch(..., triplets=True)`). On a sparse message graph, `triplets`:
    # [P, 3] edge indices (i -> j, i -> k, j -> k), sorted by the last, padding rows -1. On the complete graph every
    # (i, j, k) of a sample is a triplet, computed densely from `dense_nodes`: [G - 1, M] global id of each sample
    # slot's a-th node (-1 beyond its size), whose shape gives the processor its static M.
    triplets: Any = None
    dense_nodes: Any = None

    @property
    def pad_sizes(self) -> PadSizes:
        """The static shape of this batch (padded nodes, edges, steps, graph slots, triplets)."""
        triplets = 0 if self.triplets is None else int(self.triplets.shape[0])
        slot_nodes = 0 if self.dense_nodes is None else int(self.dense_nodes.shape[1])
        return _dense_triplet_count(PadSizes(int(self.node_graph.shape[0]), int(self.graph.senders.shape[0]),
                                             int(next(iter(self.hints.values())).shape[0]) if self.hints else 1,
                                             int(self.lengths.shape[0]), triplets, slot_nodes))


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
    return _dense_triplet_count(top)


def _dense_triplet_count(pad: PadSizes) -> PadSizes:
    """A dense-triplet shape's triplet count follows from its slots and M: (graphs - 1) * M^3."""
    return dataclasses.replace(pad, triplets=(pad.graphs - 1) * pad.triplet_nodes**3) if pad.triplet_nodes else pad


def message_graph_edges(n_node: np.ndarray, senders: np.ndarray, receivers: np.ndarray, n_edge: np.ndarray,
                        message_graph: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Processing edges (global sender and receiver ids sorted by receiver, then sender) and edges per sample."""
    node_off = np.concatenate([[0], np.cumsum(n_node, dtype=np.int64)])
    if message_graph == "complete":
        n = n_node.astype(np.int64)
        per = n * n
        sample = np.repeat(np.arange(len(n)), per)
        k = np.arange(per.sum()) - np.repeat(np.cumsum(per) - per, per)
        size = n[sample]
        return node_off[sample] + k % size, node_off[sample] + k // size, per
    if message_graph != "input":
        raise ValueError(f"unknown message graph {message_graph!r}; known: {', '.join(MESSAGE_GRAPHS)}")
    sample = np.repeat(np.arange(len(n_node)), n_edge)
    s, r = node_off[sample] + senders, node_off[sample] + receivers
    loops = np.arange(node_off[-1])
    total = max(int(node_off[-1]), 1)
    key = np.unique(np.concatenate([r * total + s, s * total + r, loops * total + loops]))
    glob_r, glob_s = key // total, key % total
    per = np.bincount(np.searchsorted(node_off, glob_r, side="right") - 1, minlength=len(n_node))
    return glob_s, glob_r, per


def triplet_edges(senders: np.ndarray, receivers: np.ndarray, num_nodes: int) -> np.ndarray:
    """Triplets of a processing graph (edges sorted by receiver, then sender): every (i, j, k) with edges i -> j,
    i -> k and j -> k, as rows of edge indices (i->j, i->k, j->k) sorted by the edge j -> k they feed.

    On a complete graph these are CLRS's n^3 triplets per sample; on a sparse graph (self-loops included) only the
    triangles, so the count grows with sum_i deg(i)^2, not n^3. Every edge j -> k gets at least the triplet i = j
    (self-loop j -> j), so no edge's triplet maximum is empty.
    """
    senders, receivers = np.asarray(senders, np.int64), np.asarray(receivers, np.int64)
    total = max(int(num_nodes), 1)
    key = receivers * total + senders  # sorted: edges are ordered by receiver, then sender
    by_sender = np.argsort(senders, kind="stable")
    deg = np.bincount(senders, minlength=total)
    first = np.cumsum(deg) - deg
    per_a = deg[senders]  # edge a = i -> j pairs with every edge b = i -> k
    need, have = int(per_a.sum()) * TRIPLET_HOST_BYTES, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > have // 2:
        raise MemoryError(f"enumerating the triplets of {len(senders)} edges ({int(per_a.sum())} candidate pairs) "
                          f"needs about {need / 2**30:.1f} GiB of host memory, more than half of the "
                          f"{have / 2**30:.1f} GiB here; triplets cost n^3 per graph on the complete graph: use "
                          f"message_graph='input' or smaller graphs")
    a = np.repeat(np.arange(len(senders)), per_a)
    offset = np.arange(len(a)) - np.repeat(np.cumsum(per_a) - per_a, per_a)
    b = by_sender[first[senders[a]] + offset]
    want = receivers[b] * total + receivers[a]  # the edge j -> k: receiver k = receivers[b], sender j = receivers[a]
    c = np.minimum(np.searchsorted(key, want), max(len(key) - 1, 0))
    keep = key[c] == want if len(key) else np.zeros(0, bool)
    rows = np.stack([a[keep], b[keep], c[keep]], axis=1)
    return rows[np.argsort(rows[:, 2], kind="stable")].astype(np.int32)


def message_graph_for(algorithm: str, message_graph: str) -> str:
    """The message graph a batch of `algorithm` is laid out on. An array algorithm (no input graph `A`) always
    needs every pair: its pointers (a sort's permutation among them) may name any element."""
    spec = SPECS[algorithm]
    if "A" not in spec or any(t == Type.SHOULD_BE_PERMUTATION for _, _, t in spec.values()):
        return "complete"
    return message_graph


def pad_sizes_for(tb: TrajectoryBatch, message_graph: str, num_graphs: int, triplets: bool = False) -> PadSizes:
    """The bucket a batch of these samples falls in."""
    message_graph = message_graph_for(tb.algorithm, message_graph)
    s, r, per = message_graph_edges(tb.n_node, tb.senders, tb.receivers, tb.n_edge, message_graph)
    dense = triplets and message_graph == "complete"  # the dense layout: no triplet list at all
    num_triplets = len(triplet_edges(s, r, int(tb.n_node.sum()))) if triplets and not dense else None
    return _bucket_of(tb, int(per.sum()), num_graphs, num_triplets, dense)


def dense_triplet_nodes(n_node: np.ndarray) -> int:
    """M, the node positions per sample slot of the dense triplet layout: a bucket of the largest sample."""
    return bucket(int(np.max(n_node, initial=1)), 4)


def _bucket_of(tb: TrajectoryBatch, edges: int, num_graphs: int, triplets: int | None = None,
               dense_triplets: bool = False) -> PadSizes:
    nodes = int(tb.n_node.sum())
    pad_edges = bucket(edges)
    pad_nodes = bucket(nodes)
    if pad_edges > edges and pad_nodes == nodes:  # padding edges need a padding node: add a few, not a bucket
        pad_nodes += SPARE_NODES
    steps = bucket(int(tb.n_step.max()), 4)
    if dense_triplets:
        return _dense_triplet_count(PadSizes(pad_nodes, pad_edges, steps, num_graphs + 1, 0,
                                             dense_triplet_nodes(tb.n_node)))
    return PadSizes(pad_nodes, pad_edges, steps, num_graphs + 1, 0 if triplets is None else bucket(triplets))


def _edge_lookup(key_sorted: np.ndarray, total: int, r: np.ndarray, s: np.ndarray, what: str) -> np.ndarray:
    """Index of processing edge s -> r for each pair; a pair that is not an edge is an error naming the probe."""
    want = r.astype(np.int64) * total + s
    idx = np.searchsorted(key_sorted, want)
    idx = np.minimum(idx, len(key_sorted) - 1)
    bad = key_sorted[idx] != want
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{what}: node {int(r[i])} points to node {int(s[i])}, which is not an edge of the "
                         f"processing graph; use message_graph='complete'")
    return idx


def make_batch(tb: TrajectoryBatch, message_graph: str, pad: PadSizes | GrowingPad | None = None,
               num_graphs: int | None = None, random_pos: np.random.Generator | None = None,
               triplets: bool = False) -> Batch:
    """Lay out a `TrajectoryBatch` on its processing graph, padded to `pad` (default: its bucket; a `GrowingPad`
    pads to the largest bucket of its stream so far).

    `num_graphs` graph slots (default: the number of samples) leave room for a short last batch. With
    `random_pos`, the `pos` input is replaced by sorted uniform draws per sample, as CLRS trains (Ibarz et al.).
    With `triplets`, the batch carries the processing graph's triplets for Triplet-GMPNN: their list
    (`triplet_edges`) on a sparse message graph, the dense node table `dense_nodes` on the complete one.
    """
    algo = tb.algorithm
    spec = SPECS[algo]
    message_graph = message_graph_for(algo, message_graph)
    S = len(tb)
    num_graphs = S if num_graphs is None else num_graphs
    if num_graphs < S:
        raise ValueError(f"num_graphs={num_graphs} is smaller than the {S} samples of the batch")
    senders, receivers, e_per = message_graph_edges(tb.n_node, tb.senders, tb.receivers, tb.n_edge, message_graph)
    n_real, e_real, t_max = int(tb.n_node.sum()), len(senders), int(tb.n_step.max())
    dense_tri = triplets and message_graph == "complete"
    tri = triplet_edges(senders, receivers, n_real) if triplets and not dense_tri else None
    if not isinstance(pad, PadSizes):
        need = _bucket_of(tb, len(senders), num_graphs, None if tri is None else len(tri), dense_tri)
        pad = need if pad is None else pad(need)
    pad = _dense_triplet_count(pad)
    N, E, T, G = pad.nodes, pad.edges, pad.steps, pad.graphs
    p_real = 0 if tri is None else len(tri)
    m_real = dense_triplet_nodes(tb.n_node) if dense_tri else 0
    if (n_real > N or e_real > E or (e_real < E and n_real == N) or t_max > T or T < 2 or G < num_graphs + 1
            or p_real > pad.triplets or (tri is None and not dense_tri and pad.triplets)
            or (dense_tri and m_real > pad.triplet_nodes)
            or (not dense_tri and pad.triplet_nodes)):
        what = (f", samples of up to {int(tb.n_node.max())} nodes (dense triplets)" if dense_tri
                else f", {p_real} triplets" if triplets else ", no triplets")
        raise ValueError(f"batch of {n_real} nodes, {e_real} edges, {t_max} steps, {S} samples{what} does not fit "
                         f"the padded shape {pad} (padding edges need a spare node; a spare graph slot and at least "
                         f"2 steps are needed)")
    if tri is not None:
        tri = np.concatenate([tri, np.full((pad.triplets - p_real, 3), -1, np.int32)])
    total = max(n_real, 1)
    node_off = np.concatenate([[0], np.cumsum(tb.n_node, dtype=np.int64)])
    node_sample = np.repeat(np.arange(S), tb.n_node)
    key = receivers * total + senders  # sorted by construction

    # Structure; padding nodes belong to the padding graph G - 1, padding edges are self-loops of node N - 1
    # (real values everywhere: no inf or NaN can reach a gradient through padding).
    g_senders = np.full(E, N - 1, np.int32)
    g_receivers = np.full(E, N - 1, np.int32)
    g_senders[:e_real], g_receivers[:e_real] = senders, receivers
    n_node = np.zeros(G, np.int32)
    n_node[:S] = tb.n_node
    n_node[-1] = N - n_real  # the padding graph (possibly empty)
    n_edge = np.zeros(G, np.int32)
    n_edge[:S] = e_per
    n_edge[-1] = E - e_real
    graph = jraph.GraphsTuple(nodes=None, edges=None, globals=None, senders=g_senders, receivers=g_receivers,
                              n_node=n_node, n_edge=n_edge)
    node_graph = np.full(N, G - 1, np.int32)
    node_graph[:n_real] = node_sample
    self_edge = np.zeros(N, np.int32)  # padding nodes: any edge (never scored)
    loops = np.arange(n_real)
    self_edge[:n_real] = _edge_lookup(key, total, loops, loops, "self-loop")
    lengths = np.zeros(G, np.int32)
    lengths[:S] = tb.n_step

    # Time-major scatter indices for node hints: value k of sample s is (t, v) = divmod(k - start, n_s).
    hint_sample = np.repeat(np.arange(S), tb.n_step * tb.n_node)
    starts = np.repeat(np.cumsum(tb.n_step * tb.n_node) - tb.n_step * tb.n_node, tb.n_step * tb.n_node)
    within = np.arange(len(hint_sample)) - starts
    hint_t, hint_v = np.divmod(within, tb.n_node[hint_sample].astype(np.int64))
    hint_node = node_off[hint_sample] + hint_v
    step_sample = np.repeat(np.arange(S), tb.n_step)
    step_t = np.arange(len(step_sample)) - np.repeat(np.cumsum(tb.n_step) - tb.n_step, tb.n_step)
    edge_sample = np.repeat(np.arange(S), tb.n_edge)
    in_s = node_off[edge_sample] + tb.senders
    in_r = node_off[edge_sample] + tb.receivers

    def node_pointer(targets_local: np.ndarray, nodes: np.ndarray, samples: np.ndarray, name: str) -> np.ndarray:
        return _edge_lookup(key, total, nodes, node_off[samples] + targets_local, f"{algo} probe {name!r}")

    inputs, hints, outputs = {}, {}, {}
    for name, (stage, location, type_) in spec.items():
        raw = tb.probes[name]
        if name == "pos" and random_pos is not None:
            raw = _random_pos(random_pos, tb.n_node)
        if stage == Stage.HINT:
            if location == Location.GRAPH or type_ == Type.MASK_ONE:
                dense = np.zeros((T, G) if location == Location.GRAPH else (T, N), _dtype(type_))
                if location == Location.GRAPH:
                    dense[step_t, step_sample] = raw
                else:
                    dense[step_t, node_off[step_sample] + raw] = 1.0
            else:
                dense = np.zeros((T, N), _dtype(type_))
                if type_ == Type.POINTER:
                    dense[:, :] = self_edge[None, :]
                    dense[hint_t, hint_node] = node_pointer(raw, hint_node, hint_sample, name)
                else:
                    dense[hint_t, hint_node] = raw
            hints[name] = dense
            continue
        target = inputs if stage == Stage.INPUT else outputs
        if location == Location.EDGE:
            dense = np.zeros(E, np.float32)
            dense[_edge_lookup(key, total, in_r, in_s, f"{algo} probe {name!r}")] = raw
        elif location == Location.GRAPH:
            dense = np.zeros(G, _dtype(type_))
            dense[:S] = raw
        elif type_ == Type.MASK_ONE:
            dense = np.zeros(N, np.float32)
            dense[node_off[:-1] + raw] = 1.0
        elif type_ in (Type.POINTER, Type.SHOULD_BE_PERMUTATION):
            dense = self_edge.copy()
            nodes = np.arange(n_real)
            if type_ == Type.SHOULD_BE_PERMUTATION:
                # CLRS: the head (self-pointer) is re-pointed to the tail (the node nobody points to).
                head = raw == nodes - node_off[node_sample]
                pointed = np.zeros(n_real, bool)
                pointed[(node_off[node_sample] + raw)[~head]] = True
                tail_of = np.zeros(S, np.int64)
                tail_of[node_sample[~pointed]] = np.flatnonzero(~pointed) - node_off[node_sample[~pointed]]
                raw = np.where(head, tail_of[node_sample], raw)
                mask = np.zeros(N, np.float32)
                mask[:n_real] = head
                outputs[f"{name}_mask"] = mask
            dense[:n_real] = node_pointer(raw, nodes, node_sample, name)
        else:
            dense = np.zeros(N, _dtype(type_))
            dense[:n_real] = raw
        target[name] = dense
    dense_nodes = None
    if dense_tri:
        dense_nodes = np.full((G - 1, pad.triplet_nodes), -1, np.int32)
        slot_pos = np.arange(n_real) - node_off[node_sample]
        dense_nodes[node_sample, slot_pos] = np.arange(n_real)
    return Batch(graph, node_graph, self_edge, lengths, inputs, hints, outputs, tri, dense_nodes)


def _dtype(type_: str) -> type:
    return np.int32 if type_ in (Type.CATEGORICAL, Type.POINTER) else np.float32


def _random_pos(rng: np.random.Generator, n_node: np.ndarray) -> np.ndarray:
    """Sorted U[0, 1) draws per sample (CLRS's randomised `pos`)."""
    u = rng.random(int(n_node.sum()))
    sample = np.repeat(np.arange(len(n_node)), n_node)
    return u[np.lexsort((u, sample))].astype(np.float32)


def output_probes(algorithm: str) -> dict[str, tuple[str, str, int | None]]:
    """Output probes as the model sees them: name -> (location, type, classes); sorting `pred` becomes the
    permutation pointer `pred` plus its head `pred_mask`."""
    out = {}
    for name, (stage, location, type_) in SPECS[algorithm].items():
        if stage != Stage.OUTPUT:
            continue
        if type_ == Type.SHOULD_BE_PERMUTATION:
            out[name] = (location, Type.PERMUTATION_POINTER, None)
            out[f"{name}_mask"] = (location, Type.MASK_ONE, None)
        else:
            out[name] = (location, type_, NUM_CLASSES.get((algorithm, name)))
    return out


def probes(algorithm: str, stage: str) -> dict[str, tuple[str, str, int | None]]:
    """Input or hint probes: name -> (location, type, classes)."""
    if stage == Stage.OUTPUT:
        return output_probes(algorithm)
    return {name: (loc, t, NUM_CLASSES.get((algorithm, name)))
            for name, (st, loc, t) in SPECS[algorithm].items() if st == stage}
