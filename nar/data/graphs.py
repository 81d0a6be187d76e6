"""Graph family samplers producing sorted edge lists, plus dm-clrs's exact dense Erdős–Rényi stream.

Graphs are edge lists rather than dense matrices so that the sparse families scale to tens of thousands
of nodes; `to_dense`/`from_dense` convert to and from CLRS's dense weighted adjacency matrix `A`, in which
0 means "no edge". Every family is vectorised numpy driven by a `np.random.Generator`.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Mapping
from types import MappingProxyType

import numpy as np

# Stand-in for a drawn weight of exactly 0, which would otherwise delete its edge. It is the smallest
# normal float32 rather than the smallest float64 so that the edge survives a cast to float32 and
# flush-to-zero arithmetic on accelerators.
_ZERO_WEIGHT_NUDGE = float(np.finfo(np.float32).tiny)

# Rewiring rounds after which Watts–Strogatz edges that found no free target keep their lattice endpoint.
_MAX_REWIRE_ROUNDS = 64


@dataclasses.dataclass(frozen=True, eq=False)
class EdgeList:
    """A directed weighted graph on nodes 0..n-1; undirected graphs list both directions.

    Edges are sorted by (sender, receiver) without duplicates, and no weight is 0 so that the
    conversion to CLRS's dense `A` (where 0 means "no edge") is lossless.
    """

    n: int
    senders: np.ndarray
    receivers: np.ndarray
    weights: np.ndarray

    def __post_init__(self):
        """Cheap structural checks; `validate` checks the O(edges) invariants."""
        s, r, w = self.senders, self.receivers, self.weights
        if s.dtype != np.int32 or r.dtype != np.int32 or w.dtype != np.float64:
            raise ValueError("EdgeList needs int32 senders/receivers and float64 weights.")
        if not (s.ndim == r.ndim == w.ndim == 1 and len(s) == len(r) == len(w)):
            raise ValueError("EdgeList arrays must be 1-D and of equal length.")

    def validate(self) -> EdgeList:
        """Raises ValueError unless ids are in range, edges sorted without duplicates and weights nonzero."""
        s, r, w = self.senders, self.receivers, self.weights
        if len(s) and (min(s.min(), r.min()) < 0 or max(s.max(), r.max()) >= self.n):
            raise ValueError(f"EdgeList node ids must lie in [0, {self.n}).")
        keys = s.astype(np.int64) * self.n + r
        if np.any(np.diff(keys) <= 0):
            raise ValueError("EdgeList edges must be sorted by (sender, receiver) without duplicates.")
        if np.any(w == 0):
            raise ValueError("EdgeList weights must be nonzero: 0 means 'no edge'.")
        return self

    @property
    def num_edges(self) -> int:
        """Number of directed edges (an undirected edge counts twice)."""
        return len(self.senders)


def to_dense(g: EdgeList) -> np.ndarray:
    """Dense [n, n] float64 matrix with A[s, r] = w, CLRS's `A` input."""
    a = np.zeros((g.n, g.n), dtype=np.float64)
    a[g.senders, g.receivers] = g.weights
    return a


def from_dense(a: np.ndarray) -> EdgeList:
    """Edge list of the nonzero entries of a square matrix, in row-major order."""
    a = np.asarray(a)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"from_dense needs a square matrix, got shape {a.shape}.")
    s, r = np.nonzero(a)
    return EdgeList(a.shape[0], s.astype(np.int32), r.astype(np.int32), a[s, r].astype(np.float64))


def _edge_list(n: int, s: np.ndarray, r: np.ndarray, w: np.ndarray) -> EdgeList:
    """Sorts edges by (sender, receiver) and packs them with the EdgeList dtypes."""
    order = np.argsort(s.astype(np.int64) * n + r, kind="stable")
    return EdgeList(n, s[order].astype(np.int32), r[order].astype(np.int32), w[order].astype(np.float64))


def _check_common(n, low, high):
    """Validates the options shared by all families."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}.")
    if not low < high:
        raise ValueError(f"low must be below high, got low={low!r}, high={high!r}.")


def _draw_weights(rng: np.random.Generator, size: int, weighted: bool, low: float, high: float) -> np.ndarray:
    """Uniform [low, high) edge weights (all 1.0 when unweighted), with exact zeros nudged off 0."""
    if not weighted:
        return np.ones(size)
    w = rng.uniform(low, high, size=size)
    return _nudge_zeros(w, high)


def _nudge_zeros(w: np.ndarray, high: float) -> np.ndarray:
    """Replaces exact 0 weights by the smallest normal float32 of the range's sign, keeping the edge."""
    return np.where(w == 0, _ZERO_WEIGHT_NUDGE if high > 0 else -_ZERO_WEIGHT_NUDGE, w)


def _from_undirected(rng, n, u, v, directed, weighted, low, high) -> EdgeList:
    """Edge list of undirected pairs (u, v), one weight per pair.

    Undirected graphs list both directions with the same weight; `directed=True` keeps each pair in
    one uniformly random direction instead.
    """
    w = _draw_weights(rng, len(u), weighted, low, high)
    if directed:
        flip = rng.random(len(u)) < 0.5
        return _edge_list(n, np.where(flip, v, u), np.where(flip, u, v), w)
    return _edge_list(n, np.concatenate([u, v]), np.concatenate([v, u]), np.concatenate([w, w]))


def _er_parts(rng, n, p, directed, acyclic, weighted, low, high):
    """Edge mask and weight matrix (None if unweighted) drawn in dm-clrs's `_random_er_graph` order.

    Works with both `np.random.Generator` and a legacy `np.random.RandomState`, which share the
    `binomial`, `permutation` and `uniform` methods used here.
    """
    if isinstance(rng, np.random.RandomState):
        mat = rng.binomial(1, p, size=(n, n))
    else:  # the same law, drawn several times faster than binomial(1, p)
        mat = rng.random((n, n)) < p
    if not directed:
        mat = mat * mat.T
    elif acyclic:
        mat = np.triu(mat, k=1)
        perm = rng.permutation(n)
        mat = mat[perm, :][:, perm]
    if not weighted:
        return mat, None
    w = rng.uniform(low=low, high=high, size=(n, n))
    if not directed:
        w = np.sqrt(w * w.T + 1e-3)
    return mat, w


def erdos_renyi(rng: np.random.Generator, n: int, *, p: float = 0.5, directed: bool = False,
                acyclic: bool = False, weighted: bool = False, low: float = 0.0, high: float = 1.0) -> EdgeList:
    """CLRS's dense Erdős–Rényi graph, equal in distribution to dm-clrs's `_random_er_graph`.

    All n*n entries, the diagonal included, are Bernoulli(p). Undirected graphs keep an entry only if
    its transpose is also set, so an off-diagonal edge has probability p**2 and a self-loop p; their
    weights are sqrt(w * w.T + 1e-3) for uniform w. `acyclic` (directed only) keeps the strict upper
    triangle and relabels nodes by a random permutation. O(n^2): meant for n up to about 2048.
    """
    _check_common(n, low, high)
    if not 0 < p <= 1:
        raise ValueError(f"p must lie in (0, 1], got p={p!r}.")
    if acyclic and not directed:
        raise ValueError("acyclic=True needs directed=True.")
    if weighted and not directed and low < 0:
        raise ValueError(f"undirected weighted er needs low >= 0 (weights are sqrt(w * w.T + 1e-3)), "
                         f"got low={low!r}.")
    mat, w = _er_parts(rng, n, p, directed, acyclic, weighted, low, high)
    s, r = np.nonzero(mat)
    weights = np.ones(len(s)) if w is None else _nudge_zeros(w[s, r], high)
    return EdgeList(n, s.astype(np.int32), r.astype(np.int32), weights)


def erdos_renyi_batch(rng: np.random.Generator, sizes: np.ndarray, p: np.ndarray, *, directed: bool = False,
                      acyclic: bool = False, weighted: bool = False, low: float = 0.0, high: float = 1.0):
    """Many `erdos_renyi` graphs in a few vectorised draws (one per distinct size): graph i has `sizes[i]` nodes
    and density `p[i]`. Returns (n_edge [k], senders, receivers, weights), edges concatenated in graph order and
    sorted by (sender, receiver) within each graph, local node ids. Same law as `erdos_renyi`, other stream."""
    sizes, p = np.asarray(sizes), np.asarray(p, np.float64)
    graph_ids, parts = [], []
    for n in dict.fromkeys(sizes.tolist()):  # distinct sizes, in order of first appearance
        idx = np.flatnonzero(sizes == n)
        _check_common(n, low, high)
        mat = rng.random((idx.size, n, n)) < p[idx, None, None]
        if not directed:
            mat = mat & mat.transpose(0, 2, 1)
        elif acyclic:
            mat = np.triu(mat, k=1)
            perm = rng.permuted(np.tile(np.arange(n), (idx.size, 1)), axis=1)
            mat = mat[np.arange(idx.size)[:, None, None], perm[:, :, None], perm[:, None, :]]
        b, snd, rcv = np.nonzero(mat)
        if weighted:
            w = rng.uniform(low, high, size=(idx.size, n, n))
            if not directed:
                w = np.sqrt(w * w.transpose(0, 2, 1) + 1e-3)
            wts = _nudge_zeros(w[b, snd, rcv], high)
        else:
            wts = np.ones(b.size)
        graph_ids.append(idx[b])
        parts.append((snd, rcv, wts))
    gid = np.concatenate(graph_ids)
    order = np.argsort(gid, kind="stable")  # each group's edges are already sorted within a graph
    snd, rcv, wts = (np.concatenate([part[j] for part in parts])[order] for j in range(3))
    return np.bincount(gid, minlength=sizes.size), snd, rcv, wts


def sparse_erdos_renyi(rng: np.random.Generator, n: int, *, degree: float = 5.0, directed: bool = False,
                       weighted: bool = False, low: float = 0.0, high: float = 1.0) -> EdgeList:
    """Erdős–Rényi graph with expected (out-)degree `degree`, without self-loops, in O(edges).

    Each of the candidate node pairs (unordered if undirected, ordered if directed) is an edge with
    probability min(1, degree / (n - 1)): the edge count is drawn binomially and that many distinct
    pair indices are sampled without materialising the n*n matrix.
    """
    _check_common(n, low, high)
    if not degree >= 0:
        raise ValueError(f"degree must be >= 0, got degree={degree!r}.")
    p = min(1.0, degree / max(n - 1, 1))
    num_pairs = n * (n - 1) if directed else n * (n - 1) // 2
    k = rng.choice(num_pairs, size=rng.binomial(num_pairs, p), replace=False)
    if directed:
        s, r = np.divmod(k, max(n - 1, 1))
        r = r + (r >= s)  # Skip the diagonal.
        return _edge_list(n, s, r, _draw_weights(rng, len(k), weighted, low, high))
    # Pair index k encodes (i, j) with j < i as k = i * (i - 1) / 2 + j; the float root is off by at most one.
    i = np.floor((1 + np.sqrt(1 + 8 * k.astype(np.float64))) / 2).astype(np.int64)
    i = i - (i * (i - 1) // 2 > k)
    i = i + ((i + 1) * i // 2 <= k)
    j = k - i * (i - 1) // 2
    return _from_undirected(rng, n, i, j, False, weighted, low, high)


def watts_strogatz(rng: np.random.Generator, n: int, *, k: int = 4, beta: float = 0.1, directed: bool = False,
                   weighted: bool = False, low: float = 0.0, high: float = 1.0) -> EdgeList:
    """Watts–Strogatz small world: a ring lattice of degree k with each edge rewired with probability beta.

    Lattice edge (u, u + j), 1 <= j <= k/2, moves its far end to a uniform node, avoiding self-loops and
    existing edges; proposals that collide are redrawn in vectorised rounds, and an edge with no free
    target keeps its lattice end. When n <= k the lattice saturates to the complete graph.
    """
    _check_common(n, low, high)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0 or k % 2:
        raise ValueError(f"k must be a non-negative even integer, got k={k!r}.")
    if not 0 <= beta <= 1:
        raise ValueError(f"beta must lie in [0, 1], got beta={beta!r}.")
    u = np.repeat(np.arange(n, dtype=np.int64), k // 2)
    v = (u + np.tile(np.arange(1, k // 2 + 1), n)) % n
    keys = np.minimum(u, v) * n + np.maximum(u, v)  # One key per undirected pair.
    keep = np.unique(keys, return_index=True)[1]
    keep = keep[u[keep] != v[keep]]
    u, v, keys = u[keep], v[keep], keys[keep]
    pending = np.flatnonzero(rng.random(len(keys)) < beta)
    for _ in range(_MAX_REWIRE_ROUNDS):
        if not len(pending):
            break
        target = rng.integers(0, n, size=len(pending))
        a = u[pending]
        new = np.minimum(a, target) * n + np.maximum(a, target)
        # Pending edges still hold their lattice pair, so a proposal never lands back on it.
        ok = (a != target) & ~np.isin(new, keys)
        # Of proposals landing on the same new pair, only the first is accepted this round.
        first = np.zeros(len(new), dtype=bool)
        first[np.unique(new, return_index=True)[1]] = True
        ok &= first
        v[pending[ok]] = target[ok]
        keys[pending[ok]] = new[ok]
        pending = pending[~ok]
    return _from_undirected(rng, n, u, v, directed, weighted, low, high)


def grid(rng: np.random.Generator, n: int, *, directed: bool = False, weighted: bool = False,
         low: float = 0.0, high: float = 1.0) -> EdgeList:
    """4-neighbour 2-D grid of n nodes: floor(sqrt(n)) rows filled row-major, the last row possibly partial."""
    _check_common(n, low, high)
    cols = -(-n // math.isqrt(int(n)))
    ids = np.arange(n, dtype=np.int64)
    right = ids[(ids % cols != cols - 1) & (ids + 1 < n)]
    down = ids[ids + cols < n]
    u = np.concatenate([right, down])
    v = np.concatenate([right + 1, down + cols])
    return _from_undirected(rng, n, u, v, directed, weighted, low, high)


def random_tree(rng: np.random.Generator, n: int, *, directed: bool = False, weighted: bool = False,
                low: float = 0.0, high: float = 1.0) -> EdgeList:
    """Uniform random recursive tree: node i > 0 attaches to a uniform earlier node, then labels are shuffled."""
    _check_common(n, low, high)
    child = np.arange(1, n, dtype=np.int64)
    parent = rng.integers(0, child)
    perm = rng.permutation(n)
    return _from_undirected(rng, n, perm[child], perm[parent], directed, weighted, low, high)


GRAPH_FAMILIES: Mapping[str, Callable[..., EdgeList]] = MappingProxyType({
    "er": erdos_renyi,
    "sparse_er": sparse_erdos_renyi,
    "watts_strogatz": watts_strogatz,
    "grid": grid,
    "tree": random_tree,
})

# Keyword options of each family, read once (signature inspection is too slow per sample).
_FAMILY_OPTIONS = MappingProxyType({
    name: [k for k, prm in inspect.signature(fn).parameters.items() if prm.kind is prm.KEYWORD_ONLY]
    for name, fn in GRAPH_FAMILIES.items()
})


def sample_graph(family: str, rng: np.random.Generator, n: int, **options) -> EdgeList:
    """Samples one graph of the named family, rejecting unknown families and options with a ValueError."""
    if family not in GRAPH_FAMILIES:
        raise ValueError(f"unknown graph family {family!r}; valid families: {sorted(GRAPH_FAMILIES)}.")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a np.random.Generator, got {type(rng).__name__}.")
    fn = GRAPH_FAMILIES[family]
    valid = _FAMILY_OPTIONS[family]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for graph family {family!r}; valid options: {valid}.")
    return fn(rng, n, **options)


# ---------------------------------------------------------------------------------------------------------
# dm-clrs 2.0.3 stream replay.
#
# `Sampler.__init__` seeds `rs = np.random.RandomState(seed)` and, for num_samples >= 0 (the CLRS30 case),
# draws nothing but the samples, in order, one `_sample_data` call each; the algorithms themselves consume
# no randomness. (With num_samples = -1 and track_max_steps=True it first draws and discards 1000 samples;
# `next(batch_size)` on a fixed dataset then draws `rs.choice(num_samples, (batch_size,))`, while `next()`
# with no batch size, which CLRS30 uses, draws nothing.) Per sample:
#   _random_er_graph(n, p, directed, acyclic, weighted, low, high):
#       rs.binomial(1, p, size=(n, n)); then if directed and acyclic: rs.permutation(n);
#       then if weighted: rs.uniform(low, high, size=(n, n)).
#   BfsSampler:         p = rs.choice((0.5,)) [draws nothing for a 1-element tuple, one randint otherwise];
#                       er(undirected, unweighted); s = rs.choice(n) [one randint].
#   DfsSampler:         p = rs.choice((0.5,)); er(directed, not acyclic, unweighted). No source.
#   BellmanFordSampler: p = rs.choice((0.5,)); er(undirected, weighted, low=0.0, high=1.0); s = rs.choice(n).
#   SortingSampler:     key = rs.uniform(0.0, 1.0, size=(n,)) (insertion_sort, bubble_sort, heapsort, quicksort).
# ---------------------------------------------------------------------------------------------------------


def clrs_er_dense(rs: np.random.RandomState, n: int, p: float = 0.5, directed: bool = False, acyclic: bool = False,
                  weighted: bool = False, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """dm-clrs's `_random_er_graph` as a float64 matrix, consuming `rs` exactly as dm-clrs 2.0.3 does.

    Kept bit-exact with dm-clrs rather than with `erdos_renyi`: `acyclic` is ignored when undirected
    and an exact 0 weight is left in place.
    """
    mat, w = _er_parts(rs, n, p, directed, acyclic, weighted, low, high)
    return mat.astype(np.float64) if w is None else mat.astype(np.float64) * w


_CLRS_GRAPH_SAMPLERS = MappingProxyType({
    "bfs": dict(directed=False, weighted=False, source=True),
    "dfs": dict(directed=True, weighted=False, source=False),
    "bellman_ford": dict(directed=False, weighted=True, source=True),
})
_CLRS_SORTS = ("insertion_sort", "bubble_sort", "heapsort", "quicksort")
# The algorithms dm-clrs has a sampler for (stream="clrs" replays it); a registered algorithm has none.
CLRS_STREAM_ALGORITHMS = frozenset(_CLRS_GRAPH_SAMPLERS) | frozenset(_CLRS_SORTS)


def clrs_stream_inputs(algorithm: str, rs: np.random.RandomState, n: int, **kw) -> dict:
    """Raw inputs of the next dm-clrs 2.0.3 sample of `algorithm`, drawn from `rs` in dm-clrs's exact order.

    Keyword options are the sampler's own (`p` tuple for graphs, `low`/`high` for Bellman-Ford and sorts),
    with dm-clrs's defaults. Returns {'A', 's'} for bfs/bellman_ford, {'A'} for dfs and {'key'} for sorts.
    """
    if algorithm in _CLRS_GRAPH_SAMPLERS:
        cfg = _CLRS_GRAPH_SAMPLERS[algorithm]
        defaults = {"p": (0.5,), **({"low": 0.0, "high": 1.0} if cfg["weighted"] else {})}
    elif algorithm in _CLRS_SORTS:
        defaults = {"low": 0.0, "high": 1.0}
    else:
        valid = sorted(_CLRS_GRAPH_SAMPLERS) + list(_CLRS_SORTS)
        raise ValueError(f"no dm-clrs stream for {algorithm!r}; valid: {valid}.")
    unknown = sorted(set(kw) - set(defaults))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for {algorithm!r}; valid options: {sorted(defaults)}.")
    opts = {**defaults, **kw}
    if algorithm in _CLRS_SORTS:
        return {"key": rs.uniform(low=opts["low"], high=opts["high"], size=(n,))}
    p = rs.choice(opts["p"])
    a = clrs_er_dense(rs, n, p, directed=cfg["directed"], weighted=cfg["weighted"],
                      low=opts.get("low", 0.0), high=opts.get("high", 1.0))
    return {"A": a, "s": int(rs.choice(n))} if cfg["source"] else {"A": a}
