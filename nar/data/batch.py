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

Batches are padded to shape buckets (`nar.data.padding`: `bucket`, `PadSizes`, `GrowingPad`, `cover`, re-exported
here), so a run compiles once per bucket. jraph's convention is kept: the last graph slot is a padding graph that
owns every padding node and edge.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, NamedTuple

import jraph
import numpy as np

from nar.data.padding import (
    GrowingPad,
    PadSizes,
    bucket,
    bucket_of,
    check_fits,
    cover,
    dense_triplet_count,
)
from nar.specs import NUM_CLASSES, SPECS, Location, Stage, Type
from nar.trajectory import TrajectoryBatch

__all__ = ["MESSAGE_GRAPHS", "Batch", "GrowingPad", "PadSizes", "bucket", "cover", "make_batch", "message_graph_edges",
           "message_graph_for", "output_probes", "pad_sizes_for", "probes", "triplet_edges"]

MESSAGE_GRAPHS = ("complete", "input")
# Host bytes per candidate pair while enumerating triplets (int64 index arrays).
TRIPLET_HOST_BYTES = 64


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
        return dense_triplet_count(PadSizes(int(self.node_graph.shape[0]), int(self.graph.senders.shape[0]),
                                            int(next(iter(self.hints.values())).shape[0]) if self.hints else 1,
                                            int(self.lengths.shape[0]), triplets, slot_nodes))


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
    return bucket_of(tb, int(per.sum()), num_graphs, num_triplets, dense)


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
    message_graph = message_graph_for(tb.algorithm, message_graph)
    num_graphs = len(tb) if num_graphs is None else num_graphs
    if num_graphs < len(tb):
        raise ValueError(f"num_graphs={num_graphs} is smaller than the {len(tb)} samples of the batch")
    senders, receivers, e_per = message_graph_edges(tb.n_node, tb.senders, tb.receivers, tb.n_edge, message_graph)
    dense_tri = triplets and message_graph == "complete"
    tri = triplet_edges(senders, receivers, int(tb.n_node.sum())) if triplets and not dense_tri else None
    num_tri = None if tri is None else len(tri)
    if not isinstance(pad, PadSizes):
        need = bucket_of(tb, len(senders), num_graphs, num_tri, dense_tri)
        pad = need if pad is None else pad(need)
    pad = dense_triplet_count(pad)
    check_fits(tb, pad, len(senders), num_graphs, num_tri, triplets, dense_tri)
    at = _Layout.of(tb, senders, receivers)
    graph, node_graph, self_edge, lengths = _structure(tb, pad, senders, receivers, e_per, at)
    inputs, hints, outputs = _lay_out_probes(tb, pad, at, self_edge, random_pos)
    if tri is not None:
        tri = np.concatenate([tri, np.full((pad.triplets - len(tri), 3), -1, np.int32)])
    dense_nodes = _dense_node_table(pad, at) if dense_tri else None
    return Batch(graph, node_graph, self_edge, lengths, inputs, hints, outputs, tri, dense_nodes)


class _Layout(NamedTuple):
    """Where a batch's real nodes and edges sit: each sample's first global node id, each real node's sample, and
    the processing edges' sorted keys (receiver * total + sender) that `edge` searches."""

    node_off: np.ndarray  # [S + 1]
    node_sample: np.ndarray  # [real nodes]
    key: np.ndarray  # [real edges], sorted by construction
    total: int  # real nodes, at least 1

    @classmethod
    def of(cls, tb: TrajectoryBatch, senders: np.ndarray, receivers: np.ndarray) -> _Layout:
        """The layout of `tb`'s samples on the processing edges senders -> receivers (sorted by receiver)."""
        total = max(int(tb.n_node.sum()), 1)
        node_off = np.concatenate([[0], np.cumsum(tb.n_node, dtype=np.int64)])
        return cls(node_off, np.repeat(np.arange(len(tb)), tb.n_node), receivers * total + senders, total)

    def edge(self, r: np.ndarray, s: np.ndarray, what: str) -> np.ndarray:
        """Index of processing edge s -> r (global ids) for each pair; a pair that is not an edge is an error
        naming the probe (`what`)."""
        want = r.astype(np.int64) * self.total + s
        idx = np.minimum(np.searchsorted(self.key, want), len(self.key) - 1)
        bad = self.key[idx] != want
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{what}: node {int(r[i])} points to node {int(s[i])}, which is not an edge of the "
                             f"processing graph; use message_graph='complete'")
        return idx

    def pointer(self, targets: np.ndarray, nodes: np.ndarray, samples: np.ndarray, what: str) -> np.ndarray:
        """Edge index of each pointer from global node `nodes` to its sample-local target."""
        return self.edge(nodes, self.node_off[samples] + targets, what)


def _structure(tb: TrajectoryBatch, pad: PadSizes, senders: np.ndarray, receivers: np.ndarray, e_per: np.ndarray,
               at: _Layout) -> tuple[jraph.GraphsTuple, np.ndarray, np.ndarray, np.ndarray]:
    """The padded graph, each node's graph slot, each node's self-loop edge and each slot's hint steps. Padding
    nodes belong to the padding graph G - 1, padding edges are self-loops of node N - 1 (real values everywhere:
    no inf or NaN can reach a gradient through padding)."""
    N, E, G, S = pad.nodes, pad.edges, pad.graphs, len(tb)
    n_real, e_real = len(at.node_sample), len(senders)
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
    node_graph[:n_real] = at.node_sample
    self_edge = np.zeros(N, np.int32)  # padding nodes: any edge (never scored)
    loops = np.arange(n_real)
    self_edge[:n_real] = at.edge(loops, loops, "self-loop")
    lengths = np.zeros(G, np.int32)
    lengths[:S] = tb.n_step
    return graph, node_graph, self_edge, lengths


def _lay_out_probes(tb: TrajectoryBatch, pad: PadSizes, at: _Layout, self_edge: np.ndarray,
                    random_pos: np.random.Generator | None) -> tuple[dict, dict, dict]:
    """(inputs, hints, outputs) of the batch, every probe in its `Batch` layout, in the spec's order."""
    inputs, hints, outputs = {}, {}, {}
    steps = _HintSteps.of(tb, at)
    for name, (stage, location, type_) in SPECS[tb.algorithm].items():
        raw = tb.probes[name]
        what = f"{tb.algorithm} probe {name!r}"
        if name == "pos" and random_pos is not None:
            raw = _random_pos(random_pos, tb.n_node)
        if stage == Stage.HINT:
            hints[name] = _hint(raw, location, type_, pad, at, steps, self_edge, what)
        elif location == Location.EDGE:
            (inputs if stage == Stage.INPUT else outputs)[name] = _edge_probe(raw, tb, pad, at, what)
        elif location == Location.GRAPH:
            dense = np.zeros(pad.graphs, _dtype(type_))
            dense[:len(tb)] = raw
            (inputs if stage == Stage.INPUT else outputs)[name] = dense
        else:
            dense, mask = _node_probe(raw, type_, pad, at, self_edge, what)
            if mask is not None:  # before the pointer itself, as CLRS orders its outputs
                outputs[f"{name}_mask"] = mask
            (inputs if stage == Stage.INPUT else outputs)[name] = dense
    return inputs, hints, outputs


class _HintSteps(NamedTuple):
    """Time-major scatter indices of hints: node hint value k of sample s sits at (t, v) = divmod(k - start, n_s),
    global node `node`; graph hint value k at (step_t, slot step_sample)."""

    t: np.ndarray
    node: np.ndarray
    sample: np.ndarray
    step_t: np.ndarray
    step_sample: np.ndarray

    @classmethod
    def of(cls, tb: TrajectoryBatch, at: _Layout) -> _HintSteps:
        """The scatter indices of `tb`'s hints on layout `at`."""
        S, per = len(tb), tb.n_step * tb.n_node
        sample = np.repeat(np.arange(S), per)
        within = np.arange(len(sample)) - np.repeat(np.cumsum(per) - per, per)
        t, v = np.divmod(within, tb.n_node[sample].astype(np.int64))
        step_sample = np.repeat(np.arange(S), tb.n_step)
        step_t = np.arange(len(step_sample)) - np.repeat(np.cumsum(tb.n_step) - tb.n_step, tb.n_step)
        return cls(t, at.node_off[sample] + v, sample, step_t, step_sample)


def _hint(raw: np.ndarray, location: str, type_: str, pad: PadSizes, at: _Layout, steps: _HintSteps,
          self_edge: np.ndarray, what: str) -> np.ndarray:
    """One hint probe, [T, G] for a graph hint, else [T, N]; steps and nodes past a sample's end hold zeros (a
    pointer: the node's self-loop)."""
    if location == Location.GRAPH:
        dense = np.zeros((pad.steps, pad.graphs), _dtype(type_))
        dense[steps.step_t, steps.step_sample] = raw
    elif type_ == Type.MASK_ONE:
        dense = np.zeros((pad.steps, pad.nodes), _dtype(type_))
        dense[steps.step_t, at.node_off[steps.step_sample] + raw] = 1.0
    elif type_ == Type.POINTER:
        dense = np.zeros((pad.steps, pad.nodes), _dtype(type_))
        dense[:, :] = self_edge[None, :]
        dense[steps.t, steps.node] = at.pointer(raw, steps.node, steps.sample, what)
    else:
        dense = np.zeros((pad.steps, pad.nodes), _dtype(type_))
        dense[steps.t, steps.node] = raw
    return dense


def _edge_probe(raw: np.ndarray, tb: TrajectoryBatch, pad: PadSizes, at: _Layout, what: str) -> np.ndarray:
    """An input or output on the input graph's edges, [E], scattered onto their processing edges."""
    edge_sample = np.repeat(np.arange(len(tb)), tb.n_edge)
    dense = np.zeros(pad.edges, np.float32)
    dense[at.edge(at.node_off[edge_sample] + tb.receivers, at.node_off[edge_sample] + tb.senders, what)] = raw
    return dense


def _node_probe(raw: np.ndarray, type_: str, pad: PadSizes, at: _Layout, self_edge: np.ndarray,
                what: str) -> tuple[np.ndarray, np.ndarray | None]:
    """A node input or output, [N], and for a sort's permutation output its head mask (else None)."""
    n_real, mask = len(at.node_sample), None
    if type_ == Type.MASK_ONE:
        dense = np.zeros(pad.nodes, np.float32)
        dense[at.node_off[:-1] + raw] = 1.0
    elif type_ in (Type.POINTER, Type.SHOULD_BE_PERMUTATION):
        dense = self_edge.copy()
        nodes = np.arange(n_real)
        if type_ == Type.SHOULD_BE_PERMUTATION:
            raw, head = _repoint_head(raw, at)
            mask = np.zeros(pad.nodes, np.float32)
            mask[:n_real] = head
        dense[:n_real] = at.pointer(raw, nodes, at.node_sample, what)
    else:
        dense = np.zeros(pad.nodes, _dtype(type_))
        dense[:n_real] = raw
    return dense, mask


def _repoint_head(raw: np.ndarray, at: _Layout) -> tuple[np.ndarray, np.ndarray]:
    """CLRS's permutation pointer: a sort's head (the node pointing to itself) re-pointed to the tail (the node
    nobody points to); returns the new local targets and which nodes are heads."""
    n_real, S = len(at.node_sample), len(at.node_off) - 1
    local = np.arange(n_real) - at.node_off[at.node_sample]
    head = raw == local
    pointed = np.zeros(n_real, bool)
    pointed[(at.node_off[at.node_sample] + raw)[~head]] = True
    tail_of = np.zeros(S, np.int64)
    tail_of[at.node_sample[~pointed]] = np.flatnonzero(~pointed) - at.node_off[at.node_sample[~pointed]]
    return np.where(head, tail_of[at.node_sample], raw), head


def _dense_node_table(pad: PadSizes, at: _Layout) -> np.ndarray:
    """The dense triplet layout's [G - 1, M] table: global id of each sample slot's a-th node, -1 beyond its size."""
    n_real = len(at.node_sample)
    table = np.full((pad.graphs - 1, pad.triplet_nodes), -1, np.int32)
    table[at.node_sample, np.arange(n_real) - at.node_off[at.node_sample]] = np.arange(n_real)
    return table


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
