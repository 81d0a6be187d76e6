"""Datasets of trajectories: `generate` draws inputs from a graph family or keys and runs the executors.

Sample i is a pure function of (algorithm, options, seed, i): samples are drawn in blocks of `BLOCK` that share
one generator seeded by (seed, block), so any index range can be generated on its own (in another process or after
a restart) and gives the same bytes everywhere. `stream="clrs"` instead replays dm-clrs's own sampler
(`RandomState(seed)`, samples in sequence): with CLRS's defaults it regenerates the CLRS30 datasets bit for bit.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import dataclasses
import functools
import multiprocessing
import os
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from nar.algorithms import GraphBatch, get_algorithm, run_batch
from nar.data.graphs import GRAPH_FAMILIES, clrs_stream_inputs, from_dense, sample_graph
from nar.trajectory import Trajectory, TrajectoryBatch

GENERATOR_VERSION = 1
BLOCK = 64
# Executors run on chunks holding at most about this many hint values (steps x nodes), to bound memory.
_CHUNK_VALUES = 1 << 22

# CLRS's sampler defaults per graph algorithm (reference: dm-clrs 2.0.3 samplers).
_GRAPH_DEFAULTS = {
    "bfs": {"directed": False, "weighted": False},
    "dfs": {"directed": True, "weighted": False},
    "bellman_ford": {"directed": False, "weighted": True},
}
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
        return self.trajectories.algorithm

    def __len__(self) -> int:
        return len(self.trajectories)

    def __getitem__(self, i: int) -> Trajectory:
        return self.trajectories.trajectory(i)

    def __iter__(self) -> Iterator[Trajectory]:
        return iter(self.trajectories)

    def summary(self) -> dict:
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
    if num_samples < 0 or start < 0:
        raise ValueError(f"num_samples and start must be >= 0, got {num_samples} and {start}")
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
        opts = {**_GRAPH_DEFAULTS[algorithm], **options}
        if "p" in opts and not isinstance(opts["p"], (int, float)):
            opts["p"] = tuple(float(p) for p in opts["p"])
        # Draw one graph to let the family reject unknown or bad options now, with its own message.
        probe = {k: (v[0] if k == "p" and isinstance(v, tuple) else v) for k, v in opts.items()}
        sample_graph(graph, np.random.default_rng(0), 1, **probe)
    if stream == "clrs":
        if len(sizes) != 1 or (graph not in (None, "er")):
            raise ValueError("stream='clrs' replays dm-clrs's sampler: one size and the 'er' family only")
        clrs_opts = {k: v for k, v in opts.items() if k not in _GRAPH_DEFAULTS.get(algorithm, {})}
        if any(opts.get(k) != v for k, v in _GRAPH_DEFAULTS.get(algorithm, {}).items()):
            raise ValueError(f"stream='clrs' uses dm-clrs's fixed graph kind for {algorithm}: "
                             f"{_GRAPH_DEFAULTS[algorithm]}")
        if "p" in clrs_opts and not isinstance(clrs_opts["p"], tuple):
            opts["p"] = (float(clrs_opts["p"]),)
    return {"algorithm": algorithm, "num_samples": int(num_samples), "num_nodes": [int(n) for n in sizes],
            "seed": int(seed), "start": int(start), "graph": graph, "stream": stream, "options": opts,
            "generator_version": GENERATOR_VERSION}


def _draw_nar(config: dict, lo: int, hi: int) -> list[dict]:
    """Raw inputs of samples lo..hi-1 from the block-seeded stream."""
    algo = get_algorithm(config["algorithm"])
    sizes, opts = config["num_nodes"], dict(config["options"])
    p = opts.pop("p", None)
    out = []
    for block in range(lo // BLOCK, (hi - 1) // BLOCK + 1):
        rng = np.random.default_rng([config["seed"], block])
        for i in range(block * BLOCK, (block + 1) * BLOCK):
            if i >= hi:
                break
            n = sizes[i % len(sizes)]
            if algo.kind == "sort":
                sample = {"key": rng.uniform(opts["low"], opts["high"], n)}
            else:
                extra = {} if p is None else {"p": float(rng.choice(p)) if isinstance(p, tuple) else p}
                graph = sample_graph(config["graph"], rng, n, **opts, **extra)
                if opts["weighted"]:  # rounded to float32, the stored precision: stored inputs reproduce hints
                    graph = dataclasses.replace(graph, weights=graph.weights.astype(np.float32).astype(np.float64))
                sample = {"graph": graph}
                if algo.needs_source:
                    sample["s"] = int(rng.random() * n)  # uniform in [0, n); a scalar draw is cheaper than integers
            if i >= lo:
                out.append(sample)
    return out


def _draw_clrs(config: dict, lo: int, hi: int) -> list[dict]:
    """Raw inputs of samples lo..hi-1 of dm-clrs's sampler stream (sequential by nature)."""
    rs = np.random.RandomState(config["seed"])
    algo = config["algorithm"]
    n = config["num_nodes"][0]
    kw = {k: v for k, v in config["options"].items() if k not in _GRAPH_DEFAULTS.get(algo, {})}
    out = []
    for i in range(hi):
        raw = clrs_stream_inputs(algo, rs, n, **kw)
        if i >= lo:
            if "A" in raw:
                raw["graph"] = from_dense(raw.pop("A"))
            out.append(raw)
    return out


def _run(algorithm: str, samples: list[dict]) -> TrajectoryBatch:
    """Execute drawn samples in index order, grouped so sorts see [B, n] and chunks stay within memory."""
    algo = get_algorithm(algorithm)
    groups: dict[int, list[int]] = {}
    for i, smp in enumerate(samples):
        n = smp["key"].size if algo.kind == "sort" else 0  # graph batches may mix sizes
        groups.setdefault(n, []).append(i)
    parts, order = [], []
    for n, idx in groups.items():
        per_chunk = max(1, _CHUNK_VALUES // max(1, _values_per_sample(algorithm, samples[idx[0]])))
        for c in range(0, len(idx), per_chunk):
            chunk = idx[c : c + per_chunk]
            if algo.kind == "sort":
                parts.append(run_batch(algorithm, keys=np.stack([samples[i]["key"] for i in chunk])))
            else:
                graphs = GraphBatch.from_edges([(g.n, g.senders, g.receivers, g.weights)
                                                for g in (samples[i]["graph"] for i in chunk)])
                sources = [samples[i]["s"] for i in chunk] if algo.needs_source else None
                parts.append(run_batch(algorithm, graphs=graphs, sources=sources))
            order.extend(chunk)
    batch = TrajectoryBatch.concatenate(parts)
    return batch if order == sorted(order) else batch.select(np.argsort(order))


def _values_per_sample(algorithm: str, sample: dict) -> int:
    """A rough count of the hint values one sample produces, for chunking."""
    n = sample["key"].size if "key" in sample else sample["graph"].n
    steps = {"bubble_sort": n * n // 2, "dfs": 3 * n, "heapsort": 8 * n, "quicksort": 7 * n}.get(algorithm, n)
    return steps * n + (0 if "key" in sample else sample["graph"].num_edges)


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
    if num_samples == 0:
        raise ValueError("num_samples must be positive")
    workers = os.cpu_count() or 1 if workers is None else workers
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
    """Block-aligned ranges, a few per worker for balance."""
    first, last = lo // BLOCK, (hi - 1) // BLOCK + 1
    per_task = max(1, -(-(last - first) // (4 * workers)))
    edges = [max(lo, b * BLOCK) for b in range(first, last, per_task)] + [hi]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if a < b]


def clrs_train(algorithm: str, num_samples: int, seed: int = 0, **kwargs) -> Dataset:
    """CLRS's training distribution: sizes 4, 7, 11, 13, 16 and (graphs) ER density p drawn from 0.1..0.9."""
    extra = {} if get_algorithm(algorithm).kind == "sort" else {"p": CLRS_TRAIN_P}
    return generate(algorithm, num_samples, CLRS_TRAIN_SIZES, seed, **{**extra, **kwargs})
