"""Tropical (max-plus) attention processor: the max-plus projection (any K, never an [N, K, M] tensor) and its
one-arg-max gradient, the tropical Hilbert distance, the max-plus aggregation over in-neighbours and `segment_max_pick`
(against NumPy brute force), the whole attention sub-layer against a NumPy re-implementation, a hand-set layer doing
one exact Bellman-Ford relaxation, option validation, and the model end to end (finite outputs and gradients).

Everything is small (hidden 8-16, graphs of <= 8 nodes); layers are built abstractly (`nnx.eval_shape`) and
filled from NumPy, as in tests/test_model.py, so that no initialiser is run eagerly.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from abstract_params import random_params
from flax import nnx

from nar.data import generate
from nar.data.batch import make_batch
from nar.model.losses import total_loss
from nar.model.net import Model, ModelConfig
from nar.model.segment import segment_max_pick
from nar.processors import PROCESSORS, get_processor
from nar.processors.base import Graph
from nar.processors.tropical import (
    LOG_FLOOR,
    MAX_EXPONENT,
    Tropical,
    devaluation,
    hilbert_distance,
    maxplus_matmul,
    tropical_attention,
    valuation,
)


def fast_jit(f, **kwargs):
    """jax.jit with XLA's backend optimisations off: these tests check values, not speed."""
    return jax.jit(f, compiler_options={"xla_backend_optimization_level": 0}, **kwargs)


j_maxplus = fast_jit(maxplus_matmul)
j_segment_max_pick = fast_jit(segment_max_pick, static_argnums=(2, 3))


def assert_finite(tree, what=""):
    for path, x in jax.tree_util.tree_leaves_with_path(tree):
        assert np.all(np.isfinite(np.asarray(x))), f"{what} {jax.tree_util.keystr(path)}"


# ---------------------------------------------------------------------------------------------------------------
# NumPy oracles


def np_maxplus(x, w):
    """(x (x) w)[n, m] = max_k x[n, k] + w[k, m], by brute force."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    out = np.empty((x.shape[0], w.shape[1]))
    for n in range(x.shape[0]):
        for m in range(w.shape[1]):
            out[n, m] = max(x[n, k] + w[k, m] for k in range(x.shape[1]))
    return out


def np_first_argmax_maxplus(x, w):
    """[N, M] the first k attaining max_k x[n, k] + w[k, m]."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    return np.argmax(x[:, :, None] + w[None], axis=1)


def np_hilbert(x, y):
    d = np.asarray(x, np.float64) - np.asarray(y, np.float64)
    return d.max(-1) - d.min(-1)


def np_tropical_attention(q, k, v, eps, senders, receivers, num_nodes):
    """C[i, h, a] = max over edges e = j -> i of (-d_H(q_i^h, k_j^h) + v_j[h, a] + eps_e[h, a]); 0 if i has no
    in-edge. A plain loop over nodes, heads, columns and edges."""
    q, k, v, eps = (np.asarray(a, np.float64) for a in (q, k, v, eps))
    _, H, D = v.shape
    out = np.zeros((num_nodes, H, D))
    for i in range(num_nodes):
        edges = [e for e in range(len(receivers)) if receivers[e] == i]
        for h in range(H):
            for a in range(D):
                if edges:
                    out[i, h, a] = max(-np_hilbert(q[i, h], k[senders[e], h]) + v[senders[e], h, a] + eps[e, h, a]
                                       for e in edges)
    return out


def random_graph(rng, n_node=(4, 3), p=0.5, pad_nodes=1):
    """A padded Graph as make_batch lays it out: per sample random directed edges plus every self-loop, sorted by
    receiver then sender; `pad_nodes` padding nodes with no edge at all, in the last graph slot."""
    off = np.concatenate([[0], np.cumsum(n_node)])
    pairs = []
    for g, n in enumerate(n_node):
        for j in range(n):
            for i in range(n):
                if i == j or rng.random() < p:
                    pairs.append((off[g] + j, off[g] + i))  # j -> i
    pairs.sort(key=lambda e: (e[1], e[0]))
    senders = np.array([s for s, _ in pairs], np.int32)
    receivers = np.array([r for _, r in pairs], np.int32)
    n_real = int(off[-1])
    node_graph = np.concatenate([np.repeat(np.arange(len(n_node)), n_node),
                                 np.full(pad_nodes, len(n_node))]).astype(np.int32)
    return Graph(jnp.asarray(senders), jnp.asarray(receivers), jnp.asarray(node_graph),
                 jnp.asarray(node_graph[receivers]), jnp.asarray(np.array([*n_node, pad_nodes], np.int32))), n_real


# ---------------------------------------------------------------------------------------------------------------
# 1, 9. maxplus_matmul values


@pytest.mark.parametrize("shape", [(5, 4, 3), (7, 6, 8), (1, 3, 2), (3, 1, 4), (37, 11, 3)])
def test_maxplus_matmul_matches_brute_force(shape):
    """Random inputs (K = 1 included, and K above the loop's unroll of 8): a NumPy max over k of x[n, k] + w[k, m]."""
    N, K, M = shape
    rng = np.random.default_rng(N * 100 + K)
    x = rng.normal(size=(N, K)).astype(np.float32)
    w = rng.normal(size=(K, M)).astype(np.float32)
    got = np.asarray(j_maxplus(x, w))
    assert got.shape == (N, M)
    np.testing.assert_allclose(got, np_maxplus(x, w), rtol=1e-6, atol=1e-6)


def test_maxplus_matmul_memory_is_that_of_the_output():
    """No [N, K, M] tensor: the compiled program's temporary memory stays far below N * K * M floats."""
    N, K, M = 4096, 128, 128
    compiled = jax.jit(maxplus_matmul).lower(jnp.zeros((N, K)), jnp.zeros((K, M))).compile()
    temp = compiled.memory_analysis().temp_size_in_bytes
    assert temp < N * K * M * 4 / 16, temp


def test_maxplus_matmul_float_extremes():
    """Large negative entries (the tropical 'zero' stand-in) and a tropical identity: x (x) I = x."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 4)).astype(np.float32) * 5
    eye = np.where(np.eye(4, dtype=bool), 0.0, -1e4).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(j_maxplus(x, eye)), x)


# ---------------------------------------------------------------------------------------------------------------
# 2. maxplus_matmul gradient: one arg-max per output


def maxplus_grads(x, w, cot):
    return fast_jit(jax.grad(lambda x, w: jnp.sum(maxplus_matmul(x, w) * cot), argnums=(0, 1)))(x, w)


def test_maxplus_matmul_gradient_all_ties_goes_to_first_k():
    """x = 0, w = 0: every k ties. The gradient of sum(output) is finite and each output's unit gradient goes to
    k = 0 only: dx[n, 0] = M, dw[0, m] = N, every other entry 0."""
    N, K, M = 5, 4, 3
    x, w = np.zeros((N, K), np.float32), np.zeros((K, M), np.float32)
    dx, dw = (np.asarray(a) for a in maxplus_grads(x, w, np.ones((N, M), np.float32)))
    assert np.all(np.isfinite(dx)) and np.all(np.isfinite(dw))
    want_dx = np.zeros((N, K))
    want_dx[:, 0] = M
    want_dw = np.zeros((K, M))
    want_dw[0, :] = N
    np.testing.assert_array_equal(dx, want_dx)
    np.testing.assert_array_equal(dw, want_dw)
    assert dx.sum() == dw.sum() == N * M  # one unit per output, counted once on each side


def test_maxplus_matmul_gradient_random_ties():
    """Small integers (many partial ties) and a random cotangent G: dx[n, k] = sum_m G[n, m] [k*(n, m) = k],
    dw[k, m] = sum_n G[n, m] [k*(n, m) = k], with k* the first arg-max (NumPy)."""
    N, K, M = 7, 4, 3
    rng = np.random.default_rng(11)
    x = rng.integers(0, 3, size=(N, K)).astype(np.float32)
    w = rng.integers(0, 2, size=(K, M)).astype(np.float32)
    cot = rng.normal(size=(N, M)).astype(np.float32)
    kstar = np_first_argmax_maxplus(x, w)
    # The inputs do have ties, so the test distinguishes "first arg-max" from "split among ties".
    sums = x[:, :, None] + w[None]
    assert np.any((sums == sums.max(1, keepdims=True)).sum(1) > 1)
    want_dx, want_dw = np.zeros((N, K)), np.zeros((K, M))
    for n in range(N):
        for m in range(M):
            want_dx[n, kstar[n, m]] += cot[n, m]
            want_dw[kstar[n, m], m] += cot[n, m]
    dx, dw = maxplus_grads(x, w, cot)
    np.testing.assert_allclose(np.asarray(dx), want_dx, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(dw), want_dw, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# 3. Hilbert distance


j_hilbert = fast_jit(hilbert_distance)


def test_hilbert_distance_matches_numpy_and_is_projective():
    """d_H = max(x - y) - min(x - y) over the last axis; unchanged by adding a constant (per row) to x or to y;
    symmetric; >= 0."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 2, 5)).astype(np.float32)
    y = rng.normal(size=(6, 2, 5)).astype(np.float32)
    d = np.asarray(j_hilbert(x, y))
    assert d.shape == (6, 2)
    np.testing.assert_allclose(d, np_hilbert(x, y), rtol=1e-5, atol=1e-6)
    assert np.all(d > 0)
    c = rng.normal(size=(6, 2, 1)).astype(np.float32) * 3
    np.testing.assert_allclose(np.asarray(j_hilbert(x + c, y)), d, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(j_hilbert(x, y - c)), d, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(j_hilbert(y, x)), d, rtol=1e-6, atol=1e-6)


def test_hilbert_distance_zero_iff_difference_constant():
    """0 when x - y is a constant vector (any constant), > 0 as soon as one coordinate differs."""
    rng = np.random.default_rng(1)
    y = rng.integers(-5, 5, size=(4, 6)).astype(np.float32)
    c = np.array([[0.0], [1.0], [-2.0], [7.0]], np.float32)
    np.testing.assert_array_equal(np.asarray(j_hilbert(y + c, y)), 0.0)
    x = y + c
    x[np.arange(4), [0, 2, 5, 3]] += 0.5
    np.testing.assert_allclose(np.asarray(j_hilbert(x, y)), 0.5)


def test_hilbert_distance_gradient():
    """Without ties: d d_H / dx = onehot(argmax(x - y)) - onehot(argmin(x - y)) and d/dy is its negative. With
    x == y (every coordinate ties): distance 0 and a finite, NaN-free gradient (max and min both pick the first
    coordinate, so the gradient is exactly 0)."""
    grad = fast_jit(jax.grad(lambda x, y: jnp.sum(hilbert_distance(x, y)), argnums=(0, 1)))
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 5)).astype(np.float32)
    y = rng.normal(size=(3, 5)).astype(np.float32)
    diff = x - y
    want = np.eye(5)[diff.argmax(-1)] - np.eye(5)[diff.argmin(-1)]
    gx, gy = grad(x, y)
    np.testing.assert_array_equal(np.asarray(gx), want)
    np.testing.assert_array_equal(np.asarray(gy), -want)

    same = np.ones((3, 5), np.float32)
    np.testing.assert_array_equal(np.asarray(j_hilbert(same, same)), 0.0)
    gx, gy = grad(same, same)
    assert np.all(np.isfinite(gx)) and np.all(np.isfinite(gy))
    np.testing.assert_array_equal(np.asarray(gx), 0.0)
    np.testing.assert_array_equal(np.asarray(gy), 0.0)
    # Partial ties (x - y = [1, 1, 0, 0, 1]): the first max (0) and the first min (2).
    gx, _ = grad(np.array([[1, 1, 0, 0, 1]], np.float32), np.zeros((1, 5), np.float32))
    np.testing.assert_array_equal(np.asarray(gx), [[1, 0, -1, 0, 0]])


# ---------------------------------------------------------------------------------------------------------------
# 4. Max-plus aggregation over in-neighbours


j_attention = fast_jit(tropical_attention)


def test_tropical_attention_matches_brute_force():
    """Random q, k, v, eps on a random padded graph (self-loops, one edgeless padding node): equals the per-node
    NumPy loop, padding node included (0)."""
    rng = np.random.default_rng(5)
    graph, _ = random_graph(rng)
    N, E, H, D = graph.num_nodes, graph.num_edges, 2, 3
    q, k, v = (rng.normal(size=(N, H, D)).astype(np.float32) for _ in range(3))
    eps = rng.normal(size=(E, H, D)).astype(np.float32)
    got = np.asarray(j_attention(q, k, v, eps, graph))
    want = np_tropical_attention(q, k, v, eps, np.asarray(graph.senders), np.asarray(graph.receivers), N)
    assert got.shape == (N, H, D)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got[-1], 0.0)  # the padding node receives no edge


def test_tropical_attention_invariant_to_constant_shift_of_q_or_k():
    """Adding a constant to every q (or every k; even a different constant per node and head) leaves the Hilbert
    scores, hence the result, unchanged; shifting v by c shifts the result by c."""
    rng = np.random.default_rng(6)
    graph, n_real = random_graph(rng, n_node=(5, 2), p=0.4)
    N, E, H, D = graph.num_nodes, graph.num_edges, 2, 4
    q, k, v = (rng.normal(size=(N, H, D)).astype(np.float32) for _ in range(3))
    eps = rng.normal(size=(E, H, D)).astype(np.float32)
    base = np.asarray(j_attention(q, k, v, eps, graph))
    c = np.float32(2.5)
    per_node = rng.normal(size=(N, H, 1)).astype(np.float32)
    for q2, k2 in [(q + c, k), (q, k - c), (q + per_node, k), (q, k + per_node)]:
        np.testing.assert_allclose(np.asarray(j_attention(q2, k2, v, eps, graph)), base, rtol=1e-5, atol=1e-5)
    shifted = np.asarray(j_attention(q, k, v + c, eps, graph))
    np.testing.assert_allclose(shifted[:n_real], base[:n_real] + c, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# 5. segment_max_pick


@pytest.mark.parametrize("sorted_", [True, False])
def test_segment_max_pick_values_and_one_argmax_gradient(sorted_):
    """Small integers (ties within segments), two empty segments: the value is the NumPy per-segment max (0 when
    empty) and the gradient of sum(G * out) sends G[s, c] to the first arg-max of (s, c) only."""
    rng = np.random.default_rng(7)
    seg = np.array([0, 0, 0, 2, 2, 3, 3, 3, 3, 5], np.int32)  # segments 1 and 4 empty
    if not sorted_:
        seg = seg[rng.permutation(len(seg))]
    S, C = 6, 3
    x = rng.integers(-2, 2, size=(len(seg), C)).astype(np.float32)
    x[seg == 5] = -4.0  # a segment whose max is negative (not confused with the empty 0)
    want = np.zeros((S, C))
    first = -np.ones((S, C), np.int64)
    for s in range(S):
        rows = np.nonzero(seg == s)[0]
        if len(rows):
            want[s] = x[rows].max(0)
            first[s] = rows[np.argmax(x[rows], axis=0)]  # rows ascending: the lowest index among the ties
    ties = [(s, c) for s in range(S) for c in range(C) if (x[seg == s, c] == want[s, c]).sum() > 1]
    assert ties  # the data does tie
    got = np.asarray(j_segment_max_pick(x, seg, S, sorted_))
    np.testing.assert_array_equal(got, want)

    cot = rng.normal(size=(S, C)).astype(np.float32)
    g = np.asarray(fast_jit(jax.grad(lambda x: jnp.sum(segment_max_pick(x, seg, S, sorted_) * cot)))(x))
    want_g = np.zeros_like(x)
    for s in range(S):
        for c in range(C):
            if first[s, c] >= 0:
                want_g[first[s, c], c] = cot[s, c]
    assert np.all(np.isfinite(g))
    np.testing.assert_array_equal(g, want_g)
    np.testing.assert_array_equal(np.count_nonzero(g, axis=0), 4)  # 4 non-empty segments, one pick per column


# ---------------------------------------------------------------------------------------------------------------
# Tropical layers built abstractly, filled from NumPy


def tropical_layer(hidden, heads, variant, fill):
    """(graphdef, parameters as a pure dict) of `Tropical(hidden, heads=heads, valuation=variant)`; each leaf is
    `fill(path, shape)` (a NumPy array)."""
    abstract = nnx.eval_shape(lambda: Tropical(hidden, rngs=nnx.Rngs(0), heads=heads, valuation=variant))
    graphdef, state = nnx.split(abstract)
    params = jax.tree_util.tree_map_with_path(
        lambda path, leaf: np.asarray(fill(tuple(str(getattr(p, "key", p)) for p in path), leaf.shape), np.float32),
        nnx.to_pure_dict(state))
    return graphdef, params


def attend_fn(graphdef):
    return fast_jit(lambda p, z, e, g, graph: nnx.merge(graphdef, p).attend(z, e, g, graph))


def np_attend(p, z, e, g, graph, heads, variant):
    """NumPy re-implementation of `Tropical.attend` from the module docstring's equations."""
    f = np.float64
    z, e, g = (np.asarray(a, f) for a in (z, e, g))
    node_graph = np.asarray(graph.node_graph)
    pre = z @ p["qkv"]["kernel"] + p["qkv"]["bias"] + (g @ p["qkv_graph"]["kernel"])[node_graph]
    u = np.log1p(np.maximum(pre, 0)) if variant == "log1p" else np.log(np.maximum(pre, LOG_FLOOR))
    d = pre.shape[1] // 3
    lam = np.asarray(p["shift"], f)
    u_q, u_k, u_v = u[:, :d] - lam, u[:, d:2 * d] - lam, u[:, 2 * d:] - lam
    N = z.shape[0]
    q = np_maxplus(u_q, p["w_q"]).reshape(N, heads, -1)
    k = np_maxplus(u_k, p["w_k"]).reshape(N, heads, -1)
    v = np_maxplus(u_v, p["w_v"]).reshape(N, heads, -1)
    eps = (e @ p["edge_weight"]["kernel"] + p["edge_weight"]["bias"]).reshape(e.shape[0], heads, -1)
    c = np_tropical_attention(q, k, v, eps, np.asarray(graph.senders), np.asarray(graph.receivers), N)
    c = np.minimum(c, MAX_EXPONENT)
    return (np.expm1(c) if variant == "log1p" else np.exp(c)).reshape(N, -1)


@pytest.mark.parametrize("variant,heads", [("log1p", 2), ("log", 4)])
def test_attend_matches_numpy_reimplementation(variant, heads):
    """The whole attention sub-layer (valuation, shift, max-plus projections, per-head Hilbert scores, max-plus
    aggregation with edge weights, devaluation) with random parameters equals a NumPy re-implementation."""
    H = 8
    rng = np.random.default_rng(8)

    def fill(path, shape):
        scale = 1.0 if path[-1] in ("w_q", "w_k", "w_v") else 0.5
        return rng.normal(size=shape) * scale + (1.0 if path[-1] == "bias" else 0.0)

    graphdef, params = tropical_layer(H, heads, variant, fill)
    graph, _ = random_graph(rng, n_node=(4, 3), p=0.5)
    N, E, G = graph.num_nodes, graph.num_edges, graph.num_graphs
    z = rng.normal(size=(N, 2 * H)).astype(np.float32)
    e = rng.normal(size=(E, H)).astype(np.float32)
    g = rng.normal(size=(G, H)).astype(np.float32)
    got = np.asarray(attend_fn(graphdef)(params, z, e, g, graph))
    want = np_attend(params, z, e, g, graph, heads, variant)
    assert got.shape == (N, H)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------------------------
# 6. One exact Bellman-Ford relaxation by a hand-set layer


def np_bellman_ford_step(d, edges):
    """d_new_i = min(d_i, min over edges (j, i, w) of d_j + w)."""
    new = np.array(d, np.float64)
    for j, i, w in edges:
        new[i] = min(new[i], d[j] + w)
    return new


@pytest.mark.parametrize("heads", [1, 2])
def test_hand_set_layer_performs_one_bellman_ford_relaxation(heads):
    """valuation 'log', node feature 0 = exp(-d_j) so val gives -d_j; the value Linear copies it into v column 0
    (other columns: bias 1, val 0); shift 0; W_v the tropical identity; q and k constant (kernels 0, bias 1,
    W_Q = W_K) so every Hilbert score is 0; the edge Linear maps w_ji to -w_ji. Then attend(...)[:, 0] = exp(-d_new)
    with d_new one Bellman-Ford relaxation (the self-loop, weight 0, keeps d_i), and the other columns are
    exp(-min_j w_ji) = exp(0) = 1 (non-negative weights, self-loop 0)."""
    H = 8
    d_ = H  # tropical width
    # A weighted directed graph on 6 nodes (j, i, w_ji); 10 plays 'infinity' (exp(-10) is far above LOG_FLOOR).
    edges = [(0, 1, 1.5), (0, 2, 4.0), (1, 2, 0.5), (2, 3, 1.0), (1, 3, 5.0), (4, 3, 0.25), (3, 4, 2.0),
             (5, 0, 1.0), (2, 5, 0.75), (1, 4, 3.0)]
    d = np.array([0.0, 2.0, 10.0, 10.0, 1.0, 10.0])
    want = np_bellman_ford_step(d, edges)
    assert np.any(want != d) and np.any(want == d)  # some distances relax, others keep their value
    np.testing.assert_allclose(want, [0.0, 1.5, 2.5, 1.25, 1.0, 10.0])
    N = len(d)
    pairs = sorted([(j, i, w) for j, i, w in edges] + [(i, i, 0.0) for i in range(N)], key=lambda t: (t[1], t[0]))
    senders = jnp.asarray([j for j, _, _ in pairs], jnp.int32)
    receivers = jnp.asarray([i for _, i, _ in pairs], jnp.int32)
    node_graph = jnp.zeros(N, jnp.int32)
    graph = Graph(senders, receivers, node_graph, jnp.zeros(len(pairs), jnp.int32), jnp.asarray([N], jnp.int32))

    rng = np.random.default_rng(9)
    w_qk = rng.normal(size=(d_, d_))

    def fill(path, shape):
        name = path[-1]
        if path[0] == "qkv" and name == "kernel":
            k = np.zeros(shape)
            k[0, 2 * d_] = 1.0  # v column 0 <- z[:, 0]
            return k
        if path[0] == "qkv" and name == "bias":
            b = np.ones(shape)
            b[2 * d_] = 0.0
            return b
        if path[0] == "qkv_graph":
            return np.zeros(shape)
        if name == "shift":
            return np.zeros(shape)
        if name == "w_v":
            return np.where(np.eye(d_, dtype=bool), 0.0, -1e4)
        if name in ("w_q", "w_k"):
            return w_qk  # any matrix, the same for both: q = k for every node, so q_i - k_j = 0
        if path[0] == "edge_weight" and name == "kernel":
            k = np.zeros(shape)
            k[0, :] = -1.0  # eps_ji = -w_ji in every tropical column
            return k
        if path[0] == "edge_weight" and name == "bias":
            return np.zeros(shape)
        return rng.normal(size=shape)  # unused by attend

    graphdef, params = tropical_layer(H, heads, "log", fill)
    z = rng.uniform(0.5, 2.0, size=(N, 2 * H)).astype(np.float32)
    z[:, 0] = np.exp(-d)
    e = rng.normal(size=(len(pairs), H)).astype(np.float32)
    e[:, 0] = [w for _, _, w in pairs]
    g = rng.normal(size=(1, H)).astype(np.float32)
    out = np.asarray(attend_fn(graphdef)(params, z, e, g, graph))
    assert out.shape == (N, d_)
    np.testing.assert_allclose(-np.log(out[:, 0].astype(np.float64)), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out[:, 1:], 1.0, rtol=1e-6)

    # Two relaxations (feeding exp(-d_new) back) reach the second Bellman-Ford iterate.
    z2 = z.copy()
    z2[:, 0] = out[:, 0]
    out2 = np.asarray(attend_fn(graphdef)(params, z2, e, g, graph))
    np.testing.assert_allclose(-np.log(out2[:, 0].astype(np.float64)), np_bellman_ford_step(want, edges),
                               rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# 7. Valuations and option validation


def test_valuation_and_devaluation():
    """log1p: dev(val(x)) = x and val(dev(c)) = c on x, c >= 0 (c below MAX_EXPONENT); negatives valuate to 0.
    log: val floors at log(LOG_FLOOR), finite at 0 and below; dev(val(x)) = x for x >= LOG_FLOOR. Devaluation
    clips at MAX_EXPONENT (finite in float32). An unknown variant raises."""
    x = np.array([0.0, 1e-3, 0.5, 1.0, 3.0, 100.0], np.float32)
    np.testing.assert_allclose(np.asarray(devaluation(valuation(x, "log1p"), "log1p")), x, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.asarray(valuation(x, "log1p")), np.log1p(x.astype(np.float64)), rtol=1e-6)
    c = np.array([0.0, 0.25, 2.0, 10.0], np.float32)
    np.testing.assert_allclose(np.asarray(valuation(devaluation(c, "log1p"), "log1p")), c, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(valuation(np.array([-1.0, -1e-3], np.float32), "log1p")), 0.0)

    low = np.asarray(valuation(np.array([0.0, -5.0, LOG_FLOOR / 10], np.float32), "log"))
    assert np.all(np.isfinite(low))
    np.testing.assert_allclose(low, np.log(LOG_FLOOR), rtol=1e-6)
    y = np.array([LOG_FLOOR, 1e-3, 1.0, 50.0], np.float32)
    np.testing.assert_allclose(np.asarray(devaluation(valuation(y, "log"), "log")), y, rtol=1e-5)
    big = np.asarray(devaluation(np.array([MAX_EXPONENT + 100.0], np.float32), "log"))
    assert np.isfinite(big).all()
    np.testing.assert_allclose(big, np.exp(MAX_EXPONENT), rtol=1e-5)
    with pytest.raises(ValueError, match="valuation"):
        valuation(x, "softplus")
    with pytest.raises(ValueError, match="valuation"):
        devaluation(x, "softplus")


@pytest.mark.parametrize("kwargs", [dict(gated=True), dict(hidden=10, heads=4), dict(heads=0),
                                    dict(valuation="softplus")])
def test_tropical_constructor_rejects_bad_options(kwargs):
    kwargs = {"hidden": 8, **kwargs}
    with pytest.raises(ValueError):
        nnx.eval_shape(lambda: Tropical(rngs=nnx.Rngs(0), **kwargs))


def test_model_config_validates_tropical_options():
    with pytest.raises(ValueError, match="heads"):
        ModelConfig(processor="tropical", heads=3, hidden=16)
    with pytest.raises(ValueError, match="valuation"):
        ModelConfig(processor="tropical", valuation="softplus")
    ModelConfig(processor="tropical", heads=4, hidden=16, valuation="log")  # valid


def test_registry_and_default_message_graph():
    assert "tropical" in PROCESSORS
    entry = get_processor("tropical")
    assert entry.build is Tropical and entry.default_message_graph == "input"
    assert set(entry.options) == {"heads", "valuation"} and not entry.triplets
    assert ModelConfig(processor="tropical").graph_kind == "input"
    assert ModelConfig(processor="tropical", message_graph="complete").graph_kind == "complete"


# ---------------------------------------------------------------------------------------------------------------
# 8. End to end


def test_model_end_to_end_finite_outputs_and_gradients():
    """bellman_ford with the tropical processor (hidden 16, 4 heads) on 4 generated 6-node graphs: outputs,
    hints and loss finite; the gradient of total_loss wrt every parameter finite, and the attention's own
    parameters (W_V, the edge weights) receive a nonzero gradient."""
    cfg = ModelConfig(algorithm="bellman_ford", processor="tropical", hidden=16)
    assert cfg.graph_kind == "input"
    tb = generate("bellman_ford", 4, 6, 0).trajectories
    batch = jax.device_put(make_batch(tb, cfg.graph_kind))
    _, graphdef, params = random_params(lambda: Model(cfg, rngs=nnx.Rngs(0)))
    assert "w_v" in params["processor"]

    def loss_fn(p, b, key):
        m = nnx.merge(graphdef, p)
        preds = m(b, key, train=True)
        loss, parts = total_loss(m, preds, b)
        return loss, (parts, preds)

    (loss, (parts, preds)), grads = fast_jit(jax.value_and_grad(loss_fn, has_aux=True))(
        params, batch, jax.random.key(0))
    assert np.isfinite(float(loss)) and float(loss) > 0
    assert_finite(parts, "loss part")
    assert_finite(preds, "prediction")
    assert set(preds.outputs) == {"pi"}
    assert_finite(grads, "gradient")
    proc = grads["processor"]
    assert np.any(np.asarray(proc["w_v"]) != 0)
    assert np.any(np.asarray(proc["edge_weight"]["kernel"]) != 0)
