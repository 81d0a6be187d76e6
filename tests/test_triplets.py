"""Triplet-GMPNN tests: triplet enumeration (against brute force over node triples), the triplet edge latents
(against a dense NumPy version of CLRS's formula), padding invariance of the whole model, batch and model errors,
the processor registry, gradients through padding triplets, the memory estimate, evaluation batching and a tiny
training run.

Models are built abstractly (`nnx.eval_shape`) and filled from NumPy, as in tests/test_model.py: eager
initialisers compile dozens of small programs. Every jitted function compiles once per padded shape.
"""

import dataclasses
import itertools
import json
import tracemalloc

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from abstract_params import random_params
from flax import nnx

import nar.data.batch as batch_module
from nar.config import from_dict
from nar.data import generate
from nar.data.batch import (
    GrowingPad,
    PadSizes,
    bucket,
    cover,
    make_batch,
    message_graph_edges,
    pad_sizes_for,
    triplet_edges,
)
from nar.evaluate import Evaluator, batches
from nar.model.losses import total_loss
from nar.model.memory import check_fits, estimate_bytes
from nar.model.net import Model, ModelConfig, graph_of
from nar.processors import PROCESSORS, get_processor
from nar.processors.mpnn import MPNN
from nar.specs import Type
from nar.train import METRICS_FILE, Trainer, train_batch

CONFIG = ModelConfig(algorithm="bfs", processor="triplet_gmpnn", hidden=16)


def fast_jit(f, **kwargs):
    """jax.jit with XLA's backend optimisations off: these tests check values, not speed."""
    return jax.jit(f, compiler_options={"xla_backend_optimization_level": 0}, **kwargs)


def assert_finite(tree, what=""):
    for path, x in jax.tree_util.tree_leaves_with_path(tree):
        assert np.all(np.isfinite(np.asarray(x))), f"{what} {jax.tree_util.keystr(path)}"


def offsets(counts):
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


# ---------------------------------------------------------------------------------------------------------------
# 1. triplet_edges against brute force


def brute_triplets(senders, receivers) -> set:
    """Every (edge i->j, edge i->k, edge j->k) over all node triples (i, j, k), by enumeration."""
    index = {(int(s), int(r)): e for e, (s, r) in enumerate(zip(senders, receivers, strict=True))}
    assert len(index) == len(senders)  # no duplicate edges
    nodes = sorted({int(v) for v in senders} | {int(v) for v in receivers})
    return {(index[i, j], index[i, k], index[j, k]) for i, j, k in itertools.product(nodes, repeat=3)
            if (i, j) in index and (i, k) in index and (j, k) in index}


def check_triplets(rows, senders, receivers):
    """`rows` (triplet_edges' answer) is exactly the brute-force set, sorted by the target edge j -> k, and every
    edge is the target of at least one triplet."""
    rows = np.asarray(rows)
    assert rows.ndim == 2 and rows.shape[1] == 3 and rows.dtype == np.int32
    got = [tuple(r) for r in rows.tolist()]
    assert len(got) == len(set(got)), "duplicate triplets"
    assert set(got) == brute_triplets(senders, receivers)
    assert np.all(np.diff(rows[:, 2]) >= 0), "not sorted by the edge j -> k"
    assert set(rows[:, 2].tolist()) == set(range(len(senders)))
    # The three edges chain: i -> j, i -> k, j -> k.
    s, r = np.asarray(senders), np.asarray(receivers)
    np.testing.assert_array_equal(s[rows[:, 0]], s[rows[:, 1]])
    np.testing.assert_array_equal(r[rows[:, 0]], s[rows[:, 2]])
    np.testing.assert_array_equal(r[rows[:, 1]], r[rows[:, 2]])


def complete_edges(n_node):
    n_node = np.asarray(n_node)
    return message_graph_edges(n_node, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(len(n_node), np.int64),
                               "complete")


def input_triplet_count(tb) -> int:
    """How many triplets the input message graph of these samples has (`triplet_edges`, the independent lister)."""
    s, r, _ = message_graph_edges(tb.n_node, tb.senders, tb.receivers, tb.n_edge, "input")
    return len(triplet_edges(s, r, int(tb.n_node.sum())))


def random_input_edges(rng, n_node, p):
    """Random directed edges per graph (local ids), made symmetric with self-loops by the 'input' message graph."""
    snd, rcv, n_edge = [], [], []
    for n in n_node:
        a = rng.random((n, n)) < p
        s, r = np.nonzero(a)
        snd.append(s)
        rcv.append(r)
        n_edge.append(len(s))
    return message_graph_edges(np.asarray(n_node), np.concatenate(snd), np.concatenate(rcv), np.asarray(n_edge),
                               "input")


def test_triplet_edges_complete_graph_has_n_cubed_triplets():
    s, r, per = complete_edges([4])
    assert per.tolist() == [16] and set(zip(s.tolist(), r.tolist())) == set(itertools.product(range(4), repeat=2))
    rows = triplet_edges(s, r, 4)
    assert rows.shape == (4**3, 3)
    check_triplets(rows, s, r)
    # On the complete graph every edge j -> k is fed by exactly n triplets (one per i).
    np.testing.assert_array_equal(np.bincount(rows[:, 2], minlength=16), 4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_triplet_edges_sparse_symmetric_graphs_with_self_loops(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 9))
    s, r, _ = random_input_edges(rng, [n], p=0.25)
    edges = set(zip(s.tolist(), r.tolist()))
    assert all((b, a) in edges for a, b in edges) and all((v, v) in edges for v in range(n))
    assert len(edges) < n * n  # not the complete graph
    rows = triplet_edges(s, r, n)
    check_triplets(rows, s, r)
    assert len(rows) < n**3
    # Each edge j -> k has at least the triplet i = j (self-loop j -> j).
    self_loop = {int(v): e for e, (v, w) in enumerate(zip(s, r)) if v == w}
    got = {tuple(x) for x in rows.tolist()}
    for e, (j, k) in enumerate(zip(s.tolist(), r.tolist())):
        assert (self_loop[j], e, e) in got


@pytest.mark.parametrize("message_graph", ["complete", "input"])
def test_triplet_edges_several_graphs_never_cross_graphs(message_graph):
    rng = np.random.default_rng(5)
    n_node = np.array([3, 5, 1, 4])
    s, r, per = complete_edges(n_node) if message_graph == "complete" else random_input_edges(rng, n_node, 0.4)
    total = int(n_node.sum())
    rows = triplet_edges(s, r, total)
    check_triplets(rows, s, r)
    graph_of_node = np.repeat(np.arange(len(n_node)), n_node)
    edge_graph = graph_of_node[r]
    np.testing.assert_array_equal(edge_graph[rows[:, 0]], edge_graph[rows[:, 2]])
    np.testing.assert_array_equal(edge_graph[rows[:, 1]], edge_graph[rows[:, 2]])
    # Per graph: the triplets of that graph alone, shifted by its edge offset (as sets: the order within one
    # target edge is not specified).
    eoff = offsets(per)
    noff = offsets(n_node)
    for g in range(len(n_node)):
        e0, e1 = int(eoff[g]), int(eoff[g + 1])
        alone = triplet_edges(s[e0:e1] - noff[g], r[e0:e1] - noff[g], int(n_node[g]))
        np.testing.assert_array_equal(np.unique(rows[edge_graph[rows[:, 2]] == g], axis=0),
                                      np.unique(alone + e0, axis=0))
    if message_graph == "complete":
        assert len(rows) == int((n_node**3).sum())


def test_make_batch_carries_triplets_padded_with_minus_one():
    tb = generate("bfs", 3, [4, 5, 3], seed=4, p=0.5).trajectories
    b = make_batch(tb, "input", triplets=True)
    e_real = int(np.asarray(b.graph.n_edge)[:-1].sum())
    snd, rcv = np.asarray(b.graph.senders)[:e_real], np.asarray(b.graph.receivers)[:e_real]
    want = triplet_edges(snd, rcv, int(tb.n_node.sum()))
    check_triplets(want, snd, rcv)
    tri = np.asarray(b.triplets)
    assert b.pad_sizes.triplets == tri.shape[0] == bucket(len(want)) and b.dense_nodes is None
    np.testing.assert_array_equal(tri[: len(want)], want)
    np.testing.assert_array_equal(tri[len(want):], -1)
    assert b.pad_sizes == pad_sizes_for(tb, "input", len(tb), triplets=True)
    for kind in ("complete", "input"):
        assert make_batch(tb, kind).triplets is None and make_batch(tb, kind).dense_nodes is None
        assert make_batch(tb, kind).pad_sizes.triplets == 0 == pad_sizes_for(tb, kind, 3).triplets


def test_complete_graph_batches_carry_the_dense_node_table():
    """On the complete graph the triplets are every (i, j, k) of a sample: the batch lists none, only each slot's
    node ids (-1 beyond the sample, and for empty slots); M is the bucket of the largest sample."""
    tb = generate("bfs", 3, [4, 5, 3], seed=4).trajectories
    b = make_batch(tb, "complete", num_graphs=4, triplets=True)
    assert b.triplets is None
    table = np.asarray(b.dense_nodes)
    M = bucket(5, 4)
    assert table.shape == (4, M) and b.pad_sizes.triplet_nodes == M
    assert b.pad_sizes.triplets == 4 * M**3 and b.pad_sizes == pad_sizes_for(tb, "complete", 4, triplets=True)
    want = np.full((4, M), -1)
    want[0, :4], want[1, :5], want[2, :3] = range(0, 4), range(4, 9), range(9, 12)
    np.testing.assert_array_equal(table, want)
    node_graph = np.asarray(b.node_graph)
    for slot, row in enumerate(table):  # each id belongs to its slot's sample
        assert np.all(node_graph[row[row >= 0]] == slot)


def test_growing_pad_and_cover_grow_triplets():
    """A stream padded by GrowingPad keeps the largest triplet bucket (input graph) or M (complete graph) so far;
    each batch still carries exactly its own triplets, then padding rows, or its own node table."""
    for kind in ("input", "complete"):
        pad = GrowingPad()
        seen = 0
        for i, n in enumerate([4, 6, 5, 3]):
            tb = generate("bfs", 2, n, seed=i, p=0.6).trajectories
            b = make_batch(tb, kind, pad, num_graphs=2, triplets=True)
            if kind == "input":
                real = input_triplet_count(tb)
                seen = max(seen, bucket(real))
                assert b.pad_sizes.triplets == seen == pad.current.triplets
                tri = np.asarray(b.triplets)
                assert np.all(tri[:real] >= 0) and np.all(tri[real:] == -1)
            else:
                seen = max(seen, bucket(n, 4))
                assert b.pad_sizes.triplet_nodes == seen == pad.current.triplet_nodes
                assert b.pad_sizes.triplets == 2 * seen**3 == pad.current.triplets
                assert (np.asarray(b.dense_nodes) >= 0).sum(axis=1).tolist() == [n, n]
    a = PadSizes(nodes=10, edges=40, steps=4, graphs=3, triplets=100)
    c = PadSizes(nodes=12, edges=40, steps=4, graphs=3, triplets=64)
    assert cover([a, c]).triplets == 100 and cover([c]).triplets == 64
    d = PadSizes(nodes=12, edges=40, steps=4, graphs=3, triplets=2 * 5**3, triplet_nodes=5)
    f = PadSizes(nodes=12, edges=40, steps=4, graphs=5, triplets=4 * 4**3, triplet_nodes=4)
    assert cover([d, f]) == PadSizes(12, 40, 4, 5, 4 * 5**3, 5)  # the count follows the slots and M


# ---------------------------------------------------------------------------------------------------------------
# 2. Triplet edge latents against a dense NumPy version of CLRS's formula


def _np_linear(x, p):
    return np.asarray(x, np.float64) @ np.asarray(p["kernel"], np.float64) + np.asarray(p["bias"], np.float64)


def dense_triplet_latents(params, F, z, e, g, graph, num_samples):
    """{edge index: eps [H]} for every real edge, computed densely per sample:
    t[i, j, k] = T1 z_i + T2 z_j + T3 z_k + E1 e_ij + E2 e_ik + E3 e_jk + Tg g, eps_jk = ReLU(O3 max_i t[i, j, k]),
    the max over the i for which edges i -> j, i -> k and j -> k all exist (all i on the complete graph)."""
    tn, te, tg = _np_linear(z, params["t_node"]), _np_linear(e, params["t_edge"]), _np_linear(g, params["t_graph"])
    assert tn.shape[1] == te.shape[1] == 3 * F and tg.shape[1] == F
    snd, rcv, node_graph = (np.asarray(a) for a in (graph.senders, graph.receivers, graph.node_graph))
    out, dense = {}, []
    for s in range(num_samples):
        nodes = np.flatnonzero(node_graph == s)
        o, n = int(nodes[0]), len(nodes)
        np.testing.assert_array_equal(nodes, o + np.arange(n))
        exists = np.zeros((n, n), bool)
        TE = np.zeros((n, n, 3 * F))
        idx = np.full((n, n), -1)
        for ed in np.flatnonzero(node_graph[rcv] == s):
            i, j = snd[ed] - o, rcv[ed] - o
            exists[i, j], TE[i, j], idx[i, j] = True, te[ed], ed
        T1, T2, T3 = tn[nodes, :F], tn[nodes, F:2 * F], tn[nodes, 2 * F:]
        t = (T1[:, None, None] + T2[None, :, None] + T3[None, None, :]
             + TE[:, :, None, :F] + TE[:, None, :, F:2 * F] + TE[None, :, :, 2 * F:] + tg[s])  # [i, j, k, F]
        valid = exists[:, :, None] & exists[:, None, :] & exists[None, :, :]
        m = np.where(valid[..., None], t, -np.inf).max(axis=0)  # [j, k, F]
        m = np.where(exists[..., None], m, 0.0)  # non-edges j -> k have no triplet (and no latent)
        eps = np.maximum(_np_linear(m.reshape(-1, F), params["t_out"]).reshape(n, n, -1), 0.0)
        for j, k in zip(*np.nonzero(exists)):
            out[int(idx[j, k])] = eps[j, k]
        dense.append(exists)
    return out, dense


def _tight_single_sample_batch(kind: str, extra_triplets: int = 8):
    """One bfs sample of 6 nodes, no padding node or edge: on the input graph with `extra_triplets` padding
    triplet rows (they land on the last real edge), on the complete graph dense with M = 6 (every edge real)."""
    tb = generate("bfs", 1, 6, seed=3, p=0.5).trajectories
    need = make_batch(tb, kind, triplets=True).pad_sizes
    e_real = int(make_batch(tb, kind).graph.n_edge[0])
    p_real = 0 if kind == "complete" else input_triplet_count(tb)
    pad = dataclasses.replace(need, nodes=6, edges=e_real, triplets=p_real + extra_triplets)
    return tb, make_batch(tb, kind, pad, triplets=True)


def _latent_case(case):
    if case == "complete":  # a short sample (positions beyond its size), an empty slot and M above the largest
        tb = generate("bfs", 2, [5, 3], 0).trajectories
        need = make_batch(tb, "complete", num_graphs=3, triplets=True).pad_sizes
        return tb, make_batch(tb, "complete", dataclasses.replace(need, triplet_nodes=7), num_graphs=3, triplets=True)
    if case == "complete_tight":
        return _tight_single_sample_batch("complete")
    tb = generate("bfs", 2, [5, 6], seed=2, p=0.4).trajectories
    need = make_batch(tb, "input", triplets=True).pad_sizes
    pad = dataclasses.replace(need, nodes=need.nodes + 6, edges=need.edges + 12, triplets=need.triplets + 20)
    return tb, make_batch(tb, "input", pad, triplets=True)


@pytest.mark.parametrize("case,F", [("complete", 4), ("complete_tight", 8), ("input", 3)])
def test_triplet_latents_match_dense_numpy(case, F):
    H = 8
    tb, b = _latent_case(case)
    S = len(tb)
    if case.startswith("complete"):  # dense: no triplet list, a node table whose width is M
        assert b.triplets is None and b.pad_sizes.triplets == (b.pad_sizes.graphs - 1) * b.pad_sizes.triplet_nodes**3
    else:
        P_real = int((np.asarray(b.triplets)[:, 2] >= 0).sum())
        assert b.pad_sizes.triplets > P_real  # padding triplet rows are present
    _, gd, params = random_params(lambda: MPNN(H, rngs=nnx.Rngs(0), triplets=True, triplet_features=F),
                                   seed=1, bias_std=0.5)
    graph = graph_of(b)
    N, E, G = graph.num_nodes, graph.num_edges, graph.num_graphs
    rng = np.random.default_rng(7)
    x, h = (rng.normal(size=(N, H)).astype(np.float32) for _ in range(2))
    e = rng.normal(size=(E, H)).astype(np.float32)
    g = rng.normal(size=(G, H)).astype(np.float32)

    @fast_jit
    def run(p, x, e, g, h, graph):
        return nnx.merge(gd, p)(x, e, g, graph, h)

    hidden, latent = run(params, x, e, g, h, graph)
    latent = np.asarray(latent)
    assert latent.shape == (E, H) and np.asarray(hidden).shape == (N, H)
    assert np.all(np.isfinite(latent))
    want, dense = dense_triplet_latents(params, F, np.concatenate([x, h], axis=1), e, g, graph, S)
    e_real = int(np.asarray(b.graph.n_edge)[:S].sum())
    assert sorted(want) == list(range(e_real))
    if case.startswith("complete"):
        assert all(d.all() for d in dense)  # CLRS's dense n^3 formula, no restriction
    else:
        assert not all(d.all() for d in dense)  # a sparse graph: only the triangles count
    assert np.abs(np.stack(list(want.values()))).max() > 0.1
    for ed, eps in want.items():
        np.testing.assert_allclose(latent[ed], eps, rtol=1e-4, atol=1e-5, err_msg=f"{case} edge {ed}")


def test_padding_triplets_on_a_real_edge_change_neither_latents_nor_gradients():
    """Padding triplet rows (input graph) point at the last edge; with no padding edge that is a real edge. Its
    latent and every gradient (parameters and inputs) are the same as with no padding rows at all, and finite."""
    H, F = 8, 4
    tb, b_pad = _tight_single_sample_batch("input")
    _, b_exact = _tight_single_sample_batch("input", extra_triplets=0)
    p_real = b_exact.pad_sizes.triplets
    assert np.all(np.asarray(b_pad.triplets)[p_real:] == -1) and np.all(np.asarray(b_exact.triplets) >= 0)
    _, gd, params = random_params(lambda: MPNN(H, rngs=nnx.Rngs(0), triplets=True, triplet_features=F),
                                   seed=2, bias_std=0.5)
    rng = np.random.default_rng(3)
    N, E, G = 6, b_pad.pad_sizes.edges, b_pad.pad_sizes.graphs
    assert int(b_pad.graph.n_edge[0]) == E  # no padding edge
    z = rng.normal(size=(N, 2 * H)).astype(np.float32)
    e = rng.normal(size=(E, H)).astype(np.float32)
    g = rng.normal(size=(G, H)).astype(np.float32)
    w = rng.normal(size=(E, H)).astype(np.float32)

    @fast_jit
    def value_and_grads(p, z, e, g, graph):
        def f(p, z, e, g):
            lat = nnx.merge(gd, p).triplet_latents(z, e, g, graph)
            return jnp.sum(lat * w), lat

        return jax.value_and_grad(f, argnums=(0, 1, 2, 3), has_aux=True)(p, z, e, g)

    (v_pad, lat_pad), g_pad = value_and_grads(params, z, e, g, graph_of(b_pad))
    (v_exact, lat_exact), g_exact = value_and_grads(params, z, e, g, graph_of(b_exact))
    np.testing.assert_allclose(np.asarray(lat_pad), np.asarray(lat_exact), rtol=1e-6, atol=1e-6)
    assert float(v_pad) == pytest.approx(float(v_exact), rel=1e-6)
    assert_finite(g_pad, "grad with padding triplets")
    for (path, a), x in zip(jax.tree_util.tree_leaves_with_path(g_pad), jax.tree.leaves(g_exact), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(x), rtol=1e-5, atol=1e-6,
                                   err_msg=jax.tree_util.keystr(path))
    assert np.abs(np.asarray(g_pad[1])).max() > 0  # the node features do get a gradient


# ---------------------------------------------------------------------------------------------------------------
# 3. Padding invariance of the whole model


@pytest.fixture(scope="module")
def net():
    """(abstract model, graphdef, parameters) of a 16-wide Triplet-GMPNN for bfs, and a jitted forward."""
    model, gd, params = random_params(lambda: Model(CONFIG, rngs=nnx.Rngs(0)), seed=0, bias_std=0.5)
    fwd = fast_jit(lambda p, b: nnx.merge(gd, p)(b, train=False))
    return model, gd, params, fwd


@pytest.fixture(scope="module")
def bfs_tb():
    tb = generate("bfs", 3, [5, 4, 6], seed=0, p=0.5).trajectories
    assert tb.n_step.tolist() == [2, 4, 3]  # lengths differ, every sample has a hint step to predict
    return tb


def _compare(model, tb_a, b_a, pred_a, i, tb_b, b_b, pred_b, j):
    """Sample i of batch a and sample j of batch b have the same outputs and hint logits (their own steps)."""
    na, nb = offsets(tb_a.n_node), offsets(tb_b.n_node)
    ea, eb = offsets(np.asarray(b_a.graph.n_edge)[: len(tb_a)]), offsets(np.asarray(b_b.graph.n_edge)[: len(tb_b)])
    rows = {"node": (slice(na[i], na[i + 1]), slice(nb[j], nb[j + 1])),
            "edge": (slice(ea[i], ea[i + 1]), slice(eb[j], eb[j + 1]))}
    L = int(tb_a.n_step[i])
    assert L == int(tb_b.n_step[j]) and L >= 2
    for name, (loc, type_, _) in model.output_probes.items():
        ra, rb = rows["edge" if type_ == Type.POINTER else loc]
        np.testing.assert_allclose(np.asarray(pred_b.outputs[name])[rb], np.asarray(pred_a.outputs[name])[ra],
                                   rtol=1e-4, atol=1e-5, err_msg=f"sample {i} output {name}")
    for name, (loc, type_, _) in model.hint_probes.items():
        ra, rb = rows["edge" if type_ == Type.POINTER else loc]
        np.testing.assert_allclose(np.asarray(pred_b.hints[name])[: L - 1, rb],
                                   np.asarray(pred_a.hints[name])[: L - 1, ra],
                                   rtol=1e-4, atol=1e-5, err_msg=f"sample {i} hint {name}")


def test_padding_invariance_with_more_triplets_edges_nodes_and_steps(net, bfs_tb):
    model, _, params, fwd = net
    b = make_batch(bfs_tb, "complete", triplets=True)
    pad = b.pad_sizes
    M = pad.triplet_nodes + 3
    big = dataclasses.replace(pad, nodes=pad.nodes + 8, edges=pad.edges + 40, steps=pad.steps + 2,
                              graphs=pad.graphs + 1, triplet_nodes=M, triplets=pad.graphs * M**3)
    b_big = make_batch(bfs_tb, "complete", big, triplets=True)
    assert b_big.pad_sizes == big
    # Padding node positions in both (the samples have 5, 4 and 6 nodes), more in the big one, and an empty slot.
    assert pad.triplet_nodes == 6 and (np.asarray(b_big.dense_nodes) < 0).sum() > (np.asarray(b.dense_nodes) < 0).sum()
    pred = fwd(params, b)
    pred_big = fwd(params, b_big)
    assert_finite(pred, "default pad")
    assert_finite(pred_big, "big pad")
    for i in range(len(bfs_tb)):
        _compare(model, bfs_tb, b, pred, i, bfs_tb, b_big, pred_big, i)
    # Same big shape (no new compile), other order and company: still the same predictions per sample.
    order = [2, 0]
    tb2 = bfs_tb.select(order)
    b2 = make_batch(tb2, "complete", big, num_graphs=len(bfs_tb), triplets=True)
    assert b2.pad_sizes == big
    pred2 = fwd(params, b2)
    for j, i in enumerate(order):
        _compare(model, bfs_tb, b, pred, i, tb2, b2, pred2, j)


# ---------------------------------------------------------------------------------------------------------------
# 4. Errors


def test_make_batch_rejects_pads_that_do_not_match_the_triplets(bfs_tb):
    need = make_batch(bfs_tb, "input", triplets=True).pad_sizes
    P_real = input_triplet_count(bfs_tb)
    make_batch(bfs_tb, "input", dataclasses.replace(need, triplets=P_real), triplets=True)  # exactly enough
    with pytest.raises(ValueError, match="triplets"):
        make_batch(bfs_tb, "input", dataclasses.replace(need, triplets=P_real - 1), triplets=True)
    with pytest.raises(ValueError, match="triplets"):
        make_batch(bfs_tb, "input", dataclasses.replace(need, triplets=0), triplets=True)
    # A shape with triplet rows for a batch built without triplets.
    with pytest.raises(ValueError, match="no triplets"):
        make_batch(bfs_tb, "input", need)
    make_batch(bfs_tb, "input", dataclasses.replace(need, triplets=0))  # the same shape without them is fine
    # Dense (complete graph): M must hold the largest sample (6 nodes); a dense shape needs dense triplets.
    dense = make_batch(bfs_tb, "complete", triplets=True).pad_sizes
    assert dense.triplet_nodes == 6
    with pytest.raises(ValueError, match="up to 6 nodes \\(dense triplets\\)"):
        make_batch(bfs_tb, "complete", dataclasses.replace(dense, triplet_nodes=5), triplets=True)
    with pytest.raises(ValueError, match="no triplets"):
        make_batch(bfs_tb, "complete", dense)
    with pytest.raises(ValueError, match="triplets"):  # a dense shape for the input graph's triplet list
        make_batch(bfs_tb, "input", dataclasses.replace(need, triplet_nodes=6), triplets=True)


def test_model_needing_triplets_rejects_a_batch_without_them(net, bfs_tb):
    model, gd, _, _ = net
    _, state = nnx.split(model)

    def shapes(batch):  # traced abstractly: no compile
        return jax.eval_shape(lambda s, b: nnx.merge(gd, s)(b), state, batch)

    with pytest.raises(ValueError, match=r"make_batch\(\.\.\., triplets=True\)"):
        shapes(make_batch(bfs_tb, "complete"))
    out = shapes(make_batch(bfs_tb, "complete", triplets=True))  # control: the same samples with triplets
    assert out.outputs["pi"].shape == (make_batch(bfs_tb, "complete").pad_sizes.edges,)


# ---------------------------------------------------------------------------------------------------------------
# 5. Registry


@pytest.mark.parametrize("name,gated,triplets", [("mpnn", False, False), ("pgn", False, False),
                                                 ("pgn_mask", False, False), ("gmpnn", True, False),
                                                 ("triplet_mpnn", False, True), ("triplet_gmpnn", True, True)])
def test_registry_flags(name, gated, triplets):
    H = 16
    entry = get_processor(name)
    assert entry is PROCESSORS[name]
    assert entry.triplets is triplets
    assert entry.default_message_graph == ("input" if name == "pgn_mask" else "complete")
    cfg = ModelConfig(algorithm="bfs", processor=name, hidden=H, triplet_features=5)
    assert cfg.triplets is triplets
    assert cfg.graph_kind == entry.default_message_graph
    model = nnx.eval_shape(lambda: Model(cfg, rngs=nnx.Rngs(0)))
    proc = model.processor
    assert proc.gated is gated and proc.triplets is triplets
    assert proc.edge_latent_size == (H if triplets else 0)
    assert hasattr(proc, "gate_out") is gated and hasattr(proc, "t_node") is triplets
    if triplets:  # the model's triplet_features reaches the processor
        assert proc.t_graph.out_features == 5 and proc.t_node.out_features == 15 and proc.t_out.in_features == 5
    # Pointer decoders read the edge latents next to the edge features.
    assert model.output_decoder.layers["pi"].edge.in_features == H + proc.edge_latent_size
    assert model.hint_decoder.layers["pi_h"].edge.in_features == H + proc.edge_latent_size
    assert ModelConfig(algorithm="bfs", processor=name, message_graph="input").triplets is triplets


def test_only_the_triplet_processors_need_triplets():
    assert {n for n, e in PROCESSORS.items() if e.triplets} == {"triplet_mpnn", "triplet_gmpnn"}
    assert ModelConfig(algorithm="insertion_sort", processor="triplet_gmpnn", message_graph="input").graph_kind == \
        "complete"


# ---------------------------------------------------------------------------------------------------------------
# 6. Gradients


def test_gradients_finite_with_padding_triplets(net, bfs_tb):
    _, gd, params, _ = net
    b = make_batch(bfs_tb, "complete", triplets=True)
    P_real = int((bfs_tb.n_node.astype(np.int64) ** 3).sum())
    e_real = int((bfs_tb.n_node.astype(np.int64) ** 2).sum())
    assert b.pad_sizes.triplets > P_real and b.pad_sizes.edges > e_real  # padding triplets and padding edges

    def loss(p, b, key):
        m = nnx.merge(gd, p)
        return total_loss(m, m(b, key, train=True), b)

    (value, parts), grads = fast_jit(jax.value_and_grad(loss, has_aux=True))(params, b, jax.random.key(3))
    assert np.isfinite(float(value)) and float(value) > 0
    assert_finite(parts, "loss parts")
    assert_finite(grads, "grad")
    # The triplet weights do reach the loss (through the decoders' edge inputs). bfs has no graph probes, so its
    # graph features are zeros: Tg's kernel gets no gradient, only its bias.
    for layer, leaf in itertools.product(("t_node", "t_edge", "t_graph", "t_out"), ("kernel", "bias")):
        g = np.abs(np.asarray(grads["processor"][layer][leaf])).max()
        assert (g == 0) if (layer, leaf) == ("t_graph", "kernel") else (g > 0), (layer, leaf)


# ---------------------------------------------------------------------------------------------------------------
# 7. Memory


def test_estimate_bytes_counts_triplets():
    pad = PadSizes(nodes=40, edges=1000, steps=6, graphs=3, triplets=5000)
    none = dataclasses.replace(pad, triplets=0)
    kw = {"processor": "triplet_gmpnn"}
    for H in (8, 16):
        assert (estimate_bytes(pad, H, True, **kw) - estimate_bytes(none, H, True, **kw)
                == 5000 * 8 * 4 * (5.5 + 1 * (6 - 1)))
        assert estimate_bytes(pad, H, False, **kw) - estimate_bytes(none, H, False, **kw) == 5000 * 8 * 4 * 4.5
    # Hand-computed total, training (docs/scaling.md, Triplet-GMPNN's counts, T - 1 = 5 steps).
    assert estimate_bytes(pad, 16, True, **kw) == 4 * (16 * (40 * (18 + 17 * 5) + 1000 * (15 + 11 * 5))
                                                      + 8 * 5000 * (5.5 + 5))


def test_check_fits_names_the_triplets():
    pad = PadSizes(nodes=40, edges=1000, steps=6, graphs=3, triplets=5000)
    need = estimate_bytes(pad, 16, True)
    check_fits(pad, 16, True, "complete", limit=need)  # exactly enough
    with pytest.raises(MemoryError, match="5000 triplets"):
        check_fits(pad, 16, True, "complete", limit=need - 1)
    with pytest.raises(MemoryError) as e:
        check_fits(dataclasses.replace(pad, triplets=0), 16, True, "complete", limit=1000)
    assert "triplets" not in str(e.value)


def test_triplet_edges_refuses_before_allocating(monkeypatch):
    """With a per-pair cost so large that a 64-node complete graph needs more than half the host memory, the
    enumeration is refused up front: the peak of traced (NumPy) allocations stays far below what enumerating
    allocates (int64 arrays of n^3 = 262,144 entries, 2 MiB each)."""
    n = 64
    s, r, _ = complete_edges([n])
    tracemalloc.start()
    try:
        rows = triplet_edges(s, r, n)  # control: the real per-pair cost fits, and the measurement sees the arrays
        _, enumerate_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        monkeypatch.setattr(batch_module, "TRIPLET_HOST_BYTES", 1 << 50)
        before, _ = tracemalloc.get_traced_memory()  # `rows` (3 MiB) is still held
        with pytest.raises(MemoryError, match="message_graph='input'") as e:
            triplet_edges(s, r, n)
        _, refuse_peak = tracemalloc.get_traced_memory()
        refuse_peak -= before
    finally:
        tracemalloc.stop()
    assert len(rows) == n**3
    assert enumerate_peak > 2 << 20, enumerate_peak
    assert f"{n**3} candidate pairs" in str(e.value)
    assert refuse_peak < 1 << 20, refuse_peak


# ---------------------------------------------------------------------------------------------------------------
# 8. Evaluation batching


def _signature_of_sample(t, n_step):
    A = t.inputs["A"]
    return (A.shape[0], frozenset((int(i), int(j), float(A[i, j])) for i, j in zip(*np.nonzero(A))),
            int(np.argmax(t.inputs["s"])), int(n_step))


def _signatures_of_batch(b):
    snd, rcv = np.asarray(b.graph.senders), np.asarray(b.graph.receivers)
    node_graph, lengths = np.asarray(b.node_graph), np.asarray(b.lengths)
    A, src = np.asarray(b.inputs["A"]), np.asarray(b.inputs["s"])
    edge_graph = node_graph[rcv]
    out = []
    for g in np.flatnonzero(lengths > 0):
        nodes = np.flatnonzero(node_graph == g)
        o = int(nodes[0])
        es = [e for e in np.flatnonzero(edge_graph == g) if A[e] != 0]
        out.append((len(nodes), frozenset((int(snd[e] - o), int(rcv[e] - o), float(A[e])) for e in es),
                    int(np.argmax(src[nodes])), int(lengths[g])))
    return out


def test_evaluation_batches_share_one_shape_with_triplets(net):
    model, _, params, _ = net
    tb = generate("bfs", 5, [4, 5, 6, 4, 5], seed=8, p=0.5).trajectories
    want = [_signature_of_sample(tb.trajectory(i), tb.n_step[i]) for i in range(len(tb))]
    assert len(set(want)) == len(tb)
    one = pad_sizes_for(tb.select([0]), "complete", 1, True)
    per_graph = one.edges + one.triplets * CONFIG.triplet_features // CONFIG.hidden  # a triplet: F / H of an edge
    for max_edges, num_batches in ((1 << 20, 3), (per_graph * 3 // 2, 5)):
        blist = batches(tb, CONFIG, 2, max_edges)
        assert len(blist) == num_batches
        assert len({b.pad_sizes for b in blist}) == 1
        pad = blist[0].pad_sizes
        assert pad.triplets > 0
        got = []
        for b in blist:
            sigs = _signatures_of_batch(b)
            got += sigs
            # Complete graph: dense triplets, each sample's node ids in its slot of the shared M = 6 table.
            table = np.asarray(b.dense_nodes)
            assert b.triplets is None and table.shape == (pad.graphs - 1, 6)
            assert sorted((table >= 0).sum(axis=1).tolist()) == sorted([s[0] for s in sigs] + [0] * (
                pad.graphs - 1 - len(sigs)))
        assert sorted(got, key=repr) == sorted(want, key=repr)  # every sample exactly once
    res = Evaluator(model)(params, batches(tb, CONFIG, 2, 1 << 20))
    assert set(res) == {"score", "exact", "output/pi", "exact/pi", "hint/pi_h", "hint/reach_h"}
    assert all(0.0 <= v <= 1.0 for v in res.values()), res


# ---------------------------------------------------------------------------------------------------------------
# 9. Training


def test_training_a_sort_with_triplet_gmpnn(tmp_path):
    """A two-step Trainer run on insertion sort (its batches are always on the complete graph, with dense n^3
    triplets per sample): finite losses, a validation score in [0, 1], finite parameters that moved, triplet weights
    included."""
    cfg = from_dict({"model": {"algorithm": "insertion_sort", "processor": "triplet_gmpnn", "hidden": 8,
                               "message_graph": "input"},
                     "train": {"steps": 2, "batch_size": 2, "sizes": [4], "val_samples": 2, "val_size": 4,
                               "eval_every": 2, "checkpoint_every": 2, "log_every": 1}})
    assert cfg.model.triplets and cfg.model.graph_kind == "complete"  # sorting: always the complete graph
    b = train_batch(cfg, 0)
    assert b.triplets is None and (np.asarray(b.dense_nodes) >= 0).sum() == 2 * 4  # dense: every (i, j, k)
    trainer = Trainer(cfg, tmp_path, progress=False)
    before = trainer.params
    summary = trainer.run()
    assert summary["steps"] == 2
    records = [json.loads(line) for line in (tmp_path / METRICS_FILE).read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 2 and all(np.isfinite(losses)) and all(v > 0 for v in losses)
    val = [r for r in records if "val_score" in r]
    assert len(val) == 1 and 0.0 <= val[0]["val_score"] <= 1.0
    assert_finite(trainer.params, "parameters after training")
    for layer in ("t_node", "t_edge", "t_out"):
        old, new = (np.asarray(p["processor"][layer]["kernel"]) for p in (before, trainer.params))
        assert np.abs(new - old).max() > 0, layer
