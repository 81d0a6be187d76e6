"""ForgetNet / G-ForgetNet tests: closed-gate G-ForgetNet equals ForgetNet with the same parameters, ForgetNet's
step ignores the previous hidden state for every base processor (processor and decoders) and the whole model is
Markov in its hints, the history gate against NumPy, the mean-gate statistic against a per-step recomputation
(padding excluded), both gate penalties' values and gradients, the config checks, and a tiny training run
evaluated with `nar eval --gate closed`.

Models are built abstractly and filled from NumPy (`abstract_params.random_params`); every jitted function is
cached per model config and compiles once per padded shape. XLA's optimisations are off for the whole module
(the Trainer's compiles included): these tests check values, not speed, and compiles take half the time.
"""

import importlib
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from abstract_params import random_params
from flax import nnx

from nar.cli import main
from nar.config import Config, EvalConfig, TrainConfig, from_dict
from nar.data import generate
from nar.data.batch import PadSizes, make_batch
from nar.model.losses import total_loss, training_loss
from nar.model.net import Model, ModelConfig, graph_of
from nar.processors.forget import Forget
from nar.train import METRICS_FILE, Trainer

HIDDEN = 8
BASES = ("mpnn", "pgn", "gmpnn", "triplet_gmpnn")


@pytest.fixture(scope="module", autouse=True)
def fast_compiles():
    """XLA with most optimisations off while this module runs (see the module docstring)."""
    old = jax.config.values["jax_disable_most_optimizations"]
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", old)


def as_np(tree):
    return jax.tree.map(np.asarray, tree)


def offsets(counts):
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def config(processor: str, base: str = "mpnn", algorithm: str = "bfs", **options) -> ModelConfig:
    return ModelConfig(algorithm, processor, hidden=HIDDEN, base_processor=base, **options)


_MODELS: dict = {}


def model_of(cfg: ModelConfig):
    """(graphdef, random parameters as a pure NumPy dict, jitted forward) of a config, cached; each config gets
    parameters of its own. The forward is fn(params, batch, key, train=, closed=) -> (outputs, hints, stats)."""
    if cfg not in _MODELS:
        _, gd, params = random_params(lambda: Model(cfg, rngs=nnx.Rngs(0)), seed=len(_MODELS))

        def fwd(p, b, k, train, closed):
            preds = nnx.merge(gd, p)(b, k, train=train, closed_gate=closed)
            return preds.outputs, preds.hints, preds.stats

        _MODELS[cfg] = (gd, params, jax.jit(fwd, static_argnames=("train", "closed")))
    return _MODELS[cfg]


def forward(cfg, batch, params=None, closed=False, train=False, key=None):
    _, own, fn = model_of(cfg)
    key = jax.random.key(0) if key is None else key
    return as_np(fn(own if params is None else params, batch, key, train=train, closed=closed))


def without_gate(params):
    """G-ForgetNet's parameters less its history gate: the parameters of a ForgetNet with the same base."""
    return {**params, "processor": {k: v for k, v in params["processor"].items() if k not in ("gate_in", "gate_out")}}


def assert_trees_close(a, b, what, rtol=1e-5, atol=1e-6):
    assert jax.tree.structure(a) == jax.tree.structure(b), what
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, err_msg=f"{what} {jax.tree_util.keystr(path)}")


# Four bfs samples of lengths 4, 3, 5, 3 (different lengths: padded steps after the short ones).
@pytest.fixture(scope="module")
def bfs_tb():
    tb = generate("bfs", 4, [5, 4, 6, 5], seed=6, p=0.6).trajectories
    assert tb.n_step.tolist() == [4, 3, 5, 3]
    return tb


@pytest.fixture(scope="module")
def bf_tb():
    return generate("bellman_ford", 3, [4, 5, 4], seed=2, p=0.6).trajectories


def batch_for(tb, cfg: ModelConfig, pad=None):
    return jax.device_put(make_batch(tb, cfg.graph_kind, pad=pad, triplets=cfg.triplets))


# ---------------------------------------------------------------------------------------------------------------
# 1. Closed-gate G-ForgetNet == ForgetNet


@pytest.mark.parametrize("algorithm", ["bfs", "bellman_ford"])
def test_closed_gate_g_forgetnet_is_forgetnet_with_the_same_parameters(bfs_tb, bf_tb, algorithm):
    """G-ForgetNet has ForgetNet's parameters plus the gate MLP; with the gate shut and the shared parameters
    copied, both give the same outputs and hint logits."""
    g_cfg, f_cfg = config("g_forgetnet", algorithm=algorithm), config("forgetnet", algorithm=algorithm)
    _, g_params, _ = model_of(g_cfg)
    _, f_params, _ = model_of(f_cfg)
    shared = without_gate(g_params)
    assert set(g_params["processor"]) == {"base", "gate_in", "gate_out"} and set(f_params["processor"]) == {"base"}
    assert jax.tree.structure(shared) == jax.tree.structure(f_params)
    assert [x.shape for x in jax.tree.leaves(shared)] == [x.shape for x in jax.tree.leaves(f_params)]
    assert any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(shared), jax.tree.leaves(f_params)))

    b = batch_for(bfs_tb if algorithm == "bfs" else bf_tb, g_cfg)
    f_out, f_hints, f_stats = forward(f_cfg, b, shared)
    c_out, c_hints, c_stats = forward(g_cfg, b, g_params, closed=True)
    assert f_hints and f_stats == {} and set(c_stats) == {"gate"}
    assert_trees_close(c_out, f_out, "outputs")
    assert_trees_close(c_hints, f_hints, "hint logits")


def test_open_gate_differs_from_forgetnet(bfs_tb):
    """With the gate open, G-ForgetNet uses the history: its predictions differ from ForgetNet's with the same
    shared parameters."""
    g_cfg, f_cfg = config("g_forgetnet"), config("forgetnet")
    _, g_params, _ = model_of(g_cfg)
    b = batch_for(bfs_tb, g_cfg)
    f_out, f_hints, _ = forward(f_cfg, b, without_gate(g_params))
    o_out, o_hints, _ = forward(g_cfg, b, g_params)
    assert any(not np.allclose(o_out[n], f_out[n], rtol=1e-3, atol=1e-4) for n in f_out)
    assert any(not np.allclose(o_hints[n], f_hints[n], rtol=1e-3, atol=1e-4) for n in f_hints)


# ---------------------------------------------------------------------------------------------------------------
# 2. ForgetNet's step does not read the previous hidden state


_STEPS: dict = {}


def step_of(cfg: ModelConfig):
    """(params, jitted fn(params, node, edge, graph_fts, graph, hidden) -> (new hidden, edge latent)): one step
    of the model's processor, its input hidden state first passed through `history`."""
    if cfg not in _STEPS:
        gd, params, _ = model_of(cfg)

        def step(p, node_fts, edge_fts, graph_fts, graph, hidden):
            proc = nnx.merge(gd, p).processor
            h, _ = proc.history(node_fts, hidden)
            return proc(node_fts, edge_fts, graph_fts, graph, h)

        _STEPS[cfg] = (params, jax.jit(step))
    return _STEPS[cfg]


@pytest.mark.parametrize("base", BASES)
def test_forgetnet_step_ignores_the_previous_hidden_state(bfs_tb, base):
    """Noise added to h_prev leaves ForgetNet's new hidden state and edge latent exactly unchanged (for gmpnn the
    update gate's residual (1 - g) h_prev vanishes too), and changes them for G-ForgetNet and the plain base."""
    rng = np.random.default_rng(1)
    graph = None
    for processor in ("forgetnet", "g_forgetnet", base):
        cfg = config(processor, base)
        params, step = step_of(cfg)
        if graph is None:
            graph = graph_of(batch_for(bfs_tb, cfg))
            N, E, G = graph.num_nodes, graph.num_edges, graph.num_graphs
            node, edge, gfts, hidden, noise = (rng.normal(size=s).astype(np.float32)
                                               for s in ((N, HIDDEN), (E, HIDDEN), (G, HIDDEN), (N, HIDDEN),
                                                         (N, HIDDEN)))
        h1, lat1 = as_np(step(params, node, edge, gfts, graph, hidden))
        h2, lat2 = as_np(step(params, node, edge, gfts, graph, hidden + noise))
        assert (lat1 is None) == (base != "triplet_gmpnn")
        if processor == "forgetnet":
            np.testing.assert_array_equal(h1, h2)
            if lat1 is not None:
                np.testing.assert_array_equal(lat1, lat2)
        else:
            assert np.abs(h1 - h2).max() > 1e-3, processor
            if lat1 is not None:
                assert np.abs(lat1 - lat2).max() > 1e-3, processor


def perturb_prev_rows(params, seed=0):
    """Noise on the decoder weights that read h_prev: rows H..2H of every kernel over [x || h_prev || h]."""
    rng = np.random.default_rng(seed)

    def go(path, x):
        if str(path[-1].key) != "kernel" or x.shape[0] != 3 * HIDDEN:
            return x
        x = x.copy()
        x[HIDDEN:2 * HIDDEN] += rng.normal(size=x[HIDDEN:2 * HIDDEN].shape).astype(np.float32)
        return x

    dec = ("hint_decoder", "output_decoder")
    return {k: jax.tree_util.tree_map_with_path(go, v) if k in dec else v for k, v in params.items()}


def test_forgetnet_decoders_see_zero_history(bfs_tb):
    """The decoders read [x || h_prev || h]; ForgetNet's h_prev is zero, so changing the decoder weights on h_prev
    changes nothing, while it changes the predictions of G-ForgetNet and of the plain processor."""
    for processor in ("forgetnet", "g_forgetnet", "mpnn"):
        cfg = config(processor)
        _, params, _ = model_of(cfg)
        moved = perturb_prev_rows(params)
        assert sum(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(params), jax.tree.leaves(moved))) >= 3
        b = batch_for(bfs_tb, cfg)
        out, hints, _ = forward(cfg, b, params)
        out2, hints2, _ = forward(cfg, b, moved)
        if processor == "forgetnet":
            for name in out:
                np.testing.assert_array_equal(out[name], out2[name], err_msg=name)
            for name in hints:
                np.testing.assert_array_equal(hints[name], hints2[name], err_msg=name)
        else:
            assert not np.allclose(out["pi"], out2["pi"], atol=1e-4), processor
            assert not np.allclose(hints["reach_h"], hints2["reach_h"], atol=1e-4), processor


def shifted(b, s: int):
    """The batch started at hint s: hint t + s becomes hint t (the tail repeats the last padded step)."""
    hints = {n: jnp.concatenate([h[s:], jnp.repeat(h[-1:], s, 0)]) for n, h in b.hints.items()}
    return b._replace(hints=hints, lengths=jnp.maximum(b.lengths - s, 0))


def test_forgetnet_is_markov_in_its_hints(bfs_tb):
    """With every hint teacher-forced, ForgetNet's hint logits at step t depend only on the inputs and hint t:
    the batch started at hint 2 gives, at step t - 2, the logits the full batch gives at step t (neither the
    processor nor the decoders see an earlier step). The plain processor carries its hidden state: they differ."""
    s = 2
    for processor in ("forgetnet", "mpnn"):
        cfg = config(processor, teacher_forcing=1.0)
        b = batch_for(bfs_tb, cfg)
        T = b.pad_sizes.steps - 1
        hints = forward(cfg, b, train=True)[1]
        later = forward(cfg, shifted(b, s), train=True)[1]
        for name in hints:
            got, want = later[name][:T - s], hints[name][s:]
            if processor == "forgetnet":
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)
            else:
                assert not np.allclose(got, want, rtol=1e-3, atol=1e-4), name


# ---------------------------------------------------------------------------------------------------------------
# 3. The history gate against NumPy


def test_history_gate_against_numpy():
    """hist = sigmoid(W2 relu(W1 [x || h] + b1) + b2) * h per channel, from the module's own weights; the gate
    statistic is its mean over channels. Closed: zero history and zero gate. ForgetNet: zero history, no stats."""
    gd, params, _ = model_of(config("g_forgetnet"))
    proc = nnx.merge(gd, params).processor
    rng = np.random.default_rng(3)
    x, h = (rng.normal(size=(7, HIDDEN)).astype(np.float32) for _ in range(2))
    hist, stats = as_np(proc.history(x, h))

    p = {k: {n: np.asarray(v, np.float64) for n, v in params["processor"][k].items()} for k in ("gate_in", "gate_out")}
    assert p["gate_in"]["kernel"].shape == (2 * HIDDEN, HIDDEN) and p["gate_out"]["kernel"].shape == (HIDDEN, HIDDEN)
    hidden = np.maximum(np.concatenate([x, h], -1) @ p["gate_in"]["kernel"] + p["gate_in"]["bias"], 0.0)
    gate = 1.0 / (1.0 + np.exp(-(hidden @ p["gate_out"]["kernel"] + p["gate_out"]["bias"])))
    assert gate.std(-1).min() > 1e-3  # per channel, not one gate per node
    np.testing.assert_allclose(hist, gate * h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats["gate"], gate.mean(-1), rtol=1e-5, atol=1e-6)

    hist, stats = as_np(proc.history(x, h, closed=True))
    np.testing.assert_array_equal(hist, np.zeros_like(h))
    np.testing.assert_array_equal(stats["gate"], np.zeros(len(h)))
    f_gd, f_params, _ = model_of(config("forgetnet"))
    hist, stats = as_np(nnx.merge(f_gd, f_params).processor.history(x, h))
    np.testing.assert_array_equal(hist, np.zeros_like(h))
    assert stats == {}


# ---------------------------------------------------------------------------------------------------------------
# 4. The mean-gate statistic


def test_gate_statistic_is_the_mean_over_real_nodes_and_steps(bfs_tb, monkeypatch):
    """stats['gate'] is the mean of the per-node gate over real nodes at the steps t with t + 1 < L of their own
    sample: recomputed from the per-step gates (recorded by a callback) on a batch with extra padding (nodes,
    steps, graph slots), with masks built from the trajectories; the padding leaves it unchanged. It is in
    (0, 1), and 0 with the gate shut."""
    cfg = config("g_forgetnet")
    gd, params, _ = model_of(cfg)
    b = batch_for(bfs_tb, cfg)
    stats = forward(cfg, b)[2]
    assert 0.0 < stats["gate"] < 1.0
    assert forward(cfg, b, closed=True)[2]["gate"] == 0.0

    gates = []
    original = Forget.history

    def recording(self, node_fts, hidden, *, closed=False):
        out = original(self, node_fts, hidden, closed=closed)
        jax.debug.callback(lambda g: gates.append(np.asarray(g)), out[1]["gate"], ordered=True)
        return out

    pad = b.pad_sizes
    big = PadSizes(nodes=pad.nodes + 16, edges=pad.edges + 64, steps=pad.steps + 2, graphs=pad.graphs + 2)
    padded = batch_for(bfs_tb, cfg, pad=big)
    monkeypatch.setattr(Forget, "history", recording)
    recorded = as_np(jax.jit(lambda p, b: nnx.merge(gd, p)(b).stats)(params, padded))
    monkeypatch.undo()
    # One gate per computed step: the steps beyond every sample's length are skipped (`skip_padded_steps`).
    assert len(gates) == int(bfs_tb.n_step.max()) - 1 < big.steps - 1 and all(g.shape == (big.nodes,) for g in gates)

    noff = offsets(bfs_tb.n_node)
    total = count = 0.0
    for t, g in enumerate(gates):
        for i, L in enumerate(bfs_tb.n_step.tolist()):
            if t + 1 < L:
                total += g[noff[i]:noff[i + 1]].astype(np.float64).sum()
                count += noff[i + 1] - noff[i]
    assert abs(np.mean(gates) - total / count) > 1e-4  # the mask matters (20x the tolerance below): padding is out
    np.testing.assert_allclose(recorded["gate"], total / count, rtol=1e-5)
    np.testing.assert_allclose(stats["gate"], recorded["gate"], rtol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# 5. Gate penalties: values and gradients


def test_gate_penalties_values_and_gradients(bfs_tb):
    """'magnitude': loss = total + w * gate and grad(w) - grad(0) = w * grad(gate). 'closed_loss': loss = total
    (open) + w * total (closed) and its gradient is grad(open) + w * grad(closed), which does not reach the gate
    weights. References from `total_loss` on the model run directly. (No hints: half the compile time.)"""
    cfg = config("g_forgetnet", hint_mode="none")
    gd, params, _ = model_of(cfg)
    b = batch_for(bfs_tb, cfg)
    key = jax.random.key(5)
    w = 0.7

    def reference(p, coef):
        """coef . (total loss with the gate open, mean gate, total loss with the gate shut)."""
        m = nnx.merge(gd, p)
        preds = m(b, key, train=True)
        terms = (total_loss(m, preds, b)[0], preds.stats["gate"],
                 total_loss(m, m(b, key, train=True, closed_gate=True), b)[0])
        return sum(c * x for c, x in zip(coef, terms)), terms

    ref_fn = jax.jit(jax.grad(reference, has_aux=True))
    (g_total, (total, gate, closed)), (g_gate, _), (g_closed, _) = (
        as_np(ref_fn(params, jnp.asarray(c, jnp.float32))) for c in np.eye(3))

    def penalised(p, weight, penalty):
        loss, _, stats = training_loss(nnx.merge(gd, p), b, key, penalty, weight)
        return loss, stats

    grad_fn = jax.jit(jax.value_and_grad(penalised, has_aux=True), static_argnames="penalty")

    (loss0, _), grads0 = as_np(grad_fn(params, 0.0, "magnitude"))
    (loss, stats), grads = as_np(grad_fn(params, w, "magnitude"))
    np.testing.assert_allclose(loss0, total, rtol=1e-5)
    np.testing.assert_allclose(loss, total + w * gate, rtol=1e-5)
    np.testing.assert_allclose(stats["gate_penalty"], gate, rtol=1e-5)
    np.testing.assert_allclose(stats["gate"], gate, rtol=1e-5)
    scale = max(np.abs(x).max() for x in jax.tree.leaves(g_gate))
    assert scale > 0
    assert_trees_close(grads0, g_total, "grad(w=0)", rtol=1e-4, atol=1e-6)
    assert_trees_close(jax.tree.map(np.subtract, grads, grads0), jax.tree.map(lambda x: w * x, g_gate),
                       "grad(w) - grad(0)", rtol=1e-3, atol=1e-4 * w * scale)

    (loss, stats), grads = as_np(grad_fn(params, w, "closed_loss"))
    np.testing.assert_allclose(loss, total + w * closed, rtol=1e-5)
    np.testing.assert_allclose(stats["gate_penalty"], closed, rtol=1e-5)
    scale = max(np.abs(x).max() for x in jax.tree.leaves(g_total))
    assert_trees_close(grads, jax.tree.map(lambda a, c: a + w * c, g_total, g_closed), "closed_loss grad",
                       rtol=1e-4, atol=1e-5 * scale)
    for layer in ("gate_in", "gate_out"):
        assert all(not x.any() for x in jax.tree.leaves(g_closed["processor"][layer])), layer
        assert any(x.any() for x in jax.tree.leaves(g_total["processor"][layer])), layer


@pytest.mark.parametrize("processor, penalty, match", [
    ("forgetnet", "magnitude", "needs a processor with a history gate"),
    ("mpnn", "closed_loss", "needs a processor with a history gate"),
    ("g_forgetnet", "gate_norm", "unknown gate_penalty 'gate_norm'"),
])
def test_gate_penalty_needs_a_gate_and_a_known_name(bfs_tb, processor, penalty, match):
    """A gate penalty on a model without a history gate, or an unknown penalty, is a ValueError naming it
    (checked while tracing: nothing is compiled)."""
    cfg = config(processor)
    gd, params, _ = model_of(cfg)
    b = batch_for(bfs_tb, cfg)
    with pytest.raises(ValueError, match=match):
        jax.eval_shape(lambda p: training_loss(nnx.merge(gd, p), b, jax.random.key(0), penalty, 0.1), params)


# ---------------------------------------------------------------------------------------------------------------
# 6. Config


def test_penalty_weight_ramps_then_stays():
    """The weight ramps linearly from 0 over the warm-up, then stays at gate_penalty_weight; no penalty: 0."""
    t = TrainConfig(gate_penalty="magnitude", gate_penalty_weight=0.5, gate_penalty_warmup=4)
    np.testing.assert_allclose([t.penalty_weight(s) for s in range(8)],
                               [0.5 * min(1.0, s / 4) for s in range(8)], rtol=1e-12)
    t = TrainConfig(gate_penalty="closed_loss", gate_penalty_weight=0.3)
    assert [t.penalty_weight(s) for s in (0, 1, 100)] == [0.3, 0.3, 0.3]
    t = TrainConfig(gate_penalty_weight=0.3, gate_penalty_warmup=2)
    assert [t.penalty_weight(s) for s in (0, 1, 5)] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("make, match", [
    (lambda: TrainConfig(gate_penalty="l2"), r"train\.gate_penalty must be one of .*'l2'"),
    (lambda: TrainConfig(gate_penalty="magnitude", gate_penalty_weight=-0.1), "gate_penalty_weight"),
    (lambda: TrainConfig(gate_penalty_warmup=-1), "gate_penalty_warmup"),
    (lambda: Config(ModelConfig(processor="forgetnet"), TrainConfig(gate_penalty="magnitude")),
     r"train\.gate_penalty='magnitude' needs model\.processor = 'g_forgetnet'.*'forgetnet'"),
    (lambda: Config(ModelConfig(processor="mpnn"), eval=EvalConfig(closed_gate=True)),
     r"eval\.closed_gate needs model\.processor = 'g_forgetnet'.*'mpnn'"),
    (lambda: ModelConfig(processor="forgetnet", base_processor="g_forgetnet"),
     "base_processor must be .*'g_forgetnet'"),
    (lambda: ModelConfig(processor="g_forgetnet", base_processor="forgetnet"),
     "base_processor must be .*'forgetnet'"),
    (lambda: ModelConfig(processor="forgetnet", base_processor="transformer"), "unknown processor 'transformer'"),
    (lambda: from_dict({"model": {"processor": "pgn"}, "eval": {"closed_gate": True}}), r"eval\.closed_gate"),
])
def test_config_errors(make, match):
    """Each inconsistent gate/wrapper setting is a ValueError whose message names it."""
    with pytest.raises(ValueError, match=match):
        make()


def test_wrapper_configs_take_their_base_graph_and_triplets():
    """A wrapper lays batches out as its base processor does (message graph, triplets); the valid gate settings
    pass the cross-checks."""
    assert ModelConfig(processor="forgetnet", base_processor="pgn_mask").graph_kind == "input"
    assert ModelConfig(processor="forgetnet", base_processor="pgn").graph_kind == "complete"
    assert ModelConfig(processor="g_forgetnet", base_processor="mpnn").graph_kind == "complete"
    assert ModelConfig(processor="forgetnet", base_processor="triplet_gmpnn").triplets
    assert not ModelConfig(processor="g_forgetnet", base_processor="gmpnn").triplets
    assert ModelConfig(processor="forgetnet", base_processor="pgn").core.name == "pgn"
    cfg = Config(ModelConfig(processor="g_forgetnet"), TrainConfig(gate_penalty="closed_loss"),
                 EvalConfig(closed_gate=True))
    assert cfg.train.penalty_weight(0) == 0.1 and cfg.eval.closed_gate
    assert from_dict(cfg.to_dict()) == cfg


# ---------------------------------------------------------------------------------------------------------------
# 7. Training and `nar eval --gate closed`


def tiny_run(processor: str, steps: int, **train) -> Config:
    return from_dict({"model": {"algorithm": "bfs", "processor": processor, "hidden": HIDDEN, "hint_mode": "none"},
                      "train": {"steps": steps, "batch_size": 4, "sizes": [4], "val_samples": 4, "val_size": 5,
                                "log_every": 1, "eval_every": steps, "checkpoint_every": steps, **train}})


def test_training_with_gate_penalty_and_closed_gate_eval(tmp_path, capsys, monkeypatch):
    """A 3-step G-ForgetNet run with the magnitude penalty logs the mean gate, in (0, 1), and the penalty (the
    same number) at every step; `nar eval --gate closed` evaluates it with the gate shut (the model is called with
    closed_gate=True). On a ForgetNet run `--gate closed` is refused (exit code 2, naming closed_gate): that run is
    only its config (`load_run` stubbed; training one would add a compile of the training step)."""
    run = tmp_path / "g"
    Trainer(tiny_run("g_forgetnet", 3, gate_penalty="magnitude", gate_penalty_warmup=2), run, progress=False).run()
    records = [json.loads(line) for line in (run / METRICS_FILE).read_text().splitlines()]
    logged = [r for r in records if "loss" in r]
    assert [r["step"] for r in logged] == [1, 2, 3]
    for r in logged:
        assert 0.0 < r["gate"] < 1.0 and r["gate_penalty"] == pytest.approx(r["gate"], rel=1e-6)
    assert len([r for r in records if "val_score" in r]) == 1

    seen, call = [], Model.__call__

    def spy(self, *args, closed_gate=False, **kwargs):
        seen.append(closed_gate)
        return call(self, *args, closed_gate=closed_gate, **kwargs)

    monkeypatch.setattr(Model, "__call__", spy)
    capsys.readouterr()
    assert main(["eval", str(run), "--gate", "closed", "--sizes", "5", "--samples", "4", "--json"]) == 0
    assert seen and all(seen)  # the evaluator ran the model with the gate shut
    report = json.loads(capsys.readouterr().out)
    assert report["processor"] == "g_forgetnet" and report["eval"]["closed_gate"] is True
    assert 0.0 <= report["results"]["5"]["score"] <= 1.0

    train_module = importlib.import_module("nar.train")  # `nar.train` the attribute is the function train()
    monkeypatch.setattr(train_module, "load_run", lambda run, which: (None, None, tiny_run("forgetnet", 1)))
    assert main(["eval", str(tmp_path / "f"), "--gate", "closed", "--sizes", "5", "--json"]) == 2
    err = capsys.readouterr().err
    assert "closed_gate" in err and "forgetnet" in err
