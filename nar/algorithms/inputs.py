"""Validated executor inputs: dense or sparse graphs gathered into one disjoint union, and sort keys.

Executors never see raw user arrays: every check happens here, so bad input fails with a `ValueError` that names
the problem instead of a shape error deep inside NumPy, a hang or a silent wrong answer.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Sequence

import numpy as np


def check_adjacency(A) -> np.ndarray:
    """A weighted adjacency matrix as float64, or ValueError."""
    A = np.asarray(A)
    if A.ndim != 2:
        raise ValueError(f"A must be a 2-D adjacency matrix, got shape {A.shape}")
    if A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be square, got {A.shape}")
    if A.shape[0] == 0:
        raise ValueError("A must have at least one node, got shape (0, 0)")
    if not (np.issubdtype(A.dtype, np.number) or A.dtype == bool):
        raise ValueError(f"A must be numeric, got dtype {A.dtype}")
    A = A.astype(np.float64)
    if not np.isfinite(A).all():
        raise ValueError("A must be finite: found NaN or infinite entries")
    return A


def check_source(s, n: int) -> int:
    if isinstance(s, np.ndarray) and s.ndim == 0:
        s = s.item()
    if isinstance(s, bool) or not isinstance(s, numbers.Integral):
        raise ValueError(f"source s must be an integer node index, got {s!r}")
    if not 0 <= s < n:
        raise ValueError(f"source s={s} is out of range for a graph of {n} nodes")
    return int(s)


def check_keys(key) -> np.ndarray:
    key = np.asarray(key)
    if key.ndim != 1:
        raise ValueError(f"key must be a 1-D array, got shape {key.shape}")
    if key.size == 0:
        raise ValueError("key must not be empty")
    if not np.issubdtype(key.dtype, np.number) or np.iscomplexobj(key):
        raise ValueError(f"key must be real numbers, got dtype {key.dtype}")
    key = key.astype(np.float64)
    if not np.isfinite(key).all():
        raise ValueError("key must be finite: found NaN or infinite values")
    return key


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
        return np.concatenate([[0], np.cumsum(self.n_node)[:-1]])

    @property
    def graph_of_node(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_node.size), self.n_node)

    @staticmethod
    def from_edges(graphs: Sequence[tuple[int, np.ndarray, np.ndarray, np.ndarray]]) -> "GraphBatch":
        """From (n, senders, receivers, weights) per graph, local ids; zero weights are dropped, NaN rejected."""
        n_node, snd, rcv, wts, n_edge = [], [], [], [], []
        offset = 0
        for n, s, r, w in graphs:
            s, r, w = np.asarray(s, np.int64), np.asarray(r, np.int64), np.asarray(w, np.float64)
            if not (s.shape == r.shape == w.shape and s.ndim == 1):
                raise ValueError(f"senders, receivers and weights must be 1-D of one length, got "
                                 f"{s.shape}, {r.shape}, {w.shape}")
            if n < 1:
                raise ValueError(f"a graph must have at least one node, got n={n}")
            if s.size and (min(s.min(), r.min()) < 0 or max(s.max(), r.max()) >= n):
                raise ValueError(f"edge endpoints must lie in [0, {n}), got range "
                                 f"[{min(s.min(), r.min())}, {max(s.max(), r.max())}]")
            if not np.isfinite(w).all():
                raise ValueError("edge weights must be finite: found NaN or infinite values")
            keep = w != 0
            s, r, w = s[keep], r[keep], w[keep]
            order = np.lexsort((r, s))
            s, r, w = s[order], r[order], w[order]
            if s.size > 1 and ((np.diff(s) == 0) & (np.diff(r) == 0)).any():
                raise ValueError("duplicate edges (same sender and receiver) in an edge list")
            n_node.append(n)
            n_edge.append(s.size)
            snd.append(s + offset)
            rcv.append(r + offset)
            wts.append(w)
            offset += n
        cat = lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)  # noqa: E731
        return GraphBatch(np.asarray(n_node, np.int64), cat(snd, np.int64), cat(rcv, np.int64),
                          cat(wts, np.float64), np.asarray(n_edge, np.int64))

    @staticmethod
    def from_dense(matrices: Sequence[np.ndarray]) -> "GraphBatch":
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
        gid = self.graph_of_node
        diag = np.arange(self.n_node.sum())
        loop = self.senders == self.receivers
        s = np.concatenate([self.senders, diag[~np.isin(diag, self.senders[loop])]])
        r = np.concatenate([self.receivers, diag[~np.isin(diag, self.senders[loop])]])
        w = np.concatenate([self.weights, np.zeros(s.size - self.senders.size)])
        order = np.lexsort((r, s))
        s, r, w = s[order], r[order], w[order]
        adj = ((w + (s == r)) != 0).astype(np.float32)
        n_edge = np.bincount(gid[s], minlength=self.n_node.size)
        off = self.node_offset[gid[s]]
        return n_edge, s - off, r - off, w, adj
