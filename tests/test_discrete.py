"""The discrete processor (dnar): its step against its equations computed in numpy, the straight-through attention,
the scalar flow, and the size generalisation a discrete step is built for (train on n <= 16, exact at n = 1,024)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from nar.config import EvalConfig, load
from nar.data import generate
from nar.data.batch import make_batch, pad_sizes_for
from nar.evaluate import evaluate_sizes
from nar.model.discrete import DiscreteModel
from nar.model.net import ModelConfig, graph_of
from nar.processors.base import Graph
from nar.processors.discrete import DiscreteStep
from nar.train import Trainer, load_run

H = 4


def small_graph():
    """Three nodes, edges (sender, receiver) sorted by receiver then sender, self-loops included."""
    edges = [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (1, 2), (2, 2)]
    s, r = (np.array(x, np.int32) for x in zip(*edges))
    return Graph(s, r, np.zeros(3, np.int32), np.zeros(len(s), np.int32), np.array([3, 0], np.int32))


def lin(layer, x):
    p = layer.bias[...] if layer.bias is not None else 0.0
    return x @ np.asarray(layer.kernel[...]) + np.asarray(p)


def test_step_follows_its_equations():
    rng = np.random.default_rng(0)
    step = DiscreteStep(H, rngs=nnx.Rngs(1))
    graph = small_graph()
    node_F = rng.integers(0, 2, (3, 3)).astype(np.float32)
    edge_F = rng.integers(0, 2, (7, 3)).astype(np.float32)
    sigma = rng.random(7).astype(np.float32)
    cls, ptr, alpha = (np.asarray(a) for a in step(node_F, edge_F, sigma, graph))
    s, r = graph.senders, graph.receivers
    x, e = lin(step.node_emb, node_F), lin(step.edge_emb, edge_F)
    # DNAR's logit (<Q_v, K_u + E_uv> + H w sigma_uv) / sqrt(H), the scalar weight w starting at -1
    logit = (np.sum(lin(step.query, x)[r] * (lin(step.key, x)[s] + lin(step.edge_key, e)), -1)
             - H * 1.0 * sigma) / np.sqrt(H)
    want_alpha = np.zeros(7)
    for v in range(3):
        idx = np.flatnonzero(r == v)
        want_alpha[idx[np.argmax(logit[idx])]] = 1.0
    np.testing.assert_array_equal(alpha, want_alpha)
    msg = lin(step.message, np.concatenate([x[s], e], -1))
    m = np.stack([(want_alpha[:, None] * msg)[r == v].sum(0) for v in range(3)])
    xm = np.concatenate([x, m], -1)
    np.testing.assert_allclose(cls, lin(step.node_out, np.maximum(lin(step.node_hidden, xm), 0)), rtol=1e-5,
                               atol=1e-5)
    self_alpha = np.array([want_alpha[(s == v) & (r == v)].sum() for v in range(3)])
    hidden = np.maximum(lin(step.edge_hidden, e) + lin(step.edge_node, xm)[r]
                        + lin(step.edge_alpha, np.stack([want_alpha, self_alpha[r]], -1)), 0)
    np.testing.assert_allclose(ptr, lin(step.edge_out, hidden)[:, 0], rtol=1e-5, atol=1e-5)


def test_gated_attention_picks_by_the_scalar_among_gated_candidates():
    # dnar_attention = "gated": candidates are the in-edges with g_uv = <Q_v, K_u + E_uv> / sqrt(H) > 0, and alpha is
    # the one-hot arg-max of w sigma among them (w = -1: the smallest sigma; ties to the lowest sender), 0 where no
    # in-edge is a candidate. Checked on many random states, so that both gated and empty receivers occur.
    rng = np.random.default_rng(3)
    step = DiscreteStep(H, rngs=nnx.Rngs(4), dnar_attention="gated")
    graph = small_graph()
    s, r = graph.senders, graph.receivers
    seen_empty = seen_partial = False
    for _ in range(40):
        node_F = rng.integers(0, 2, (3, 3)).astype(np.float32)
        edge_F = rng.integers(0, 2, (7, 3)).astype(np.float32)
        sigma = rng.integers(0, 3, 7).astype(np.float32)  # few values: ties occur
        _, _, alpha = step(node_F, edge_F, sigma, graph)
        x, e = lin(step.node_emb, node_F), lin(step.edge_emb, edge_F)
        gate = np.sum(lin(step.query, x)[r] * (lin(step.key, x)[s] + lin(step.edge_key, e)), -1) / np.sqrt(H)
        want = np.zeros(7)
        for v in range(3):
            idx = [i for i in np.flatnonzero(r == v) if gate[i] > 0]
            seen_empty |= not idx
            seen_partial |= 0 < len(idx) < np.sum(r == v)
            if idx:
                best = min(idx, key=lambda i: (sigma[i], s[i]))
                want[best] = 1.0
        np.testing.assert_array_equal(np.asarray(alpha), want)
    assert seen_empty and seen_partial  # the draws exercised both cases


def test_gated_attention_trains_straight_through():
    # Training: the same hard choice in the forward pass; gradients reach the gate's parameters and w.
    step = DiscreteStep(H, rngs=nnx.Rngs(5), dnar_attention="gated")
    graph = small_graph()
    node_F, edge_F = np.eye(3, dtype=np.float32), np.ones((7, 3), np.float32)
    sigma = np.linspace(0, 1, 7).astype(np.float32)
    hard = np.asarray(step(node_F, edge_F, sigma, graph)[2])
    np.testing.assert_allclose(np.asarray(step(node_F, edge_F, sigma, graph, jax.random.key(0))[2]), hard,
                               atol=1e-6)

    def attended_sigma(module):
        return jnp.sum(module(node_F, edge_F, sigma, graph, jax.random.key(0))[2] * sigma)

    grads = nnx.grad(attended_sigma)(step)
    assert abs(float(grads["scalar_weight"][...])) > 0
    assert np.abs(np.asarray(grads["query"]["kernel"][...])).sum() > 0
    # Every gate closed (g = 0 on every edge): no edge is attended, yet the loss still reaches the gates' common
    # level (the key's bias shifts all of a receiver's g together), so training can open them.
    for layer in (step.key, step.edge_key):
        layer.kernel[...] = jnp.zeros_like(layer.kernel[...])
        layer.bias[...] = jnp.zeros_like(layer.bias[...])
    assert not np.asarray(step(node_F, edge_F, sigma, graph)[2]).any()
    grads = nnx.grad(attended_sigma)(step)
    assert np.abs(np.asarray(grads["key"]["bias"][...])).sum() > 1e-3  # a softmax alone gives about 1e-8 here


def test_refuses_an_unknown_attention():
    with pytest.raises(ValueError, match="dnar_attention must be one of .*'additive', 'gated'.*got 'soft'"):
        ModelConfig(algorithm="bfs", processor="dnar", dnar_attention="soft")


def test_training_attention_is_hard_forward_and_soft_backward():
    step = DiscreteStep(H, rngs=nnx.Rngs(2))
    graph = small_graph()
    node_F, edge_F = np.eye(3, dtype=np.float32), np.ones((7, 3), np.float32)
    sigma = np.linspace(0, 1, 7).astype(np.float32)
    _, _, alpha = step(node_F, edge_F, sigma, graph, jax.random.key(0))
    alpha = np.asarray(alpha)
    assert set(np.unique(alpha)) <= {0.0, 1.0}
    np.testing.assert_array_equal(np.bincount(graph.receivers, alpha), [1, 1, 1])  # one edge per receiver

    def attended_sigma(module):
        return jnp.sum(module(node_F, edge_F, sigma, graph, jax.random.key(0))[2] * sigma)

    grads = nnx.grad(attended_sigma)(step)
    assert abs(float(grads["scalar_weight"][...])) > 0  # the straight-through gradient reaches w


def test_bellman_ford_distance_is_an_attended_candidate():
    # The new distance is the scalar of the one attended in-edge: d_u + A_uv, or d_v on the self-loop.
    tb = generate("bellman_ford", 4, 10, 0).trajectories
    cfg = ModelConfig(algorithm="bellman_ford", processor="dnar", hidden=16)
    batch = make_batch(tb, cfg.graph_kind, pad_sizes_for(tb, cfg.graph_kind, 4), 4)
    model = DiscreteModel(cfg, rngs=nnx.Rngs(0))
    d1 = np.asarray(model(batch).hints["d"][0])
    graph = graph_of(batch)
    s, r = np.asarray(graph.senders), np.asarray(graph.receivers)
    d0, A = np.asarray(batch.hints["d"][0]), np.asarray(batch.inputs["A"])
    cand = np.where(s == r, d0[r], d0[s] + A)
    for v in range(int(tb.n_node.sum())):
        assert np.isclose(cand[r == v], d1[v]).any(), v


def test_refuses_algorithms_without_defined_states():
    with pytest.raises(ValueError, match="dnar.*runs bfs, bellman_ford.*'dfs' is not supported.*Why DFS"):
        ModelConfig(algorithm="dfs", processor="dnar")
    with pytest.raises(ValueError, match="'heapsort' is not supported \\(its discrete states are not defined\\)"):
        ModelConfig(algorithm="heapsort", processor="dnar")


def test_learns_bfs_on_small_graphs_and_is_exact_at_n_1024(tmp_path):
    # DNAR's claim, on nar's CLRS trajectories: a discrete step learned on n <= 16 is a finite program, exact at any
    # size. The shipped config (`bfs/dnar`: stepwise, 500 steps) cut to 100 steps.
    cfg = load("bfs/dnar", ["train.steps=100", "train.eval_every=50", "train.checkpoint_every=100",
                            "eval.sizes=[16]"])
    Trainer(cfg, tmp_path / "run", progress=False).run()
    model, params, _ = load_run(tmp_path / "run")
    results = evaluate_sizes(model, params, EvalConfig(sizes=(64, 1024), samples=8))
    for n in (64, 1024):
        assert results[n]["score"] == 1.0 and results[n]["exact"] == 1.0, (n, results[n])
        assert results[n]["hint/pi_h"] == 1.0 and results[n]["hint/reach_h"] == 1.0


def test_learns_bellman_ford_with_the_gated_attention_and_is_exact_at_n_1024(tmp_path):
    # The shipped `bellman_ford/dnar` (gated attention) cut to 150 steps: exact outputs and hints at n = 64 and
    # 1,024, with the distances d equal to the true ones (the attended candidate's d_u + A_uv).
    cfg = load("bellman_ford/dnar", ["train.steps=150", "train.eval_every=50", "train.checkpoint_every=150",
                                     "eval.sizes=[16]"])
    assert cfg.model.dnar_attention == "gated"
    Trainer(cfg, tmp_path / "run", progress=False).run()
    model, params, _ = load_run(tmp_path / "run")
    results = evaluate_sizes(model, params, EvalConfig(sizes=(64, 1024), samples=8))
    for n in (64, 1024):
        assert results[n]["score"] == 1.0 and results[n]["exact"] == 1.0, (n, results[n])
        assert results[n]["hint/pi_h"] == 1.0 and results[n]["hint/msk"] == 1.0, (n, results[n])
        assert results[n]["hint/d"] < 1e-10, (n, results[n])
