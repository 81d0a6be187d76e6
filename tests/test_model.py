"""Model-side tests: shape buckets, the batch layout on the processing graph (against the dense `Trajectory`),
segment reductions and Sinkhorn (against NumPy), per-probe losses and metrics (hand-checked), and the model
itself (shapes, jit == eager, frozen outputs, teacher forcing, padding invariance, config validation).

Every model test reuses a few module-scope models and padded shapes: each new (model, shape) pair costs a compile.
"""

import bisect
import dataclasses
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from abstract_params import random_params
from flax import nnx

from nar.data import clrs_train, generate
from nar.data.batch import PadSizes, bucket, make_batch, message_graph_edges, output_probes, probes
from nar.metrics import batch_counts, probe_counts, score
from nar.model.losses import losses, probe_loss, total_loss
from nar.model.net import HINT_MODES, Model, ModelConfig, Predictions, graph_of
from nar.model.segment import (
    log_sinkhorn,
    segment_argmax,
    segment_log_softmax,
    segment_logsumexp,
    segment_max,
    segment_onehot_argmax,
    segment_softmax,
)
from nar.processors import PROCESSORS
from nar.processors.base import Graph
from nar.processors.mpnn import MPNN
from nar.specs import SPECS, Location, Stage, Type

HIDDEN = 8


def fast_jit(f, **kwargs):
    """jax.jit with XLA's backend optimisations off: these tests check values, not speed, and the CPU compiles
    take half the time. (The jit-vs-eager test uses plain jax.jit, the production path.)"""
    return jax.jit(f, compiler_options={"xla_backend_optimization_level": 0}, **kwargs)


# Library functions under jit for the small checks: one compile per call signature instead of one per primitive
# (as eager dispatch does). That jit and eager agree is tested on the whole model below.
j_segment_softmax = fast_jit(segment_softmax, static_argnums=(2, 3))
j_segment_log_softmax = fast_jit(segment_log_softmax, static_argnums=(2, 3))
j_segment_logsumexp = fast_jit(segment_logsumexp, static_argnums=(2, 3))
j_segment_max = fast_jit(segment_max, static_argnums=(2, 3))
j_segment_argmax = fast_jit(segment_argmax, static_argnums=(2, 3))
j_segment_onehot_argmax = fast_jit(segment_onehot_argmax, static_argnums=(2, 3))
j_log_sinkhorn = fast_jit(log_sinkhorn, static_argnums=(3, 4, 5))
j_probe_loss = fast_jit(probe_loss, static_argnums=2)
j_probe_counts = fast_jit(probe_counts, static_argnums=2)


# ---------------------------------------------------------------------------------------------------------------
# NumPy helpers


def np_log_softmax(x):
    x = np.asarray(x, np.float64)
    m = x.max()
    return x - (m + np.log(np.exp(x - m).sum()))


def np_bce(logit, target):
    logit = np.asarray(logit, np.float64)
    return np.maximum(logit, 0) - logit * target + np.log1p(np.exp(-np.abs(logit)))


def as_np(tree):
    return jax.tree.map(np.asarray, tree)


def offsets(counts):
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


# ---------------------------------------------------------------------------------------------------------------
# 1. bucket


FORM = (1.0, 1.25, 1.5, 1.75)  # bucket values are 2^k * f, f in FORM (see `bucket`'s docstring)
ALLOWED = sorted({int(2**k * f) for k in range(0, 16) for f in FORM if (2**k * f).is_integer()})


def _is_bucket_form(b: int) -> bool:
    top = 1 << (b.bit_length() - 1)
    return b / top in FORM


@pytest.mark.parametrize("minimum", [1, 2, 4, 8, 16])
def test_bucket_is_the_smallest_allowed_value_and_monotone(minimum):
    assert _is_bucket_form(minimum)
    prev = 0
    for x in range(0, 5000):
        b = bucket(x, minimum)
        assert b >= x and b >= minimum
        assert _is_bucket_form(b), (x, b)
        # Brute force: the smallest allowed value >= max(x, minimum).
        assert b == ALLOWED[bisect.bisect_left(ALLOWED, max(x, minimum))], (x, minimum, b)
        assert b >= prev  # monotone
        assert bucket(b, minimum) == b  # a bucket is its own bucket
        prev = b
        if x > minimum:
            assert b - x < 0.25 * x  # at most 25% padding
    # Few distinct shapes: four per doubling.
    assert len({bucket(x, minimum) for x in range(5000)}) <= 4 * 13 + 4


@pytest.mark.parametrize("minimum", [0, 3, 10, 12])
def test_bucket_minimum_must_be_a_power_of_two(minimum):
    with pytest.raises(ValueError, match="power of two"):
        bucket(5, minimum)


def test_bucket_examples():
    assert [bucket(x) for x in (0, 8, 9, 11, 13, 15, 17, 21, 25, 29, 33)] == [8, 8, 10, 12, 14, 16, 20, 24, 28, 32,
                                                                               40]
    assert [bucket(x, 4) for x in (1, 3, 5, 6, 7, 9)] == [4, 4, 5, 6, 7, 10]


# ---------------------------------------------------------------------------------------------------------------
# 2. make_batch layout against the dense trajectories


def expected_edges(t, n: int, message_graph: str) -> set:
    """Processing edges (sender, receiver) of one sample, built from its dense inputs."""
    if message_graph == "complete":
        return {(i, j) for i in range(n) for j in range(n)}
    nz = (t.inputs["A"] != 0) | (t.inputs["adj"] != 0)
    s, r = np.nonzero(nz)
    return set(zip(s.tolist(), r.tolist())) | set(zip(r.tolist(), s.tolist())) | {(i, i) for i in range(n)}


def check_layout(tb, b, message_graph: str):
    """Every structural and probe property of `b = make_batch(tb, message_graph, ...)`."""
    algo = tb.algorithm
    S = len(tb)
    N, E, T, G = b.pad_sizes.nodes, b.pad_sizes.edges, b.pad_sizes.steps, b.pad_sizes.graphs
    snd, rcv = np.asarray(b.graph.senders), np.asarray(b.graph.receivers)
    n_node, n_edge = np.asarray(b.graph.n_node), np.asarray(b.graph.n_edge)
    node_graph, lengths, self_edge = np.asarray(b.node_graph), np.asarray(b.lengths), np.asarray(b.self_edge)
    n_real = int(tb.n_node.sum())
    noff = offsets(tb.n_node)
    eoff = offsets(n_edge[:S])
    e_real = int(eoff[-1])

    # Shapes and per-slot counts; padding nodes (and every padding edge) belong to the last slot.
    assert snd.shape == rcv.shape == (E,) and node_graph.shape == self_edge.shape == (N,)
    assert n_node.shape == n_edge.shape == lengths.shape == (G,)
    assert G >= S + 1 and n_real <= N and e_real <= E and T >= max(2, int(tb.n_step.max()))
    np.testing.assert_array_equal(n_node[:S], tb.n_node)
    np.testing.assert_array_equal(n_node[S:-1], 0)
    np.testing.assert_array_equal(n_edge[S:-1], 0)
    assert n_node.sum() == N and n_edge.sum() == E and n_node[-1] == N - n_real
    np.testing.assert_array_equal(node_graph[:n_real], np.repeat(np.arange(S), tb.n_node))
    np.testing.assert_array_equal(node_graph[n_real:], G - 1)
    np.testing.assert_array_equal(lengths[:S], tb.n_step)
    np.testing.assert_array_equal(lengths[S:], 0)

    # Edges: sorted by receiver (padding included: segment ops rely on it), then by sender, no duplicates.
    assert np.all(np.diff(rcv.astype(np.int64)) >= 0)
    key = rcv[:e_real].astype(np.int64) * (N + 1) + snd[:e_real]
    assert np.all(np.diff(key) > 0)
    # Every real edge lies within one sample; padding edges touch no real node.
    edge_slot = np.repeat(np.arange(S), n_edge[:S])
    assert np.all(snd[:e_real] < n_real) and np.all(rcv[:e_real] < n_real)
    np.testing.assert_array_equal(node_graph[snd[:e_real]], edge_slot)
    np.testing.assert_array_equal(node_graph[rcv[:e_real]], edge_slot)
    assert np.all(snd[e_real:] >= n_real) and np.all(rcv[e_real:] >= n_real)
    # Self-loop of each real node.
    v = np.arange(n_real)
    np.testing.assert_array_equal(snd[self_edge[:n_real]], v)
    np.testing.assert_array_equal(rcv[self_edge[:n_real]], v)

    spec = SPECS[algo]
    for s in range(S):
        t = tb.trajectory(s)
        n, L, o = int(tb.n_node[s]), int(tb.n_step[s]), int(noff[s])
        e0, e1 = int(eoff[s]), int(eoff[s + 1])
        ls, lr = snd[e0:e1] - o, rcv[e0:e1] - o
        got = list(zip(ls.tolist(), lr.tolist()))
        assert len(got) == len(set(got))
        assert set(got) == expected_edges(t, n, message_graph), (algo, s)
        nodes = o + np.arange(n)

        def check_pointer(stored, target_local, what, o=o, nodes=nodes):
            stored = np.asarray(stored)
            assert np.all((stored >= 0) & (stored < E)), what
            np.testing.assert_array_equal(snd[stored], o + np.asarray(target_local), err_msg=what)
            np.testing.assert_array_equal(rcv[stored], nodes, err_msg=what)

        for name, (stage, location, type_) in spec.items():
            what = f"{algo} sample {s} {stage} {name}"
            if stage == Stage.INPUT:
                dense = t.inputs[name]
                got_p = np.asarray(b.inputs[name])
                if location == Location.EDGE:
                    assert got_p.shape == (E,)
                    np.testing.assert_array_equal(got_p[e0:e1], dense[ls, lr], err_msg=what)
                    # Every nonzero of the dense matrix lands on an edge of this sample.
                    assert np.count_nonzero(got_p[e0:e1]) == np.count_nonzero(dense), what
                else:
                    assert got_p.shape == (N,)
                    np.testing.assert_array_equal(got_p[nodes], dense, err_msg=what)
                    if type_ == Type.MASK_ONE:
                        assert got_p[nodes].sum() == 1.0
            elif stage == Stage.HINT:
                dense = t.hints[name]
                stored = np.asarray(b.hints[name])
                if location == Location.GRAPH:
                    assert stored.shape == (T, G), what
                    col = stored[:, s]
                    want = dense.argmax(-1) if type_ == Type.CATEGORICAL else dense
                    np.testing.assert_array_equal(col[:L], want, err_msg=what)
                    np.testing.assert_array_equal(col[L:], 0, err_msg=what)
                    continue
                assert stored.shape == (T, N), what
                block = stored[:, nodes]
                if type_ == Type.POINTER:
                    for step in range(L):
                        check_pointer(block[step], dense[step], f"{what} t={step}")
                    # After the sample's last step, still a valid edge into the node (never scored).
                    np.testing.assert_array_equal(rcv[block[L:]], np.broadcast_to(nodes, block[L:].shape))
                    continue
                want = dense.argmax(-1) if type_ == Type.CATEGORICAL else dense
                np.testing.assert_array_equal(block[:L], want, err_msg=what)
                np.testing.assert_array_equal(block[L:], 0, err_msg=what)
                if type_ == Type.MASK_ONE:
                    np.testing.assert_array_equal(block[:L].sum(1), 1.0, err_msg=what)
                    assert set(np.unique(block).tolist()) <= {0.0, 1.0}
            else:
                dense = t.outputs[name]
                stored = np.asarray(b.outputs[name])
                assert stored.shape == (N,)
                if type_ == Type.POINTER:
                    check_pointer(stored[nodes], dense, what)
                elif type_ == Type.SHOULD_BE_PERMUTATION:
                    heads = np.flatnonzero(dense == np.arange(n))
                    assert len(heads) == 1, what  # the sorted order has one first element
                    head = int(heads[0])
                    tails = sorted(set(range(n)) - {int(dense[u]) for u in range(n) if u != head})
                    assert len(tails) == 1, what
                    want = dense.copy()
                    want[head] = tails[0]
                    check_pointer(stored[nodes], want, what)
                    pointed = snd[stored[nodes]] - o
                    np.testing.assert_array_equal(np.sort(pointed), np.arange(n), err_msg=what)  # a permutation
                    mask = np.asarray(b.outputs[f"{name}_mask"])
                    np.testing.assert_array_equal(mask[nodes], np.eye(n)[head], err_msg=what)
                    np.testing.assert_array_equal(mask[n_real:], 0)
                else:
                    raise AssertionError(f"unexpected output type {type_}")


GRAPH_LAYOUT_CASES = [(a, mg) for a in ("bfs", "bellman_ford", "dfs") for mg in ("complete", "input")]


@pytest.fixture(scope="module")
def graph_datasets():
    return {a: clrs_train(a, 5, seed=1).trajectories for a in ("bfs", "bellman_ford", "dfs")}


@pytest.mark.parametrize("algo,message_graph", GRAPH_LAYOUT_CASES)
def test_make_batch_graph_layout_matches_dense_trajectories(graph_datasets, algo, message_graph):
    tb = graph_datasets[algo]
    assert len(set(tb.n_node.tolist())) > 1  # mixed sizes
    b = make_batch(tb, message_graph)
    check_layout(tb, b, message_graph)
    assert b.pad_sizes.graphs == len(tb) + 1


@pytest.mark.parametrize("algo", ["insertion_sort", "heapsort"])
def test_make_batch_sorting_layout_is_complete_with_permutation_pointer(algo):
    tb = generate(algo, 4, [3, 5, 2, 4], seed=2).trajectories
    # Sorting always uses the complete graph, whatever was asked.
    b = make_batch(tb, "input")
    check_layout(tb, b, "complete")
    assert set(b.outputs) == {"pred", "pred_mask"}


def test_make_batch_extra_graph_slots_and_larger_pad():
    tb = generate("bfs", 3, [4, 6, 5], seed=3).trajectories
    pad = PadSizes(nodes=40, edges=200, steps=9, graphs=6)
    b = make_batch(tb, "complete", pad=pad, num_graphs=5)
    assert b.pad_sizes == pad
    check_layout(tb, b, "complete")
    # The same samples in their own bucket hold the same values on the real nodes and edges.
    small = make_batch(tb, "complete")
    n, e = int(tb.n_node.sum()), int(np.asarray(small.graph.n_edge)[:3].sum())
    np.testing.assert_array_equal(small.graph.senders[:e], b.graph.senders[:e])
    np.testing.assert_array_equal(small.inputs["A"][:e], b.inputs["A"][:e])
    np.testing.assert_array_equal(small.outputs["pi"][:n], b.outputs["pi"][:n])
    with pytest.raises(ValueError):
        make_batch(tb, "complete", pad=PadSizes(nodes=8, edges=200, steps=9, graphs=6))  # 15 nodes > 8
    with pytest.raises(ValueError):
        make_batch(tb, "complete", num_graphs=2)


def test_make_batch_rejects_pointer_that_is_not_an_input_edge():
    tb = generate("bfs", 2, 6, seed=0, p=0.2).trajectories
    t = tb.trajectory(0)
    adj = (t.inputs["adj"] != 0) | (t.inputs["adj"] != 0).T
    # A node and a target that are not adjacent in sample 0.
    cand = [(v, u) for v in range(6) for u in range(6) if not adj[u, v]]
    assert cand
    v, u = cand[0]
    pi = tb.probes["pi"].copy()
    pi[tb.offsets("pi")[0] + v] = u
    bad = dataclasses.replace(tb, probes={**tb.probes, "pi": pi})
    with pytest.raises(ValueError, match="pi"):
        make_batch(bad, "input")
    b = make_batch(bad, "complete")  # every pair is an edge there
    stored = int(b.outputs["pi"][v])
    assert (int(b.graph.senders[stored]), int(b.graph.receivers[stored])) == (u, v)


def test_message_graph_edges_rejects_unknown_graph():
    z = np.zeros(0, np.int32)
    with pytest.raises(ValueError, match="message graph"):
        message_graph_edges(np.array([2]), z, z, np.array([0]), "grid")


# ---------------------------------------------------------------------------------------------------------------
# 3. Segment reductions and Sinkhorn vs NumPy


def _segments(rng, num_segments, empty, size):
    """Sorted segment ids over `num_segments`, skipping the ids in `empty`."""
    allowed = np.array([k for k in range(num_segments) if k not in empty])
    return np.sort(rng.choice(allowed, size=size))


@pytest.mark.parametrize("sorted_", [True, False])
def test_segment_softmax_logsumexp_max_match_numpy(sorted_):
    rng = np.random.default_rng(0)
    num = 7
    seg = _segments(rng, num, {2, 6}, 30)
    assert set(range(num)) - set(seg.tolist()) == {2, 6}
    x = rng.normal(size=30).astype(np.float32) * 5
    if not sorted_:
        perm = rng.permutation(30)
        seg, x = seg[perm], x[perm]
    sm = np.asarray(j_segment_softmax(x, seg, num, sorted_))
    lsm = np.asarray(j_segment_log_softmax(x, seg, num, sorted_))
    lse = np.asarray(j_segment_logsumexp(x, seg, num, sorted_))
    mx = np.asarray(j_segment_max(x, seg, num, sorted_))
    assert np.all(np.isfinite(sm)) and np.all(np.isfinite(lse)) and np.all(np.isfinite(mx))
    for k in range(num):
        idx = np.flatnonzero(seg == k)
        if len(idx) == 0:
            assert mx[k] == 0.0  # empty segment: 0, not -inf
            continue
        np.testing.assert_allclose(lsm[idx], np_log_softmax(x[idx]), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(sm[idx].sum(), 1.0, rtol=1e-5)
        np.testing.assert_allclose(lse[k], np.log(np.exp(x[idx].astype(np.float64)).sum()), rtol=1e-5)
        assert mx[k] == x[idx].max()


def test_segment_softmax_with_an_extra_option_matches_numpy():
    """`extra`: one more logit per segment, in the normaliser but not in the result (an empty segment keeps it
    alone); far-apart logits check that the shift by the maximum counts the extra one."""
    seg = np.array([0, 0, 0, 2, 2, 3])
    x = np.array([1.0, -0.5, 2.0, 40.0, 39.0, -3.0], np.float32)
    extra = np.array([0.5, 7.0, 45.0, -60.0], np.float32)  # segment 1 is empty
    sm = np.asarray(fast_jit(segment_softmax, static_argnums=(2, 3))(x, seg, 4, True, extra))
    lse = np.asarray(fast_jit(segment_logsumexp, static_argnums=(2, 3))(x, seg, 4, True, extra))
    for k in range(4):
        idx = np.flatnonzero(seg == k)
        full = np.concatenate([x[idx], extra[k:k + 1]]).astype(np.float64)
        want = np.exp(full - full.max()) / np.exp(full - full.max()).sum()
        np.testing.assert_allclose(sm[idx], want[:-1], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(lse[k], full.max() + np.log(np.exp(full - full.max()).sum()), rtol=1e-5)
    assert sm[5] > 0.999 and sm[3:5].sum() < 0.01  # segment 3 all but ignores its extra; segment 2 does not


@pytest.mark.parametrize("sorted_", [True, False])
def test_segment_argmax_picks_first_maximum(sorted_):
    rng = np.random.default_rng(1)
    num = 6
    seg = _segments(rng, num, {0, 4}, 40)
    x = rng.integers(-2, 2, size=40).astype(np.float32)  # many ties
    if not sorted_:
        perm = rng.permutation(40)
        seg, x = seg[perm], x[perm]
    got = np.asarray(j_segment_argmax(x, seg, num, sorted_))
    onehot = np.asarray(j_segment_onehot_argmax(x, seg, num, sorted_))
    want = np.zeros(num, np.int64)
    for k in range(num):
        idx = np.flatnonzero(seg == k)
        if len(idx):
            want[k] = idx[np.argmax(x[idx])]  # NumPy's argmax returns the first maximum
    np.testing.assert_array_equal(got, want)  # empty segments: 0
    ties = [k for k in range(num) if (seg == k).any() and (x[seg == k] == x[seg == k].max()).sum() > 1]
    assert ties  # the case under test does occur
    want_onehot = np.zeros(40)
    for k in range(num):
        if (seg == k).any():
            want_onehot[want[k]] = 1
    np.testing.assert_array_equal(onehot, want_onehot)


def test_segment_softmax_gradient_is_finite_with_empty_segments():
    seg = np.array([0, 0, 1, 3, 3, 3])
    x = jnp.array([1.0, 2.0, -1.0, 0.5, 0.5, 3.0])
    g = fast_jit(jax.grad(lambda x: jnp.sum(segment_log_softmax(x, seg, 5, True) * jnp.arange(6.0))))(x)
    assert np.all(np.isfinite(np.asarray(g)))
    # Each segment's log-softmax is shift-invariant, so the gradient sums to zero within a segment... times the
    # weights: d/dx_i sum_j w_j (x_j - lse) = w_i - p_i * sum_j w_j.
    w = np.arange(6.0)
    want = np.zeros(6)
    for k in (0, 1, 3):
        idx = np.flatnonzero(seg == k)
        p = np.exp(np_log_softmax(np.asarray(x)[idx]))
        want[idx] = w[idx] - p * w[idx].sum()
    np.testing.assert_allclose(np.asarray(g), want, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def sort_complete_batch():
    tb = generate("insertion_sort", 3, [2, 3, 5], seed=4).trajectories
    return tb, make_batch(tb, "complete")


def _dense_sinkhorn(L, steps):
    """Dense log-domain Sinkhorn, float64: rows (receivers) then columns (senders)."""
    L = L.astype(np.float64)
    for _ in range(steps):
        m = L.max(1, keepdims=True)
        L = L - (m + np.log(np.exp(L - m).sum(1, keepdims=True)))
        m = L.max(0, keepdims=True)
        L = L - (m + np.log(np.exp(L - m).sum(0, keepdims=True)))
    return L


@pytest.mark.parametrize("temperature,steps", [(0.1, 10), (1.0, 25)])
def test_log_sinkhorn_matches_dense_numpy(sort_complete_batch, temperature, steps):
    tb, b = sort_complete_batch
    snd, rcv = np.asarray(b.graph.senders), np.asarray(b.graph.receivers)
    N = b.pad_sizes.nodes
    x = np.random.default_rng(5).normal(size=snd.shape).astype(np.float32)
    out = np.asarray(j_log_sinkhorn(jnp.asarray(x), rcv, snd, N, steps, temperature))
    noff, eoff = offsets(tb.n_node), offsets(tb.n_node**2)
    for s in range(len(tb)):
        n, o = int(tb.n_node[s]), int(noff[s])
        e = slice(int(eoff[s]), int(eoff[s + 1]))
        L = np.zeros((n, n))
        L[rcv[e] - o, snd[e] - o] = x[e] / temperature
        want = _dense_sinkhorn(L, steps)
        np.testing.assert_allclose(out[e], want[rcv[e] - o, snd[e] - o], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("noise", [False, True])
def test_log_sinkhorn_is_doubly_stochastic_with_masked_diagonal(sort_complete_batch, noise):
    tb, b = sort_complete_batch
    snd, rcv = np.asarray(b.graph.senders), np.asarray(b.graph.receivers)
    N = b.pad_sizes.nodes
    n_real = int(tb.n_node.sum())
    x = np.random.default_rng(6).normal(size=snd.shape).astype(np.float32)
    x = np.where(snd == rcv, x - 1e6, x)  # as the model masks self-pointers
    key = jax.random.key(3) if noise else None
    # Temperature 1: converged after 60 steps (at the model's 0.1, 60 steps leave rows ~1% off).
    out = np.asarray(j_log_sinkhorn(jnp.asarray(x), rcv, snd, N, 60, 1.0, key))
    assert np.all(np.isfinite(out))
    P = np.exp(out.astype(np.float64))
    real = rcv < n_real
    rows = np.bincount(rcv[real], P[real], minlength=n_real)
    cols = np.bincount(snd[real], P[real], minlength=n_real)
    np.testing.assert_allclose(rows, 1.0, atol=1e-3)
    np.testing.assert_allclose(cols, 1.0, atol=1e-5)  # the last half-step normalises columns
    diag = real & (snd == rcv)
    assert P[diag].max() < 1e-6
    # The 2-node sample has a single derangement: the swap.
    e2 = real & (rcv < 2) & (snd != rcv)
    np.testing.assert_allclose(P[e2], 1.0, atol=1e-3)


# ---------------------------------------------------------------------------------------------------------------
# 4. Losses on hand-checked cases


def hand_graph():
    """Sample 0: nodes 0-2, sample 1: nodes 3-4 (complete graphs, self-loops included), padding node 5 in slot 2
    with two padding self-loops. Edges sorted by receiver, then sender."""
    edges = [(s, r) for r in range(3) for s in range(3)] + [(s, r) for r in (3, 4) for s in (3, 4)] + [(5, 5)] * 2
    snd = np.array([e[0] for e in edges], np.int32)
    rcv = np.array([e[1] for e in edges], np.int32)
    node_graph = np.array([0, 0, 0, 1, 1, 2], np.int32)
    g = Graph(jnp.asarray(snd), jnp.asarray(rcv), jnp.asarray(node_graph), jnp.asarray(node_graph[rcv]),
              jnp.asarray(np.array([3, 2, 1], np.int32)))
    return g, snd, rcv, node_graph


def edge_of(snd, rcv, s, r):
    return int(np.flatnonzero((snd == s) & (rcv == r))[0])


WEIGHTS = [np.array([1.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])]


def _check_loss(logits, stored, probe, graph, want_rows, row_graph, weight):
    """probe_loss against (sum of weighted NumPy rows, sum of weights) over rows owned by graph slots."""
    s, c = j_probe_loss(jnp.asarray(logits), jnp.asarray(stored), probe, graph, jnp.asarray(weight, jnp.float32))
    w = weight[row_graph]
    np.testing.assert_allclose(float(s), float(np.sum(np.asarray(want_rows) * w)), rtol=1e-5, atol=1e-6)
    assert float(c) == pytest.approx(float(w.sum()))


@pytest.mark.parametrize("weight", WEIGHTS)
def test_probe_loss_node_types_match_numpy(weight):
    g, snd, rcv, node_graph = hand_graph()
    rng = np.random.default_rng(7)
    N = 6
    # scalar: squared error
    lg, tr = rng.normal(size=N).astype(np.float32), rng.normal(size=N).astype(np.float32)
    _check_loss(lg, tr, ("node", Type.SCALAR, None), g, (lg.astype(np.float64) - tr) ** 2, node_graph, weight)
    # mask: binary cross-entropy on logits
    tr = np.array([1, 0, 1, 1, 0, 0], np.float32)
    _check_loss(lg, tr, ("node", Type.MASK, None), g, np_bce(lg, tr), node_graph, weight)
    # categorical: cross-entropy over 3 classes
    lc = rng.normal(size=(N, 3)).astype(np.float32)
    cls = np.array([0, 2, 1, 1, 0, 0], np.int32)
    rows = [-np_log_softmax(lc[i])[cls[i]] for i in range(N)]
    _check_loss(lc, cls, ("node", Type.CATEGORICAL, 3), g, rows, node_graph, weight)
    # mask_one: one row per graph, cross-entropy over the graph's nodes
    one = np.array([0, 1, 0, 0, 1, 0], np.float32)
    rows = [-np_log_softmax(lg[:3])[1], -np_log_softmax(lg[3:5])[1], 0.0]
    _check_loss(lg, one, ("node", Type.MASK_ONE, None), g, rows, np.arange(3), weight)


@pytest.mark.parametrize("weight", WEIGHTS)
def test_probe_loss_pointer_types_match_numpy(weight):
    g, snd, rcv, node_graph = hand_graph()
    rng = np.random.default_rng(8)
    E = len(snd)
    le = rng.normal(size=E).astype(np.float32) * 3
    targets = [2, 0, 2, 4, 3, 5]  # node v points to targets[v]
    stored = np.array([edge_of(snd, rcv, t, v) for v, t in enumerate(targets)], np.int32)
    rows = []
    for v in range(6):
        idx = np.flatnonzero(rcv == v)  # the edges node v receives: its candidates
        rows.append(-np_log_softmax(le[idx])[list(idx).index(stored[v])])
    _check_loss(le, stored, ("node", Type.POINTER, None), g, rows, node_graph, weight)
    # Permutation pointer: logits are already log-probabilities, the loss is -logp of the true edge.
    _check_loss(le, stored, ("node", "permutation_pointer", None), g, -le[stored].astype(np.float64), node_graph,
                weight)


@pytest.mark.parametrize("weight", WEIGHTS)
def test_probe_loss_graph_types_match_numpy(weight):
    g, *_ = hand_graph()
    lg = np.array([0.5, -1.0, 2.0], np.float32)
    tr = np.array([1.5, 0.0, -3.0], np.float32)
    _check_loss(lg, tr, ("graph", Type.SCALAR, None), g, (lg - tr) ** 2, np.arange(3), weight)
    lc = np.array([[1.0, 0.0, -1.0], [0.0, 0.0, 3.0], [5.0, 1.0, 1.0]], np.float32)
    cls = np.array([2, 2, 0], np.int32)
    rows = [-np_log_softmax(lc[i])[cls[i]] for i in range(3)]
    _check_loss(lc, cls, ("graph", Type.CATEGORICAL, 3), g, rows, np.arange(3), weight)


def test_probe_loss_ignores_excluded_rows_entirely():
    """Rows of a weight-0 graph do not change the loss, however wrong their logits are."""
    g, snd, rcv, node_graph = hand_graph()
    w = jnp.array([1.0, 0.0, 0.0])
    lg = np.zeros(6, np.float32)
    tr = np.array([1, 0, 1, 1, 0, 0], np.float32)
    base = j_probe_loss(jnp.asarray(lg), jnp.asarray(tr), ("node", Type.MASK, None), g, w)
    lg2 = lg.copy()
    lg2[3:] = [-80.0, 80.0, 30.0]  # confidently wrong on sample 1 and padding
    again = j_probe_loss(jnp.asarray(lg2), jnp.asarray(tr), ("node", Type.MASK, None), g, w)
    np.testing.assert_allclose(np.asarray(base), np.asarray(again))
    np.testing.assert_allclose(float(base[0]), 3 * np.log(2.0), rtol=1e-6)
    assert float(base[1]) == 3.0


def fake_model(algorithm):
    """What `losses` and `batch_counts` read of a model: its probe tables."""
    return types.SimpleNamespace(input_probes=probes(algorithm, Stage.INPUT),
                                 hint_probes=probes(algorithm, Stage.HINT), output_probes=output_probes(algorithm))


@pytest.fixture(scope="module")
def bfs_small():
    tb = generate("bfs", 3, [4, 6, 5], seed=11, p=0.8).trajectories
    assert len(set(tb.n_step.tolist())) > 1  # lengths differ: the step masking is exercised
    return tb, make_batch(tb, "complete")


def test_losses_mask_hint_steps_beyond_each_sample(bfs_small):
    tb, b = bfs_small
    m = fake_model("bfs")
    E, N, T = b.pad_sizes.edges, b.pad_sizes.nodes, b.pad_sizes.steps
    rng = np.random.default_rng(9)
    preds = Predictions({"pi": jnp.asarray(rng.normal(size=E), jnp.float32)},
                        {"pi_h": jnp.asarray(rng.normal(size=(T - 1, E)), jnp.float32),
                         "reach_h": jnp.asarray(rng.normal(size=(T - 1, N)), jnp.float32)})
    got = fast_jit(lambda p, b: losses(m, p, b))(preds, b)
    assert set(got) == {"output/pi", "hint/pi_h", "hint/reach_h"}
    snd, rcv = np.asarray(b.graph.senders), np.asarray(b.graph.receivers)
    lp, lh, lr = (np.asarray(preds.outputs["pi"]), np.asarray(preds.hints["pi_h"]), np.asarray(preds.hints["reach_h"]))
    noff = offsets(tb.n_node)
    out_rows, ptr_rows, mask_rows = [], [], []

    def ptr_ce(logits, v, target):
        idx = np.flatnonzero(rcv == v)
        return -np_log_softmax(logits[idx])[list(snd[idx]).index(target)]

    for s in range(len(tb)):
        t = tb.trajectory(s)
        o, L = int(noff[s]), int(tb.n_step[s])
        for v in range(int(tb.n_node[s])):
            out_rows.append(ptr_ce(lp, o + v, o + t.outputs["pi"][v]))
            for step in range(1, L):  # hint `step` is predicted at scan step step - 1
                ptr_rows.append(ptr_ce(lh[step - 1], o + v, o + t.hints["pi_h"][step, v]))
                mask_rows.append(np_bce(lr[step - 1, o + v], t.hints["reach_h"][step, v]))
    assert ptr_rows  # some sample has more than one step
    np.testing.assert_allclose(float(got["output/pi"]), np.mean(out_rows), rtol=1e-5)
    np.testing.assert_allclose(float(got["hint/pi_h"]), np.mean(ptr_rows), rtol=1e-5)
    np.testing.assert_allclose(float(got["hint/reach_h"]), np.mean(mask_rows), rtol=1e-5)
    total, parts = fast_jit(lambda p, b: total_loss(m, p, b))(preds, b)
    np.testing.assert_allclose(float(total), sum(float(v) for v in parts.values()), rtol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# 5. Metrics on hand-checked cases


def test_probe_counts_pointer_with_ties_and_weights():
    g, snd, rcv, node_graph = hand_graph()
    E = len(snd)
    logits = np.zeros(E, np.float32)
    # Predictions: node 0 -> 2, node 1 -> tie between 0 and 2 (first edge, sender 0, wins), node 2 -> 2 (all tied:
    # sender 0 wins), node 3 -> 4, node 4 -> 4.
    logits[edge_of(snd, rcv, 2, 0)] = 1.0
    logits[edge_of(snd, rcv, 0, 1)] = logits[edge_of(snd, rcv, 2, 1)] = 2.0
    logits[edge_of(snd, rcv, 4, 3)] = 1.0
    logits[edge_of(snd, rcv, 4, 4)] = 1.0
    truth_targets = [2, 0, 0, 4, 3, 5]
    stored = np.array([edge_of(snd, rcv, t, v) for v, t in enumerate(truth_targets)], np.int32)
    # correct: node 0 yes, 1 yes (tie: first), 2 yes (tie: first), 3 yes, 4 no (pred 4)
    probe = ("node", Type.POINTER, None)
    for weight, want in [([1, 1, 0], (4, 5)), ([1, 0, 0], (3, 3)), ([0, 1, 0], (1, 2))]:
        w = jnp.asarray(weight, jnp.float32)
        c = np.asarray(j_probe_counts(jnp.asarray(logits), jnp.asarray(stored), probe, g, w))
        np.testing.assert_array_equal(c, want)
    assert score(np.array([4.0, 5.0]), Type.POINTER) == pytest.approx(0.8)


def test_probe_counts_mask_mask_one_categorical_scalar():
    g, *_ = hand_graph()
    w = jnp.array([1.0, 1.0, 0.0])
    # mask: predictions (logit > 0) [1, 1, 0, 0, 1, 1(padding)] vs truth [1, 0, 1, 0, 1, 1]
    lg = jnp.array([2.0, 0.5, -1.0, -3.0, 0.1, 9.0])
    tr = jnp.array([1.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    np.testing.assert_array_equal(np.asarray(j_probe_counts(lg, tr, ("node", Type.MASK, None), g, w)), [2, 1, 1])
    # mask_one: graph 0 predicts node 1 (truth 1), graph 1 predicts the tie 3/4 -> 3 (truth 4)
    lg = jnp.array([0.0, 5.0, 1.0, 2.0, 2.0, 0.0])
    tr = jnp.array([0.0, 1.0, 0.0, 0.0, 1.0, 0.0])
    np.testing.assert_array_equal(np.asarray(j_probe_counts(lg, tr, ("node", Type.MASK_ONE, None), g, w)), [1, 2])
    np.testing.assert_array_equal(
        np.asarray(j_probe_counts(lg, tr, ("node", Type.MASK_ONE, None), g, jnp.array([1.0, 0.0, 0.0]))), [1, 1])
    # categorical
    lc = jnp.array([[0.0, 1.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0, 0, 1.0]])
    cls = jnp.array([1, 0, 0, 0, 2, 2])
    np.testing.assert_array_equal(np.asarray(j_probe_counts(lc, cls, ("node", Type.CATEGORICAL, 3), g, w)), [3, 5])
    # scalar: squared error and count
    lg = jnp.array([1.0, 2.0, 3.0, 4.0, 5.0, 100.0])
    tr = jnp.array([1.0, 0.0, 3.0, 1.0, 5.0, 0.0])
    c = np.asarray(j_probe_counts(lg, tr, ("node", Type.SCALAR, None), g, w))
    np.testing.assert_allclose(c, [4.0 + 9.0, 5.0])
    assert score(c, Type.SCALAR) == pytest.approx(13.0 / 5.0)
    # graph categorical: per graph rows
    lc = jnp.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_array_equal(
        np.asarray(j_probe_counts(lc, jnp.array([1, 1, 0]), ("graph", Type.CATEGORICAL, 2), g, w)), [1, 2])


@pytest.mark.parametrize("counts,want", [
    ((0, 0, 0), 1.0),  # nothing predicted, nothing true: precision = recall = 1
    ((0, 2, 0), 0.0),  # precision 0, recall undefined -> 1: F1 0
    ((0, 0, 3), 0.0),  # precision undefined -> 1, recall 0: F1 0
    ((0, 2, 3), 0.0),  # both 0
    ((2, 1, 1), 2.0 / 3.0),
    ((3, 1, 0), 6.0 / 7.0),  # p = 3/4, r = 1
    ((1, 0, 3), 0.4),  # p = 1, r = 1/4
])
def test_score_mask_f1_conventions(counts, want):
    assert score(np.array(counts, np.float64), Type.MASK) == pytest.approx(want)


def test_score_accuracy_and_empty():
    assert score(np.array([3.0, 4.0]), Type.MASK_ONE) == pytest.approx(0.75)
    assert score(np.array([3.0, 4.0]), Type.CATEGORICAL) == pytest.approx(0.75)
    assert np.isnan(score(np.array([0.0, 0.0]), Type.POINTER))


def test_permutation_pointer_fused_with_predicted_head():
    """One sample of 3 nodes, sorted order 2, 0, 1: head 2 (points to itself), tail 1."""
    edges = [(s, r) for r in range(3) for s in range(3)]
    snd = np.array([e[0] for e in edges], np.int32)
    rcv = np.array([e[1] for e in edges], np.int32)
    ng = np.array([0, 0, 0, 1], np.int32)  # node 3: padding, no edges
    g = Graph(jnp.asarray(snd), jnp.asarray(rcv), jnp.asarray(ng), jnp.asarray(ng[rcv]), jnp.array([3, 1]))
    # Stored permutation pointer: 0 -> 2, 1 -> 0, head 2 -> tail 1.
    stored = np.array([edge_of(snd, rcv, 2, 0), edge_of(snd, rcv, 0, 1), edge_of(snd, rcv, 1, 2), 0], np.int32)
    true_head = jnp.array([0.0, 0.0, 1.0, 0.0])
    perm_logp = np.full(9, -20.0, np.float32)
    perm_logp[stored[:3]] = 0.0  # a perfect permutation
    probe = ("node", "permutation_pointer", None)
    w = jnp.array([1.0, 0.0])

    def counts(head_logits, lp=perm_logp):
        return np.asarray(j_probe_counts(jnp.asarray(lp), jnp.asarray(stored), probe, g, w,
                                         (jnp.asarray(head_logits), true_head)))

    np.testing.assert_array_equal(counts([0.0, 0.0, 3.0, 9.0]), [3, 3])  # right head (padding node 3 ignored)
    # Wrong head 0: node 0 now points to itself (truth: 2) and node 2 to the tail 1 (truth: itself); node 1 is right.
    np.testing.assert_array_equal(counts([3.0, 0.0, 1.0, 0.0]), [1, 3])
    # Right head, but node 0 points to itself (truth 2) and node 1 to 2 (truth 0): only the head is right.
    lp = np.full(9, -20.0, np.float32)
    lp[[edge_of(snd, rcv, 0, 0), edge_of(snd, rcv, 2, 1), edge_of(snd, rcv, 1, 2)]] = 0.0
    np.testing.assert_array_equal(counts([0.0, 0.0, 3.0, 0.0], lp), [1, 3])
    # Without fusion, the head's re-pointed edge (2 -> tail 1) is what is scored.
    np.testing.assert_array_equal(np.asarray(j_probe_counts(jnp.asarray(perm_logp), jnp.asarray(stored), probe, g, w)),
                                  [3, 3])


def _perfect_logits(b, name, probe):
    """Logits that decode to the stored truth of probe `name` (outputs, or hint steps 1 .. T-1)."""
    location, type_, classes = probe
    E, n_real = b.pad_sizes.edges, int(np.asarray(b.graph.n_node)[:-1].sum())
    stored = np.asarray(b.outputs[name] if name in b.outputs else b.hints[name][1:])

    def one(st):
        if type_ in (Type.POINTER, "permutation_pointer"):
            x = np.zeros(E, np.float32)
            x[st[:n_real]] = 5.0  # padding nodes' stored edges are arbitrary
            return x
        if type_ == Type.MASK:
            return np.where(st > 0, 5.0, -5.0).astype(np.float32)
        if type_ == Type.MASK_ONE:
            return st * 5.0
        if type_ == Type.CATEGORICAL:
            return np.eye(classes, dtype=np.float32)[st] * 5.0
        return st.astype(np.float32)

    if name in b.outputs:
        return one(stored)
    return np.stack([one(st) for st in stored])


@pytest.mark.parametrize("algo", ["bfs", "insertion_sort"])
def test_batch_counts_perfect_predictions_count_every_valid_row(algo):
    tb = generate(algo, 3, [4, 6, 5], seed=12).trajectories
    b = make_batch(tb, "complete")
    m = fake_model(algo)
    preds = Predictions({n: jnp.asarray(_perfect_logits(b, n, p)) for n, p in m.output_probes.items()},
                        {n: jnp.asarray(_perfect_logits(b, n, p)) for n, p in m.hint_probes.items()})
    counts = as_np(fast_jit(lambda p, b: batch_counts(m, p, b))(preds, b))
    n_real = int(tb.n_node.sum())
    outputs = [n for n in SPECS[algo] if SPECS[algo][n][0] == Stage.OUTPUT]
    want_keys = ({f"hint/{n}" for n in m.hint_probes} | {f"output/{n}" for n in outputs}
                 | {f"graph/output/{n}" for n in outputs} | {"graph/exact"})
    assert set(counts) == want_keys  # sorting: pred fused with pred_mask, no separate pred_mask entry
    for key in ["graph/exact", *(f"graph/output/{n}" for n in outputs)]:  # every graph entirely right
        np.testing.assert_array_equal(counts.pop(key), [len(tb), len(tb)], err_msg=key)
    for key, c in counts.items():
        stage, name = key.split("/")
        probe = (m.output_probes if stage == "output" else m.hint_probes)[name]
        per_graph = probe[0] == "graph" or probe[1] == Type.MASK_ONE
        rows = np.ones(len(tb)) if per_graph else tb.n_node
        total = rows.sum() if stage == "output" else (rows * (tb.n_step - 1)).sum()
        if probe[1] == Type.MASK:
            tp, fp, fn = c
            assert fp == 0 and fn == 0 and score(c, Type.MASK) == 1.0, key
        else:
            assert c[1] == total, key
            if probe[1] != Type.SCALAR:
                assert c[0] == total, key
            else:
                assert c[0] == 0.0, key
    assert counts[f"output/{next(iter(m.output_probes))}"][1] == n_real


# ---------------------------------------------------------------------------------------------------------------
# 6. The model


def init_params(config: ModelConfig, seed: int = 0):
    """(abstract model, graphdef, parameters as a pure dict), random (`abstract_params.random_params`)."""
    return random_params(lambda: Model(config, rngs=nnx.Rngs(seed)), seed)


class Net:
    """A model, its parameters (pure dict) and one jitted forward (+ losses) per mode, compiled once per shape."""

    def __init__(self, config: ModelConfig, seed: int = 0):
        self.config = config
        self.model, self.graphdef, self.params = init_params(config, seed)
        self._fwd = {}

    def _fn(self, train):
        gd = self.graphdef

        def fwd(p, b, k):
            m = nnx.merge(gd, p)
            preds = m(b, k, train=train)
            return preds, losses(m, preds, b)

        return fwd

    def forward(self, batch, params=None, train=False, key=None):
        """(predictions, loss parts) as NumPy."""
        params = self.params if params is None else params
        key = jax.random.key(0) if key is None else key
        if train not in self._fwd:
            self._fwd[train] = fast_jit(self._fn(train))
        return as_np(self._fwd[train](params, batch, key))


def perturbed(params, *path: str, scale: float = 0.5, seed: int = 0):
    """A copy of the parameters with noise added to every leaf under params[path[0]][path[1]]..."""
    rng = np.random.default_rng(seed)

    def go(tree, path):
        if not path:
            return jax.tree.map(lambda x: x + scale * rng.normal(size=x.shape).astype(np.float32), tree)
        return {**tree, path[0]: go(tree[path[0]], path[1:])}

    return go(params, path)


# Four bfs samples of lengths 4, 3, 5, 3, padded to 6 steps: every batch of the bfs model tests has this shape.
BFS_PAD = PadSizes(nodes=24, edges=128, steps=6, graphs=5)


@pytest.fixture(scope="module")
def bfs_tb():
    tb = generate("bfs", 4, [5, 4, 6, 5], seed=6, p=0.6).trajectories
    assert tb.n_step.tolist() == [4, 3, 5, 3]
    return tb


def bfs_batch(tb, kind, pad=BFS_PAD, triplets=False):
    """`triplets`: with room for the triplets of Triplet-GMPNN's batches (the complete graphs' dense n^3 per
    sample, M = 8 node positions per slot; a list of up to 1,024 on the input graph)."""
    if triplets:
        pad = dataclasses.replace(pad, **({"triplet_nodes": 8} if kind == "complete" else {"triplets": 1024}))
    return jax.device_put(make_batch(tb, kind, pad=pad, num_graphs=pad.graphs - 1, triplets=triplets))


@pytest.fixture(scope="module")
def nets():
    """Nets by (processor, hint mode, teacher forcing), built on first use."""
    cache = {}

    def get(processor="mpnn", hint_mode="encoded_decoded", teacher_forcing=0.0, algorithm="bfs"):
        k = (processor, hint_mode, teacher_forcing, algorithm)
        if k not in cache:
            cache[k] = Net(ModelConfig(algorithm, processor, hidden=HIDDEN, hint_mode=hint_mode,
                                       teacher_forcing=teacher_forcing))
        return cache[k]

    return get


def assert_finite(tree, what=""):
    for path, x in jax.tree_util.tree_leaves_with_path(tree):
        assert np.all(np.isfinite(np.asarray(x))), f"{what} {jax.tree_util.keystr(path)}"


def test_jit_and_eager_agree_on_training_loss_and_grad(nets, bfs_tb):
    net = nets("mpnn", "encoded_decoded")
    b = bfs_batch(bfs_tb, "complete")
    gd = net.graphdef

    def loss_fn(p, b, key):
        m = nnx.merge(gd, p)
        return total_loss(m, m(b, key, train=True), b)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    key = jax.random.key(7)
    (loss_j, parts_j), g_j = as_np(jax.jit(grad_fn)(net.params, b, key))
    with jax.disable_jit():
        (loss_e, parts_e), g_e = as_np(grad_fn(net.params, b, key))
    assert np.isfinite(loss_j) and loss_j > 0
    np.testing.assert_allclose(loss_e, loss_j, rtol=1e-4)
    for k in parts_j:
        np.testing.assert_allclose(parts_e[k], parts_j[k], rtol=1e-4, err_msg=k)
    flat_j = jax.tree_util.tree_leaves_with_path(g_j)
    flat_e = jax.tree.leaves(g_e)
    assert len(flat_j) == len(flat_e)
    scale = max(np.abs(g).max() for _, g in flat_j)
    assert scale > 0
    for (path, gj), ge in zip(flat_j, flat_e, strict=True):
        assert np.all(np.isfinite(gj)), jax.tree_util.keystr(path)
        # float32 sums in another order: tolerance relative to each value and to the gradient's scale (some
        # entries are 0 in exact arithmetic, e.g. a pointer decoder's output bias, which softmax ignores).
        np.testing.assert_allclose(ge, gj, rtol=1e-4, atol=1e-5 * scale, err_msg=jax.tree_util.keystr(path))


# Encode-process-decode processors (an automaton, GraphFSA, and the discrete step, dnar, have their own models and
# tests: test_graphfsa.py, test_discrete.py).
NEURAL = sorted(p for p, e in PROCESSORS.items() if not (e.automaton or e.discrete))


@pytest.mark.parametrize("hint_mode", HINT_MODES)
@pytest.mark.parametrize("processor", NEURAL)
def test_forward_shapes_finite_and_hint_use(nets, bfs_tb, processor, hint_mode):
    net = nets(processor, hint_mode)
    kind = net.config.graph_kind
    assert kind == net.config.core.default_message_graph
    b = bfs_batch(bfs_tb, kind, triplets=net.config.triplets)
    N, E, T = BFS_PAD.nodes, BFS_PAD.edges, BFS_PAD.steps
    preds, parts = net.forward(b)
    assert set(preds.outputs) == {"pi"} and preds.outputs["pi"].shape == (E,)
    if hint_mode == "none":
        assert preds.hints == {} and set(parts) == {"output/pi"}
    else:
        assert set(preds.hints) == {"pi_h", "reach_h"}
        assert preds.hints["pi_h"].shape == (T - 1, E) and preds.hints["reach_h"].shape == (T - 1, N)
        assert set(parts) == {"output/pi", "hint/pi_h", "hint/reach_h"}
    assert_finite(preds, f"{processor}/{hint_mode}")
    assert_finite(parts, f"{processor}/{hint_mode}")
    assert all(v > 0 for v in parts.values())
    # Encoded hints are read (hint 0 is the truth); decoded-only and no hints never look at the truth hints.
    assert set(net.model.encoder.probes) == ({"pos", "s", "A", "adj"} |
                                             ({"pi_h", "reach_h"} if hint_mode == "encoded_decoded" else set()))
    h = dict(b.hints)
    h["reach_h"] = 1.0 - h["reach_h"]
    preds2, _ = net.forward(b._replace(hints=h))
    changed = not np.allclose(preds2.outputs["pi"], preds.outputs["pi"])
    assert changed == (hint_mode == "encoded_decoded")


def _sample_rows(tb, pad_graph, i):
    """Node and edge index ranges of sample i in a batch built from `tb`."""
    noff = offsets(tb.n_node)
    eoff = offsets(np.asarray(pad_graph.n_edge)[: len(tb)])
    return slice(int(noff[i]), int(noff[i + 1])), slice(int(eoff[i]), int(eoff[i + 1]))


def _compare_sample(net, tb_a, b_a, pred_a, i, tb_b, b_b, pred_b, j, what):
    """Sample i of batch a and sample j of batch b (the same sample) have the same outputs and hint logits of
    their own steps."""
    na, ea = _sample_rows(tb_a, b_a.graph, i)
    nb, eb = _sample_rows(tb_b, b_b.graph, j)
    L = int(tb_a.n_step[i])
    assert L == int(tb_b.n_step[j])
    table = {**{n: ("output", p) for n, p in net.model.output_probes.items()},
             **{n: ("hint", p) for n, p in net.model.hint_probes.items()}}
    for name, (stage, (location, type_, _)) in table.items():
        if type_ in (Type.POINTER, "permutation_pointer"):
            ra, rb = ea, eb
        elif location == "graph":
            ra, rb = slice(i, i + 1), slice(j, j + 1)
        else:
            ra, rb = na, nb
        if stage == "output":
            got, want = pred_b.outputs[name][rb], pred_a.outputs[name][ra]
        else:  # hint logits of the sample's own steps 1 .. L-1
            got, want = pred_b.hints[name][: L - 1, rb], pred_a.hints[name][: L - 1, ra]
        assert got.size > 0 or L == 1
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=f"{what} sample {i} {stage} {name}")


@pytest.mark.parametrize("processor", NEURAL)
def test_padding_invariance_bfs(nets, bfs_tb, processor):
    """A sample's predictions do not depend on the other samples of its batch nor on how much padding follows
    (alone, the rest of the padded shape is padding; same shape, so one compile)."""
    net = nets(processor, "encoded_decoded")
    kind = net.config.graph_kind
    b = bfs_batch(bfs_tb, kind, triplets=net.config.triplets)
    pred, _ = net.forward(b)
    for i in range(len(bfs_tb)):
        one = bfs_tb.select([i])
        b1 = bfs_batch(one, kind, triplets=net.config.triplets)
        pred1, _ = net.forward(b1)
        _compare_sample(net, bfs_tb, b, pred, i, one, b1, pred1, 0, processor)


def test_padding_invariance_heapsort_permutation_and_graph_hints(nets):
    """Sinkhorn permutation outputs, their head mask and graph-level hints (pooled per graph) are per sample: the
    same samples in another order and company (same padded shape, so one compile) get the same predictions."""
    tb = generate("heapsort", 4, [3, 4, 3, 4], seed=0).trajectories
    net = nets("mpnn", "encoded_decoded", 0.0, "heapsort")
    pad = make_batch(tb, "complete").pad_sizes
    assert pad.steps > int(tb.n_step.min())  # padded steps after some samples' ends
    b = jax.device_put(make_batch(tb, "complete"))
    pred, _ = net.forward(b)
    order = [2, 0, 3]  # sample 1 left out: more padding
    tb2 = tb.select(order)
    b2 = jax.device_put(make_batch(tb2, "complete", pad=pad, num_graphs=len(tb)))
    pred2, _ = net.forward(b2)
    for j, i in enumerate(order):
        _compare_sample(net, tb, b, pred, i, tb2, b2, pred2, j, "heapsort")
    assert_finite(pred)


def _valid_other_edge(b, stored_edge):
    """Another edge received by the same node (complete graph: the edge from the next node of its sample)."""
    rcv = np.asarray(b.graph.receivers)
    cands = np.flatnonzero(rcv == rcv[stored_edge])
    return int(cands[(list(cands).index(stored_edge) + 1) % len(cands)])


def test_outputs_frozen_after_each_sample_last_step(nets, bfs_tb):
    """With teacher forcing (truth hints fed at every step), hints at steps >= L - 1 of a sample never reach its
    outputs, nor its hint predictions of steps < L; changing an earlier hint does change them."""
    net = nets("mpnn", "encoded_decoded", 1.0)
    b = bfs_batch(bfs_tb, "complete")
    base, _ = net.forward(b, train=True)
    T = BFS_PAD.steps
    noff = offsets(bfs_tb.n_node)
    late = {k: np.array(v) for k, v in b.hints.items()}
    for s in range(len(bfs_tb)):
        L = int(bfs_tb.n_step[s])
        for v in range(int(noff[s]), int(noff[s + 1])):
            for t in range(L - 1, T):
                late["reach_h"][t, v] = 1.0 - late["reach_h"][t, v]
                late["pi_h"][t, v] = _valid_other_edge(b, late["pi_h"][t, v])
    got, _ = net.forward(b._replace(hints=jax.device_put(late)), train=True)
    same = dict(rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got.outputs["pi"], base.outputs["pi"], **same)
    for s in range(len(bfs_tb)):
        nodes, edges = _sample_rows(bfs_tb, b.graph, s)
        L = int(bfs_tb.n_step[s])
        np.testing.assert_allclose(got.hints["reach_h"][: L - 1, nodes], base.hints["reach_h"][: L - 1, nodes], **same)
        np.testing.assert_allclose(got.hints["pi_h"][: L - 1, edges], base.hints["pi_h"][: L - 1, edges], **same)
    # Control: hint step L - 2 >= 1 of sample 2 (L = 5) is an input of its last kept step.
    early = {k: np.array(v) for k, v in b.hints.items()}
    nodes, edges = _sample_rows(bfs_tb, b.graph, 2)
    early["reach_h"][3, nodes] = 1.0 - early["reach_h"][3, nodes]
    got, _ = net.forward(b._replace(hints=jax.device_put(early)), train=True)
    assert not np.allclose(got.outputs["pi"][edges], base.outputs["pi"][edges])
    others = np.r_[0:edges.start, edges.stop:BFS_PAD.edges]
    np.testing.assert_allclose(got.outputs["pi"][others], base.outputs["pi"][others], **same)


def test_teacher_forcing_one_cuts_hint_predictions_from_the_rollout(nets, bfs_tb):
    """teacher_forcing=1 in training feeds the truth at every step, so no hint prediction is fed back: the hint
    decoders cannot influence the outputs, and one hint's decoder cannot influence another hint's predictions.
    Without forcing (evaluation) they do."""
    b = bfs_batch(bfs_tb, "complete")
    forced = nets("mpnn", "encoded_decoded", 1.0)
    base, parts = forced.forward(b, train=True)
    got, parts2 = forced.forward(b, perturbed(forced.params, "hint_decoder"), train=True)
    np.testing.assert_allclose(got.outputs["pi"], base.outputs["pi"], rtol=1e-6, atol=1e-6)
    assert parts2["output/pi"] == pytest.approx(parts["output/pi"], rel=1e-6)
    assert not np.allclose(got.hints["pi_h"], base.hints["pi_h"])  # the hint decoders themselves did change
    assert parts2["hint/pi_h"] != pytest.approx(parts["hint/pi_h"], rel=1e-3)
    # Only pi_h's decoder perturbed: reach_h's predictions at every step are untouched.
    got, _ = forced.forward(b, perturbed(forced.params, "hint_decoder", "layers", "pi_h"), train=True)
    assert not np.allclose(got.hints["pi_h"], base.hints["pi_h"])
    np.testing.assert_allclose(got.hints["reach_h"], base.hints["reach_h"], rtol=1e-6, atol=1e-6)

    free = nets("mpnn", "encoded_decoded", 0.0)  # evaluation: predictions fed back
    base, _ = free.forward(b)
    got, _ = free.forward(b, perturbed(free.params, "hint_decoder"))
    assert not np.allclose(got.outputs["pi"], base.outputs["pi"], rtol=1e-3, atol=1e-3)
    got, _ = free.forward(b, perturbed(free.params, "hint_decoder", "layers", "pi_h"))
    # Step 0 reads only the true hint 0; from step 1 on, the perturbed pi_h predictions are fed back.
    np.testing.assert_allclose(got.hints["reach_h"][0], base.hints["reach_h"][0], rtol=1e-6, atol=1e-6)
    assert not np.allclose(got.hints["reach_h"][1:], base.hints["reach_h"][1:], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("kwargs,key", [
    ({"hint_mode": "encoded"}, "hint_mode"),
    ({"teacher_forcing": 1.5}, "teacher_forcing"),
    ({"teacher_forcing": -0.1}, "teacher_forcing"),
    ({"processor": "transformer"}, "processor"),
    ({"algorithm": "dijkstra"}, "algorithm"),
    ({"hint_repred": "soft_on_eval"}, "hint_repred"),
    ({"hidden": 0}, "hidden"),
    ({"message_graph": "grid"}, "message_graph"),
])
def test_model_config_rejects_bad_values(kwargs, key):
    with pytest.raises(ValueError, match=key):
        ModelConfig(**kwargs)


def test_model_config_graph_kind():
    assert ModelConfig("bfs", "mpnn").graph_kind == "complete"
    assert ModelConfig("bfs", "pgn").graph_kind == "complete"  # CLRS's PGN: messages masked, pointers over all nodes
    assert ModelConfig("bfs", "pgn_mask").graph_kind == "input"
    assert ModelConfig("bfs", "mpnn", message_graph="input").graph_kind == "input"
    assert ModelConfig("insertion_sort", "pgn", message_graph="input").graph_kind == "complete"
    ModelConfig(teacher_forcing=1.0)  # both ends of [0, 1] are allowed
    ModelConfig(teacher_forcing=0.0)


def test_mpnn_update_gate_interpolates_between_history_and_update():
    """GMPNN's gate (bias initialised to -3): shut, the hidden state is carried over; open, it is the ungated
    update of the same weights."""
    H = 8
    proc = MPNN(H, rngs=nnx.Rngs(0), gated=True)
    assert np.allclose(np.asarray(proc.gate_out.bias[...]), -3.0)
    b = make_batch(generate("bfs", 2, 5, seed=1).trajectories, "input")
    graph = graph_of(b)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(graph.num_nodes, H)), jnp.float32)
    e = jnp.asarray(rng.normal(size=(graph.num_edges, H)), jnp.float32)
    g = jnp.asarray(rng.normal(size=(graph.num_graphs, H)), jnp.float32)
    h = jnp.asarray(rng.normal(size=(graph.num_nodes, H)), jnp.float32)
    proc.gate_out.bias[...] = jnp.full((H,), -1e4)
    shut, _ = proc(x, e, g, graph, h)
    np.testing.assert_allclose(np.asarray(shut), np.asarray(h), rtol=1e-6)
    proc.gate_out.bias[...] = jnp.full((H,), 1e4)
    opened, _ = proc(x, e, g, graph, h)
    proc.gated = False
    ungated, _ = proc(x, e, g, graph, h)
    np.testing.assert_allclose(np.asarray(opened), np.asarray(ungated), rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.asarray(opened), np.asarray(h))
