"""Validated executor inputs: dense or sparse graphs gathered into one disjoint union, and sort keys.

Executors never see raw user arrays: every check happens here, so bad input fails with a `ValueError` that names
the problem instead of a shape error deep inside NumPy, a hang or a silent wrong answer.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Sequence

import numpy as np

# Trajectories hold values as float32: a larger magnitude would silently become infinite.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_real(name: str, x, what: str = "real numbers") -> np.ndarray:
    """`x` as float64, or a ValueError naming `name`: only integer and real floating dtypes are taken (complex,
    boolean, object and string arrays are refused, never cast), and every value must be finite and within
    float32's range."""
    x = np.asarray(x)
    if x.dtype == bool or not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise ValueError(f"{name} must be {what}, got dtype {x.dtype}"
                         + (" (cast it, e.g. x.astype(float), if 0/1 weights are meant)" if x.dtype == bool else ""))
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError(f"{name} must be finite: found NaN or infinite values")
    big = np.abs(x) > FLOAT32_MAX
    if big.any():
        raise ValueError(f"{name} holds {x[big][0]:g}, beyond float32's range (magnitude <= {FLOAT32_MAX:.4g}): "
                         f"it would become infinite")
    return x


def check_integers(name: str, x) -> np.ndarray:
    """`x` as int64, or a ValueError naming `name` when it holds anything but integers (an empty array may have
    any dtype: `np.asarray([])` is float)."""
    x = np.asarray(x)
    if x.size == 0:
        return np.zeros(x.shape, np.int64)
    if x.dtype == bool or not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"{name} must be integers, got dtype {x.dtype}")
    return x.astype(np.int64)


def check_adjacency(A, weighted: bool = True) -> np.ndarray:
    """A weighted adjacency matrix as float64 (`check_real`), or ValueError. A boolean matrix is an unweighted
    graph: taken (as 0/1) only where the algorithm reads no weights (`weighted=False`), refused where 1.0 weights
    would be made up."""
    A = np.asarray(A)
    if A.dtype == bool and not weighted:
        A = A.astype(np.float64)
    if A.ndim != 2:
        raise ValueError(f"A must be a 2-D adjacency matrix, got shape {A.shape}")
    if A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be square, got {A.shape}")
    if A.shape[0] == 0:
        raise ValueError("A must have at least one node, got shape (0, 0)")
    return check_real("A", A, "a matrix of real edge weights")


def check_source(s, n: int) -> int:
    """A source node index as int, or ValueError (not an integer, or outside [0, n))."""
    if isinstance(s, np.ndarray) and s.ndim == 0:
        s = s.item()
    if isinstance(s, bool) or not isinstance(s, numbers.Integral):
        raise ValueError(f"source s must be an integer node index, got {s!r}")
    if not 0 <= s < n:
        raise ValueError(f"source s={s} is out of range for a graph of {n} nodes")
    return int(s)


def check_keys(key) -> np.ndarray:
    """Sort keys as a 1-D float64 array, or ValueError (wrong shape, empty, or not as `check_real` wants)."""
    key = np.asarray(key)
    if key.ndim != 1:
        raise ValueError(f"key must be a 1-D array, got shape {key.shape}")
    if key.size == 0:
        raise ValueError("key must not be empty")
    return check_real("key", key)


@dataclasses.dataclass(frozen=True)
class GraphBatch:
    """A batch of weighted directed graphs as one disjoint union (node ids offset per graph, like jraph).

    `senders`/`receivers` are global node ids, sorted by (sender, receiver) within each graph; `weights` are the
    nonzero entries of each graph's A (CLRS: 0 means no edge), float64.
    """

    n_node: np.ndarray  # [B] int64
    senders: np.ndarray  # [E] int64, global
    receivers: np.ndarray  # [E] int64, global
    weights: np.ndarray  # [E] float64
    n_edge: np.ndarray  # [B] int64

    @property
    def node_offset(self) -> np.ndarray:
        """[B] global id of each graph's first node."""
        return np.concatenate([[0], np.cumsum(self.n_node)[:-1]])

    @property
    def graph_of_node(self) -> np.ndarray:
        """[sum n] the graph each global node belongs to."""
        return np.repeat(np.arange(self.n_node.size), self.n_node)

    @staticmethod
    def from_edges(graphs: Sequence[tuple[int, np.ndarray, np.ndarray, np.ndarray]]) -> GraphBatch:
        """From (n, senders, receivers, weights) per graph, local ids; zero weights are dropped, NaN rejected.

        Per graph only the arrays are gathered; checks, sorting and offsets run once over the whole union.
        """
        if not graphs:
            raise ValueError("a graph batch needs at least one graph")
        parts = [tuple(np.asarray(x).reshape(-1) for x in g[1:]) for g in graphs]
        if any(not (s.shape == r.shape == w.shape) for s, r, w in parts):
            raise ValueError("senders, receivers and weights of a graph must have one length")
        return GraphBatch.from_arrays(
            [g[0] for g in graphs], [s.size for s, _, _ in parts], np.concatenate([s for s, _, _ in parts]),
            np.concatenate([r for _, r, _ in parts]), np.concatenate([w for _, _, w in parts]))

    @staticmethod
    def from_arrays(n_node, n_edge, senders, receivers, weights) -> GraphBatch:
        """From per-graph sizes and edge counts and the concatenated edges (local ids), checked in one pass."""
        n_node, n_edge = check_integers("n_node", n_node), check_integers("n_edge", n_edge)
        if n_node.size == 0 or n_node.shape != n_edge.shape:
            raise ValueError(f"need one node count and one edge count per graph, got {n_node.shape} and "
                             f"{n_edge.shape}")
        if (n_node < 1).any():
            raise ValueError(f"every graph needs at least one node, got n={int(n_node.min())}")
        snd, rcv = check_integers("senders", senders), check_integers("receivers", receivers)
        wts = check_real("weights", weights, "real edge weights")
        if not (snd.shape == rcv.shape == wts.shape == (int(n_edge.sum()),)):
            raise ValueError(f"senders, receivers and weights must hold sum(n_edge)={int(n_edge.sum())} edges, "
                             f"got {snd.shape}, {rcv.shape}, {wts.shape}")
        gid = np.repeat(np.arange(n_node.size), n_edge)
        bad = (np.minimum(snd, rcv) < 0) | (np.maximum(snd, rcv) >= n_node[gid])
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise ValueError(f"edge ({snd[k]}, {rcv[k]}) of graph {gid[k]} lies outside [0, {n_node[gid[k]]})")
        offset = np.concatenate([[0], np.cumsum(n_node)[:-1]])
        snd, rcv = snd + offset[gid], rcv + offset[gid]
        key = snd * max(int(n_node.sum()), 1) + rcv  # global ids: sorting by key sorts by (graph, sender, receiver)
        if key.size > 1 and not (np.diff(key) > 0).all():
            order = np.argsort(key, kind="stable")
            snd, rcv, wts, gid, key = snd[order], rcv[order], wts[order], gid[order], key[order]
            if (np.diff(key) == 0).any():  # a zero weight included: which of the two weights would be meant?
                raise ValueError("duplicate edges (same sender and receiver) in an edge list")
        keep = wts != 0
        snd, rcv, wts, gid = snd[keep], rcv[keep], wts[keep], gid[keep]
        return GraphBatch(n_node, snd, rcv, wts, np.bincount(gid, minlength=n_node.size).astype(np.int64))

    @staticmethod
    def from_dense(matrices: Sequence[np.ndarray]) -> GraphBatch:
        """From dense weighted adjacency matrices (0 = no edge), each checked by `check_adjacency`."""
        graphs = []
        for A in matrices:
            A = check_adjacency(A)
            s, r = np.nonzero(A)
            graphs.append((A.shape[0], s, r, A[s, r]))
        return GraphBatch.from_edges(graphs)

    def input_edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Edges of the `A`/`adj` input probes: every nonzero of A plus the diagonal, per graph, local ids.

        Returns (n_edge [B], senders, receivers, A values, adj values), sorted by (sender, receiver) per graph;
        adj = ((A + I) != 0) exactly as CLRS computes it (so a self-loop of weight -1 has adj 0).
        """
        num_nodes = int(self.n_node.sum())
        # Merge the diagonal into the sorted edge list (no re-sort): insert (v, v) where it belongs unless present.
        key = self.senders * num_nodes + self.receivers
        nodes = np.arange(num_nodes)
        at = np.searchsorted(key, nodes * (num_nodes + 1))
        present = np.zeros(num_nodes, bool)
        inside = at < key.size
        present[inside] = key[at[inside]] == nodes[inside] * (num_nodes + 1)
        at, new = at[~present], nodes[~present]
        # One merge for the three arrays (np.insert would recompute it per array): the k-th new entry lands at
        # at[k] + k, the old edges fill the other slots in order.
        fresh = np.zeros(key.size + new.size, bool)
        fresh[at + np.arange(new.size)] = True
        old = ~fresh
        s, r, w = np.empty(fresh.size, np.int64), np.empty(fresh.size, np.int64), np.zeros(fresh.size)
        s[fresh], r[fresh] = new, new
        s[old], r[old], w[old] = self.senders, self.receivers, self.weights
        adj = ((w + (s == r)) != 0).astype(np.float32)
        added = np.bincount(np.repeat(np.arange(self.n_node.size), self.n_node)[new], minlength=self.n_node.size)
        n_edge = self.n_edge + added
        off = np.repeat(self.node_offset, n_edge)
        return n_edge, s - off, r - off, w, adj
