"""Datasets of trajectories: `generate` draws inputs from a graph family or keys and runs the executors.

Sample i is a pure function of (algorithm, options, seed, i): every random draw comes from a generator seeded by
(seed, block of `BLOCK` samples, ...) — see `_draw_block` — so any index range can be generated on its own (in
another process or after a restart) and gives the same bytes everywhere. Small dense graphs and keys are drawn a
block at a time in one vectorised call; large or sparse graphs sample by sample. `stream="clrs"` instead
replays dm-clrs's own sampler (`RandomState(seed)`, samples in sequence): with CLRS's defaults it regenerates
the CLRS30 datasets bit for bit.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import dataclasses
import functools
import multiprocessing
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from nar.algorithms import GraphBatch, get_algorithm, run_batch
from nar.data.graphs import (
    GRAPH_FAMILIES,
    EdgeList,
    clrs_stream_inputs,
    erdos_renyi_batch,
    from_dense,
    sample_graph,
)
from nar.trajectory import Trajectory, TrajectoryBatch

GENERATOR_VERSION = 1
BLOCK = 64
# Executors run on chunks holding at most about this many hint values (steps x nodes), to bound memory.
_CHUNK_VALUES = 1 << 22

# CLRS's training distribution (Ibarz et al. 2022): sizes cycled, ER density drawn per graph.
CLRS_TRAIN_SIZES = (4, 7, 11, 13, 16)
CLRS_TRAIN_P = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Trajectories of one algorithm plus the configuration that generated them (`config`)."""

    trajectories: TrajectoryBatch
    config: Mapping[str, Any]

    @property
    def algorithm(self) -> str:
        """The algorithm the trajectories belong to."""
        return self.trajectories.algorithm

    def __len__(self) -> int:
        return len(self.trajectories)

    def __getitem__(self, i: int) -> Trajectory:
        return self.trajectories.trajectory(i)

    def __iter__(self) -> Iterator[Trajectory]:
        return iter(self.trajectories)

    def summary(self) -> dict:
        """Sizes, step counts (min, mean, max), mean edges and stored bytes, for a quick look."""
        t = self.trajectories
        return {
            "algorithm": self.algorithm,
            "samples": len(t),
            "nodes": sorted(set(t.n_node.tolist())),
            "steps_min_mean_max": [int(t.n_step.min()), float(t.n_step.mean()), int(t.n_step.max())],
            "edges_mean": float(t.n_edge.mean()),
            "bytes": int(sum(a.nbytes for a in t.probes.values())),
        }


def resolve_config(algorithm: str, num_samples: int, num_nodes, seed: int, start: int = 0, graph: str | None = None,
                   stream: str = "nar", **options) -> dict:
    """Validate a request and fill in CLRS's defaults: the complete, JSON-able description of a dataset."""
    algo = get_algorithm(algorithm)
    sizes = (num_nodes,) if isinstance(num_nodes, (int, np.integer)) else tuple(num_nodes)
    if not sizes or any(not isinstance(n, (int, np.integer)) or n < 1 for n in sizes):
        raise ValueError(f"num_nodes must be a positive int or a non-empty sequence of them, got {num_nodes!r}")
    if num_samples < 1 or start < 0:
        raise ValueError(f"num_samples must be positive and start >= 0, got {num_samples} and {start}")
    if stream not in ("nar", "clrs"):
        raise ValueError(f"stream must be 'nar' or 'clrs', got {stream!r}")
    if algo.kind == "sort":
        if graph is not None:
            raise ValueError(f"{algorithm} sorts keys: it takes no graph family (got graph={graph!r})")
        unknown = set(options) - {"low", "high"}
        if unknown:
            raise ValueError(f"unknown option(s) {sorted(unknown)} for {algorithm}; valid: ['high', 'low']")
        opts = {"low": 0.0, "high": 1.0, **options}
        if not opts["low"] < opts["high"]:
            raise ValueError(f"keys need low < high, got low={opts['low']}, high={opts['high']}")
    else:
        graph = graph or "er"
        if graph not in GRAPH_FAMILIES:
            raise ValueError(f"unknown graph family {graph!r}; known: {', '.join(GRAPH_FAMILIES)}")
        opts = {**algo.graph_defaults, **({"p": 0.5} if graph == "er" else {}), **options}
        if "p" in opts and not isinstance(opts["p"], (int, float)):
            opts["p"] = tuple(float(p) for p in opts["p"])
            if not opts["p"]:
                raise ValueError("p must be a density or a non-empty sequence of densities, got ()")
        # Draw a tiny graph per density to let the family reject unknown or bad options now, with its own message.
        densities = opts["p"] if isinstance(opts.get("p"), tuple) else [opts.get("p")]
        for p in densities:
            sample_graph(graph, np.random.default_rng(0), 2, **{**opts, **({} if p is None else {"p": p})})
    if stream == "clrs":
        if len(sizes) != 1 or (graph not in (None, "er")):
            raise ValueError("stream='clrs' replays dm-clrs's sampler: one size and the 'er' family only")
        clrs_opts = {k: v for k, v in opts.items() if k not in algo.graph_defaults}
        if any(opts.get(k) != v for k, v in algo.graph_defaults.items()):
            raise ValueError(f"stream='clrs' uses dm-clrs's fixed graph kind for {algorithm}: "
                             f"{dict(algo.graph_defaults)}")
        if "p" in clrs_opts and not isinstance(clrs_opts["p"], tuple):
            opts["p"] = (float(clrs_opts["p"]),)
    return {"algorithm": algorithm, "num_samples": int(num_samples), "num_nodes": [int(n) for n in sizes],
            "seed": int(seed), "start": int(start), "graph": graph, "stream": stream, "options": opts,
            "generator_version": GENERATOR_VERSION}


@dataclasses.dataclass
class _Inputs:
    """Raw inputs of consecutive samples: keys (sorts) or concatenated edge lists with local ids (graphs)."""

    n_node: np.ndarray
    keys: list[np.ndarray] | None = None
    n_edge: np.ndarray | None = None
    senders: np.ndarray | None = None
    receivers: np.ndarray | None = None
    weights: np.ndarray | None = None
    sources: np.ndarray | None = None

    def slice(self, a: int, b: int) -> _Inputs:
        if self.keys is not None:
            return _Inputs(self.n_node[a:b], keys=self.keys[a:b])
        off = np.concatenate([[0], np.cumsum(self.n_edge)])
        e = slice(off[a], off[b])
        return _Inputs(self.n_node[a:b], None, self.n_edge[a:b], self.senders[e], self.receivers[e],
                       self.weights[e], None if self.sources is None else self.sources[a:b])

    @staticmethod
    def concatenate(parts: list[_Inputs]) -> _Inputs:
        if parts[0].keys is not None:
            return _Inputs(np.concatenate([p.n_node for p in parts]), keys=[k for p in parts for k in p.keys])

        def cat(field):
            first = getattr(parts[0], field)
            return None if first is None else np.concatenate([getattr(p, field) for p in parts])

        return _Inputs(cat("n_node"), None, cat("n_edge"), cat("senders"), cat("receivers"), cat("weights"),
                       cat("sources"))

    @staticmethod
    def from_graphs(graphs: list[EdgeList], sources) -> _Inputs:
        return _Inputs(np.array([g.n for g in graphs]), None, np.array([g.num_edges for g in graphs]),
                       np.concatenate([g.senders for g in graphs]), np.concatenate([g.receivers for g in graphs]),
                       np.concatenate([g.weights for g in graphs]), sources)


# Dense ER graphs up to this size are drawn a block at a time (one vectorised draw per size), larger ones one by
# one (a block of 64 dense graphs of 1,024 nodes would need 512 MB of random numbers at once).
_BATCHED_ER_MAX_N = 128


def _draw_block(config: dict, block: int, lo: int, hi: int) -> _Inputs:
    """Raw inputs of samples lo..hi-1, all within one block, from generators seeded by the block.

    Streams: (seed, block) draws every sample's density (if `p` is a tuple) and source; (seed, block, n) draws
    all keys, or all dense ER graphs of a small size n, of the block in one vectorised call; (seed, block, n, k)
    draws the k-th sample of the block alone when it is any other graph (large or sparse), so generating a
    few samples of a block never pays for the rest.
    """
    algo = get_algorithm(config["algorithm"])
    seed, sizes_cycle, opts = config["seed"], config["num_nodes"], dict(config["options"])
    first = block * BLOCK
    sizes = np.array([sizes_cycle[i % len(sizes_cycle)] for i in range(first, first + BLOCK)])
    want = np.arange(lo - first, hi - first)
    if algo.kind == "sort":
        keys = [None] * BLOCK
        for n in dict.fromkeys(sizes.tolist()):
            where = np.flatnonzero(sizes == n)
            rows = np.random.default_rng([seed, block, n]).uniform(opts["low"], opts["high"], (where.size, n))
            for k, row in zip(where, rows):
                keys[k] = row
        return _Inputs(sizes[want], keys=[keys[k] for k in want])
    misc = np.random.default_rng([seed, block])
    p = opts.pop("p", None)
    dens = misc.choice(p, size=BLOCK) if isinstance(p, tuple) else np.full(BLOCK, p)
    sources = (misc.random(BLOCK) * sizes).astype(np.int64)
    graphs: dict[int, EdgeList] = {}
    for n in dict.fromkeys(sizes[want].tolist()):
        where = np.flatnonzero(sizes == n)
        if config["graph"] == "er" and n <= _BATCHED_ER_MAX_N:
            rng = np.random.default_rng([seed, block, n])
            n_edge, snd, rcv, w = erdos_renyi_batch(rng, sizes[where], dens[where], **opts)
            bounds = np.concatenate([[0], np.cumsum(n_edge)])
            for j, k in enumerate(where.tolist()):
                e = slice(bounds[j], bounds[j + 1])
                graphs[k] = EdgeList(n, snd[e].astype(np.int32), rcv[e].astype(np.int32), w[e])
        else:
            for k in np.intersect1d(where, want).tolist():
                extra = {} if p is None else {"p": float(dens[k])}
                graphs[k] = sample_graph(config["graph"], np.random.default_rng([seed, block, n, k]), n,
                                         **opts, **extra)
    inputs = _Inputs.from_graphs([graphs[k] for k in want.tolist()],
                                 sources[want] if algo.needs_source else None)
    if opts["weighted"]:  # rounded to float32, the stored precision: stored inputs reproduce hints exactly
        inputs.weights = inputs.weights.astype(np.float32).astype(np.float64)
    return inputs


def _draw_nar(config: dict, lo: int, hi: int) -> _Inputs:
    """Raw inputs of samples lo..hi-1 from the block-seeded streams."""
    blocks = range(lo // BLOCK, (hi - 1) // BLOCK + 1)
    return _Inputs.concatenate([_draw_block(config, b, max(lo, b * BLOCK), min(hi, (b + 1) * BLOCK))
                                for b in blocks])


def _draw_clrs(config: dict, lo: int, hi: int) -> _Inputs:
    """Raw inputs of samples lo..hi-1 of dm-clrs's sampler stream (sequential by nature)."""
    rs = np.random.RandomState(config["seed"])
    algo = config["algorithm"]
    n = config["num_nodes"][0]
    kw = {k: v for k, v in config["options"].items() if k not in get_algorithm(algo).graph_defaults}
    raw = [clrs_stream_inputs(algo, rs, n, **kw) for _ in range(hi)][lo:]
    if "key" in raw[0]:
        return _Inputs(np.full(len(raw), n), keys=[r["key"] for r in raw])
    sources = np.array([r["s"] for r in raw]) if "s" in raw[0] else None
    return _Inputs.from_graphs([from_dense(r["A"]) for r in raw], sources)


def _run(algorithm: str, inputs: _Inputs) -> TrajectoryBatch:
    """Execute drawn samples in index order, in chunks of about `_CHUNK_VALUES` hint values (steps x nodes, a rough
    per-algorithm estimate) plus edges; sorts grouped by size, as their executors take keys [B, n]."""
    algo = get_algorithm(algorithm)
    num = inputs.n_node.size
    values = inputs.n_node.astype(np.int64) * inputs.n_node * {"bubble_sort": inputs.n_node // 2, "dfs": 3,
                                                               "heapsort": 8, "quicksort": 7}.get(algorithm, 1)
    parts, order = [], []
    if algo.kind == "sort":
        for n in dict.fromkeys(inputs.n_node.tolist()):
            idx = np.flatnonzero(inputs.n_node == n)
            per_chunk = max(1, _CHUNK_VALUES // int(values[idx[0]]))
            for c in range(0, idx.size, per_chunk):
                chunk = idx[c : c + per_chunk]
                parts.append(run_batch(algorithm, keys=np.stack([inputs.keys[i] for i in chunk])))
                order.extend(chunk.tolist())
    else:
        cum = np.cumsum(values + inputs.n_edge)
        start = 0
        while start < num:  # consecutive samples up to the value budget (at least one)
            done = cum[start - 1] if start else 0
            stop = max(start + 1, int(np.searchsorted(cum, done + _CHUNK_VALUES, side="right")))
            part = inputs.slice(start, stop)
            graphs = GraphBatch.from_arrays(part.n_node, part.n_edge, part.senders, part.receivers, part.weights)
            sources = None if part.sources is None else part.sources.tolist()
            parts.append(run_batch(algorithm, graphs=graphs, sources=sources))
            order.extend(range(start, stop))
            start = stop
    batch = TrajectoryBatch.concatenate(parts)
    return batch if order == sorted(order) else batch.select(np.argsort(order))


def _generate_range(config: dict, lo: int, hi: int) -> TrajectoryBatch:
    draw = _draw_clrs if config["stream"] == "clrs" else _draw_nar
    return _run(config["algorithm"], draw(config, lo, hi))


def generate(algorithm: str, num_samples: int, num_nodes: int | Sequence[int], seed: int = 0, *, start: int = 0,
             graph: str | None = None, stream: str = "nar", workers: int | None = 1, **options) -> Dataset:
    """Generate samples start..start+num_samples-1 of an algorithm's dataset.

    `num_nodes` is one size or a sequence cycled over sample indices (e.g. `CLRS_TRAIN_SIZES`). Graph algorithms
    draw from `graph` (default 'er', CLRS's generator; also 'sparse_er', 'watts_strogatz', 'grid', 'tree') with
    family options such as `p` (a tuple draws one value per graph), `degree`, `directed`, `weighted`, `low`,
    `high`; sorts take `low`/`high` for their uniform keys. `workers` > 1 (or None for all cores) generates block
    ranges in parallel processes; the result is identical.
    """
    config = resolve_config(algorithm, num_samples, num_nodes, seed, start, graph, stream, **options)
    lo, hi = start, start + num_samples
    workers = (os.cpu_count() or 1) if workers is None else workers
    tasks = _split(lo, hi, workers) if stream == "nar" and workers > 1 else [(lo, hi)]
    if len(tasks) == 1:
        return Dataset(_generate_range(config, lo, hi), config)
    parts = list(_pool(workers).map(_generate_range, [config] * len(tasks), *zip(*tasks)))
    return Dataset(TrajectoryBatch.concatenate(parts), config)


@functools.lru_cache(maxsize=1)
def _pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    """One process pool, kept for later calls: starting workers costs more than a small dataset. `forkserver`
    workers start clean, so this is safe even when the caller has already started JAX's threads."""
    pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"))
    atexit.register(pool.shutdown)  # before interpreter teardown, which would otherwise trip over the pool
    return pool


def _split(lo: int, hi: int, workers: int) -> list[tuple[int, int]]:
    """About four ranges per worker, for balance; whole blocks when there are enough samples (a range that starts
    inside a block redraws that block's earlier samples, which only pays off for few, large graphs)."""
    per_task = -(-(hi - lo) // (4 * workers))
    if per_task > BLOCK:
        per_task = -(-per_task // BLOCK) * BLOCK
    edges = list(range(lo, hi, per_task)) + [hi]
    return list(zip(edges[:-1], edges[1:]))


def clrs_train(algorithm: str, num_samples: int, seed: int = 0, sizes: int | Sequence[int] = CLRS_TRAIN_SIZES,
               **kwargs) -> Dataset:
    """CLRS's training distribution: sizes 4, 7, 11, 13, 16 (cycled) and (graphs) ER density p drawn from
    0.1..0.9."""
    extra = {} if get_algorithm(algorithm).kind == "sort" else {"p": CLRS_TRAIN_P}
    return generate(algorithm, num_samples, sizes, seed, **{**extra, **kwargs})
