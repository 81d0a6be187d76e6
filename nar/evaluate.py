"""Jitted, batched evaluation with CLRS's metrics, at several graph sizes in one call.

`Evaluator` holds one jitted function per model (it compiles once per padded shape and counts its compiles);
`evaluate_sizes` draws test sets (CLRS's test distribution up to n=64, sparse graphs beyond by default) and
returns scores per size, per output probe and per hint: CLRS's node-level 'score' and the graph-level exact match
'exact' (the fraction of test graphs whose every output is entirely right; `nar.metrics`).
"""

from __future__ import annotations

import time

import jax
from flax import nnx

from nar.algorithms import get_algorithm
from nar.config import EvalConfig
from nar.data import generate
from nar.data.batch import cover, make_batch, pad_sizes_for, probes
from nar.data.graphs import CLRS_STREAM_ALGORITHMS
from nar.data.store import load as load_dataset
from nar.distributed import data_mesh, pooled, replicate, stack_groups
from nar.metrics import batch_counts, scores
from nar.model.memory import available_bytes, check_fits, estimate_bytes
from nar.model.net import Model, ModelConfig
from nar.specs import Stage
from nar.trajectory import TrajectoryBatch


def hint_probe_count(model: ModelConfig) -> int:
    """Hint probes whose predictions a model of this config returns per step (for the memory estimate)."""
    return 0 if model.hint_mode == "none" else len(probes(model.algorithm, Stage.HINT))


def batches(tb: TrajectoryBatch, model: ModelConfig, batch_size: int, max_edges: int, random_pos=None):
    """Split samples into padded batches for `model` (its message graph, triplets if it uses them) of at most
    `batch_size` graphs, about `max_edges` edges (a triplet counts as `triplet_features / hidden` of an edge) and
    half the device's memory by `nar.model.memory`'s estimate (long trajectories store many hint predictions);
    every batch of one call shares the same padded shape (one compile), sized for the largest."""
    kind, triplets = model.graph_kind, model.triplets
    hints = hint_probe_count(model)
    one = pad_sizes_for(tb.select([0]), kind, 1, triplets)
    per_graph = max(one.edges + one.triplets * model.triplet_features // model.hidden, 1)
    graph_bytes = max(estimate_bytes(one, model.hidden, False, model.triplet_features, hints,
                                     processor=model.processor), 1)
    per_batch = max(1, min(batch_size, max_edges // per_graph, available_bytes() // 2 // graph_bytes))
    groups = [range(i, min(i + per_batch, len(tb))) for i in range(0, len(tb), per_batch)]
    parts = [tb.select(g) for g in groups]
    sizes = [pad_sizes_for(p, kind, per_batch, triplets) for p in parts]
    pad = cover(sizes)
    check_fits(pad, model.hidden, False, kind, triplet_features=model.triplet_features, hint_probes=hints,
               processor=model.processor)
    return [make_batch(p, kind, pad, per_batch, random_pos, triplets) for p in parts]


class Evaluator:
    """Counts for a batch, jitted; `compiles` says how many times it was traced (once per padded shape).
    `closed_gate` evaluates G-ForgetNet with its history gate shut.

    Data parallel over `mesh` (default: every device, `nar.distributed.data_mesh`): a list of batches is evaluated
    D at a time, one batch per device, and the counts added (they are sums, so the scores equal one device's)."""

    def __init__(self, model: Model, closed_gate: bool = False, mesh=None):
        self.graphdef, _ = nnx.split(model)
        self.model = model
        self.mesh = data_mesh() if mesh is None else mesh
        self.compiles = 0

        def counts(params, batch):
            self.compiles += 1  # runs only while tracing
            m = nnx.merge(self.graphdef, params)
            return pooled(lambda b: batch_counts(m, m(b, train=False, closed_gate=closed_gate), b), batch)

        self._counts = jax.jit(counts)

    def place(self, batch_list) -> list:
        """Host batches of one padded shape -> what the devices run: each batch on the device (one device), or D
        batches per stacked, sharded group batch (`nar.distributed.stack_groups`); placed batches are kept."""
        if self.mesh.size == 1:
            return [jax.device_put(b) for b in batch_list]
        if all(b.lengths.ndim == 2 for b in batch_list):
            return list(batch_list)
        return stack_groups(self.mesh, list(batch_list))

    def __call__(self, params, batch_list) -> dict:
        """Pooled scores over a list of batches (host batches, or batches from `place`)."""
        if self.mesh.size > 1:
            params = replicate(self.mesh, params)
            batch_list = self.place(batch_list)
        total = None
        for b in batch_list:
            c = self._counts(params, b)
            total = c if total is None else jax.tree.map(lambda a, x: a + x, total, c)
        return scores(self.model, jax.device_get(total))


def test_set(algorithm: str, n: int, cfg: EvalConfig) -> TrajectoryBatch:
    """The test trajectories at size n: `cfg.samples` draws from `cfg.seed`. Graph algorithms on `cfg.family(n)`
    (CLRS's ER through dm-clrs's own sampler stream for the built-in ones: at n=64, seed 3 this is CLRS30's test
    split); an array algorithm (a sort) takes uniform keys, whatever the family."""
    stream = "clrs" if algorithm in CLRS_STREAM_ALGORITHMS else "nar"
    family = cfg.family(n)
    if get_algorithm(algorithm).kind == "sort" or family == "er":
        return generate(algorithm, cfg.samples, n, cfg.seed, stream=stream).trajectories
    extra = {"degree": cfg.degree} if family == "sparse_er" else {}
    return generate(algorithm, cfg.samples, n, cfg.seed, graph=family, **extra).trajectories


def evaluate_sizes(model: Model, params, cfg: EvalConfig, evaluator: Evaluator | None = None,
                   log=None) -> dict:
    """{n: {'score', 'exact', 'output/<name>', 'exact/<name>', 'hint/<name>', 'graphs', 'family', 'data_hash',
    'data_seconds', 'eval_seconds'}} for every size in cfg: 'score' is CLRS's node-level score, 'exact' the
    fraction of test graphs whose every output is entirely right (NaN for a model without a non-scalar output),
    'exact/<name>' the same per output (`nar.metrics`); `data_hash`: `TrajectoryBatch.content_hash` of the test
    set."""
    evaluator = evaluator or Evaluator(model, cfg.closed_gate)
    algorithm = model.config.algorithm
    results = {}
    for n in cfg.sizes:
        t0 = time.perf_counter()
        tb = test_set(algorithm, n, cfg)
        t1 = time.perf_counter()
        res = evaluator(params, batches(tb, model.config, cfg.batch_size, cfg.max_edges_per_batch))
        family = "uniform keys" if get_algorithm(algorithm).kind == "sort" else cfg.family(n)
        results[n] = {**res, "graphs": len(tb), "family": family, "data_hash": tb.content_hash(),
                      "data_seconds": t1 - t0,
                      "eval_seconds": time.perf_counter() - t1}
        if log:
            log(f"n={n}: score {res['score']:.4f}, exact {res['exact']:.4f} ({len(tb)} graphs, "
                f"{time.perf_counter() - t1:.1f}s)")
    return results


def evaluate_dataset(model: Model, params, path, cfg: EvalConfig, evaluator: Evaluator | None = None) -> dict:
    """Scores on a stored dataset (`nar.data.store` folder, e.g. a `nar generate` suite split), keyed by its size.
    A corrupt folder raises `CorruptDatasetError`; a dataset of another algorithm is refused."""
    ds = load_dataset(path)
    if ds.algorithm != model.config.algorithm:
        raise ValueError(f"dataset {path} holds {ds.algorithm} trajectories but the model was trained on "
                         f"{model.config.algorithm}")
    tb = ds.trajectories
    evaluator = evaluator or Evaluator(model, cfg.closed_gate)
    t0 = time.perf_counter()
    res = evaluator(params, batches(tb, model.config, cfg.batch_size, cfg.max_edges_per_batch))
    n = int(tb.n_node.max())
    return {n: {**res, "graphs": len(tb), "family": f"data:{ds.config.get('graph') or 'keys'}",
                "data_hash": tb.content_hash(),
                "data_seconds": 0.0, "eval_seconds": time.perf_counter() - t0}}


def format_table(results: dict, title: str = "") -> str:
    """A plain-text table: one row per size, the node-level score and the graph-level exact match ('exact'), then
    each output, each output's exact match (only with several outputs: with one it is 'exact') and each hint."""
    sizes = sorted(results)
    keys = {k for r in results.values() for k in r if "/" in k}
    if sum(k.startswith("exact/") for k in keys) < 2:
        keys = {k for k in keys if not k.startswith("exact/")}
    order = {"output": 0, "exact": 1, "hint": 2}
    keys = sorted(keys, key=lambda k: (order.get(k.split("/", 1)[0], 3), k))
    head = f"{'n':>6} {'family':<13} {'graphs':>6} {'score':>7} {'exact':>7} " + " ".join(f"{k:>14}" for k in keys)
    lines = ([title] if title else []) + [head]
    for n in sizes:
        r = results[n]
        lines.append(f"{n:>6} {r['family']:<13} {r['graphs']:>6} {r['score']:>7.4f} "
                     f"{r.get('exact', float('nan')):>7.4f} "
                     + " ".join(f"{r.get(k, float('nan')):>14.4f}" for k in keys))
    return "\n".join(lines)
