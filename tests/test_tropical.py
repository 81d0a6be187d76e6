"""Tropical (max-plus) attention processor: the max-plus projection (any K, never an [N, K, M] tensor) and its
one-arg-max gradient, the tropical Hilbert distance, the max-plus aggregation over in-neighbours and `segment_max_pick`
(against NumPy brute force); a processor step, under every option layout, against the paper's equations written out
in NumPy (per-head max-plus projections, Hilbert scores, valuation, max-plus aggregation over in-neighbours, the
post-LN block, padded batches); how the options relate; a hand-set layer doing one exact Bellman-Ford relaxation;
option validation; and the model end to end (finite outputs and gradients).

Everything is small (hidden 8-16, graphs of <= 8 nodes); layers are built abstractly (`nnx.eval_shape`) and
filled from NumPy, as in tests/test_model.py, so that no initialiser is run eagerly.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from abstract_params import random_params
from flax import nnx

from nar.config import from_dict
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
# 6. The paper's equations, written out independently of nar's code
#
# Source: Hashemi, Pasque, Teska, Yoshida, "Tropical Attention: Neural Algorithmic Reasoning for Combinatorial
# Algorithms" (NeurIPS 2025, arXiv 2505.17190), Sec. 3 and App. D (Alg. 1), and the released code
# (github.com/Baran-phys/Tropical-Attention @ e3c12f3, models.py: TropicalAttention, TransformerBlock). Notation:
#   tropical semiring (R u {-inf}, (+) = max, (.) = +);  (A (.) B)_ia = max_t A_it + B_ta  (max-plus product)
#   valuation  v(x) = log(max(0, x))  (paper, Lemma 3.1)  |  log1p(max(0, x))  (released code)
#   tropicalisation  Phi_lambda(X) = v(X) - lambda,  lambda in R^d learnable
#   per head h (d_k = d / H):  Q^(h) = Phi(X L_Q)^(h) (.) W_Q^(h)  (same for K, V)
#   Hilbert projective metric  d_H(x, y) = max_r (x_r - y_r) - min_r (x_r - y_r)
#   scores  S_ij^(h) = -d_H(q_i^(h), k_j^(h))
#   context  C_i^(h) = (+)_j S_ij^(h) (.) v_j^(h) = max_j (S_ij^(h) + v_j^(h))
#   devaluation  psi = exp (paper) | expm1 (released code);  MHTA(X) = [psi(C^(1)) || ... || psi(C^(H))] W_O
#   post-LN block  X <- LN(X + MHTA(X));  X <- LN(X + FFN(X))
# nar's graph adaptation, also written out here: token i's max runs over its in-neighbours j (edge j -> i, a dense
# mask), edge features add a tropical weight eps_ji inside that max, graph features add g Wg inside v(.), and
# CLRS's z = [x || h_prev] (width 2H) is brought to width d by X = z P.


def tropical_layer(hidden, fill, **opts):
    """(graphdef, parameters as a pure dict) of `Tropical(hidden, **opts)`; each leaf is `fill(path, shape)`."""
    abstract = nnx.eval_shape(lambda: Tropical(hidden, rngs=nnx.Rngs(0), **opts))
    graphdef, state = nnx.split(abstract)
    params = jax.tree_util.tree_map_with_path(
        lambda path, leaf: np.asarray(fill(tuple(str(getattr(p, "key", p)) for p in path), leaf.shape), np.float32),
        nnx.to_pure_dict(state))
    return graphdef, params


def random_fill(rng):
    def fill(path, shape):
        name = path[-1]
        if name in ("w_q", "w_k", "w_v"):
            return rng.normal(size=shape)  # N(0, 1), as the released code's torch.randn
        if name == "kernel":
            return rng.normal(size=shape) / np.sqrt(shape[0])
        if name in ("scale", "shift"):
            return 1.0 + 0.1 * rng.normal(size=shape)
        return 0.5 * rng.normal(size=shape)  # biases
    return fill


def paper_maxplus(A, B):
    """(A (.) B)_ia = max_t A_it + B_ta."""
    return (np.asarray(A, np.float64)[:, :, None] + np.asarray(B, np.float64)[None, :, :]).max(axis=1)


def paper_valuation(x, variant):
    """v(x): log(max(0, x)) (paper) or log1p(max(0, x)) (code). The paper's log(0) = -inf would make d_H = inf - inf;
    nar floors ReLU's zeros at LOG_FLOOR (a documented numerical guard), and so does this oracle."""
    return np.log1p(np.maximum(x, 0.0)) if variant == "log1p" else np.log(np.maximum(x, LOG_FLOOR))


def paper_devaluation(c, variant):
    """psi: exp (paper) or expm1 (code). nar clips at MAX_EXPONENT; the tests keep C well below it."""
    assert np.max(c) < MAX_EXPONENT
    return np.expm1(c) if variant == "log1p" else np.exp(c)


def paper_hilbert(x, y):
    """d_H(x, y) = max_r (x_r - y_r) - min_r (x_r - y_r)."""
    diff = np.asarray(x, np.float64) - np.asarray(y, np.float64)
    return diff.max() - diff.min()


def paper_layer_norm(x, scale, bias, eps=1e-6):
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps) * scale + bias


def paper_mhta(X, p, heads, variant, maps, mask, eps_dense=None, g_term=0.0):
    """MHTA(X) for the n tokens X [n, d_in] of one sample. mask[i, j]: token i attends to token j (edge j -> i);
    eps_dense[i, j] [d]: the tropical edge weight of j -> i; g_term [d * 3]: the graph-feature term."""
    L, b_L = p["qkv"]["kernel"], p["qkv"].get("bias", 0.0)  # Euclidean L_Q | L_K | L_V (bias only with the option)
    d = L.shape[1] // 3
    d_k = d // heads
    pre = np.asarray(X, np.float64) @ L + b_L + g_term
    lam = np.asarray(p["shift"], np.float64)
    U = {name: paper_valuation(pre[:, c * d:(c + 1) * d], variant) - lam  # Phi_lambda
         for c, name in enumerate(("w_q", "w_k", "w_v"))}
    n = X.shape[0]
    contexts = []
    for h in range(heads):
        cols = slice(h * d_k, (h + 1) * d_k)

        def project(name):
            W = np.asarray(p[name], np.float64)
            if maps == "head_shared":  # released code: one d_k x d_k map applied to every head's slice
                return paper_maxplus(U[name][:, cols], W)
            if maps == "per_head":  # W^(h) in R^{d_k x d_k} on head h's slice
                return paper_maxplus(U[name][:, cols], W[h])
            return paper_maxplus(U[name], W[:, cols])  # full: W^(h) in R^{d_k x d} reads all of u

        q, k, v = project("w_q"), project("w_k"), project("w_v")
        S = np.array([[-paper_hilbert(q[i], k[j]) for j in range(n)] for i in range(n)])
        C = np.zeros((n, d_k))  # a token with no in-neighbour gets 0 (only padding nodes)
        for i in range(n):
            terms = [S[i, j] + v[j] + (0.0 if eps_dense is None else eps_dense[i, j, cols])
                     for j in range(n) if mask[i, j]]
            if terms:
                C[i] = np.max(terms, axis=0)
        contexts.append(paper_devaluation(C, variant))
    return np.concatenate(contexts, axis=1) @ p["out"]["kernel"] + p["out"].get("bias", 0.0)


def paper_block(z, p, heads, variant, maps, skip, mask, eps_dense=None, g_term=0.0):
    """One processor step for one sample: X = z P, then LN(X + MHTA(X)), LN(. + FFN(.)); with the skip option,
    LN(z R + b_R + MHTA(z)) instead of the first."""
    z = np.asarray(z, np.float64)
    if skip:
        tokens, residual = z, z @ p["skip"]["kernel"] + p["skip"].get("bias", 0.0)
    else:
        tokens = residual = z @ p["inp"]["kernel"]
    h = paper_layer_norm(residual + paper_mhta(tokens, p, heads, variant, maps, mask, eps_dense, g_term),
                         p["norm1"]["scale"], p["norm1"]["bias"])
    ffn = np.maximum(h @ p["ffn1"]["kernel"] + p["ffn1"]["bias"], 0.0) @ p["ffn2"]["kernel"] + p["ffn2"]["bias"]
    return paper_layer_norm(h + ffn, p["norm2"]["scale"], p["norm2"]["bias"])


def complete_graph(n_node, pad_nodes=1):
    """make_batch's layout of complete graphs with self-loops (edges sorted by receiver), padding nodes edgeless."""
    off = np.concatenate([[0], np.cumsum(n_node)])
    pairs = sorted(((off[g] + j, off[g] + i) for g, n in enumerate(n_node) for i in range(n) for j in range(n)),
                   key=lambda e: (e[1], e[0]))
    node_graph = np.concatenate([np.repeat(np.arange(len(n_node)), n_node),
                                 np.full(pad_nodes, len(n_node))]).astype(np.int32)
    senders = np.array([s for s, _ in pairs], np.int32)
    receivers = np.array([r for _, r in pairs], np.int32)
    return Graph(jnp.asarray(senders), jnp.asarray(receivers), jnp.asarray(node_graph),
                 jnp.asarray(node_graph[receivers]), jnp.asarray(np.array([*n_node, pad_nodes], np.int32))), off


def step_fn(graphdef):
    return fast_jit(lambda p, x, e, g, graph, h: nnx.merge(graphdef, p)(x, e, g, graph, h)[0])


def attend_fn(graphdef):
    return fast_jit(lambda p, x, e, g, graph: nnx.merge(graphdef, p).attend(x, e, g, graph))


LAYOUTS = [dict(), dict(heads=4), dict(tropical_maps="per_head"), dict(tropical_maps="full"),
           dict(valuation="log"), dict(tropical_bias=True), dict(tropical_skip=True),
           dict(tropical_maps="full", tropical_bias=True, tropical_skip=True)]  # the last: nar's earlier layout


@pytest.mark.parametrize("opts", LAYOUTS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_step_is_the_papers_block_on_complete_graphs(opts):
    """On a batch of two complete graphs (self-loops) plus a padding node, with e = 0 and g = 0, a processor step
    equals the paper's post-LN block with MHTA over each sample's tokens, sample by sample (the oracle never sees
    the other sample or the padding). Every option layout against the same written-out equations."""
    opts = {"heads": 2, "valuation": "log1p", "tropical_maps": "head_shared", "tropical_bias": False,
            "tropical_skip": False, **opts}
    H = 8
    rng = np.random.default_rng(10)
    graphdef, params = tropical_layer(H, random_fill(rng), **opts)
    assert ("bias" in params["qkv"]) == opts["tropical_bias"] == ("bias" in params["out"])
    assert ("skip" in params) == opts["tropical_skip"] == ("inp" not in params)
    graph, off = complete_graph((4, 3))
    N, E, G = graph.num_nodes, graph.num_edges, graph.num_graphs
    x = rng.normal(size=(N, H)).astype(np.float32)
    h_prev = rng.normal(size=(N, H)).astype(np.float32)
    e = np.zeros((E, H), np.float32)
    g = np.zeros((G, H), np.float32)
    got = np.asarray(step_fn(graphdef)(params, x, e, g, graph, h_prev))
    assert got.shape == (N, H) and np.all(np.isfinite(got))
    z = np.concatenate([x, h_prev], axis=1)
    for s in range(2):
        rows = slice(off[s], off[s + 1])
        n = off[s + 1] - off[s]
        # e = 0: the tropical edge weight is the edge map's bias (the option), else 0 as in the paper
        eps_dense = np.broadcast_to(params["edge_weight"].get("bias", np.zeros(H)), (n, n, H))
        want = paper_block(z[rows], params, opts["heads"], opts["valuation"], opts["tropical_maps"],
                           opts["tropical_skip"], np.ones((n, n), bool), eps_dense)
        np.testing.assert_allclose(got[rows], want, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("maps", ["head_shared", "per_head", "full"])
def test_attention_over_in_neighbours_with_edge_and_graph_features(maps):
    """A random sparse padded batch (two samples, self-loops, an edgeless padding node), nonzero edge and graph
    features: the attention equals the paper's MHTA with the max restricted to in-neighbours (a dense mask built
    from the edge list), eps_ji = e_ji We inside the max, g Wg inside the valuation; the padding node gets 0."""
    H, heads = 8, 2
    rng = np.random.default_rng(12)
    graphdef, params = tropical_layer(H, random_fill(rng), heads=heads, tropical_maps=maps)
    graph, n_real = random_graph(rng, n_node=(4, 3), p=0.5)
    N, E, G = graph.num_nodes, graph.num_edges, graph.num_graphs
    X = rng.normal(size=(N, H)).astype(np.float32)
    e = rng.normal(size=(E, H)).astype(np.float32)
    g = rng.normal(size=(G, H)).astype(np.float32)
    got = np.asarray(attend_fn(graphdef)(params, X, e, g, graph))
    assert got.shape == (N, H)
    mask = np.zeros((N, N), bool)
    eps_dense = np.zeros((N, N, H))
    for s, r, fe in zip(np.asarray(graph.senders), np.asarray(graph.receivers), e):
        mask[r, s] = True
        eps_dense[r, s] = fe @ params["edge_weight"]["kernel"]
    assert not np.all(mask[:n_real, :n_real])  # sparse: the mask matters
    node_graph = np.asarray(graph.node_graph)
    g_term = (g @ params["qkv_graph"]["kernel"])[node_graph]
    p_no_out = {**params, "out": {"kernel": np.eye(H)}}  # compare before the output projection, as attend returns
    want = paper_mhta(X, p_no_out, heads, "log1p", maps, mask, eps_dense, g_term)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-4)
    np.testing.assert_array_equal(got[n_real:], 0.0)  # padding: no in-edge, C = 0, expm1(0) = 0


def test_map_layouts_relate_as_documented():
    """Shapes: head_shared [d_k, d_k], per_head [heads, d_k, d_k], full [d, d]. per_head with every head's map equal
    to the shared one, and full with the shared map on its diagonal blocks and the tropical zero (-1e4) elsewhere,
    both reproduce head_shared; with their own random maps the three layouts differ."""
    H, heads = 8, 2
    d_k = H // heads
    rng = np.random.default_rng(13)
    layers = {m: tropical_layer(H, random_fill(np.random.default_rng(1)), heads=heads, tropical_maps=m)
              for m in ("head_shared", "per_head", "full")}
    assert layers["head_shared"][1]["w_q"].shape == (d_k, d_k)
    assert layers["per_head"][1]["w_q"].shape == (heads, d_k, d_k)
    assert layers["full"][1]["w_q"].shape == (H, H)
    graph, _ = random_graph(rng, n_node=(4, 3), p=0.5)
    X = rng.normal(size=(graph.num_nodes, H)).astype(np.float32)
    e = rng.normal(size=(graph.num_edges, H)).astype(np.float32)
    g = rng.normal(size=(graph.num_graphs, H)).astype(np.float32)
    gd_s, p_s = layers["head_shared"]
    base = np.asarray(attend_fn(gd_s)(p_s, X, e, g, graph))
    outs = {}
    for maps in ("per_head", "full"):
        gd, p = layers[maps]
        p = {**p, **{k: v for k, v in p_s.items() if k not in ("w_q", "w_k", "w_v")}}
        outs[maps] = np.asarray(attend_fn(gd)(p, X, e, g, graph))
        tied = dict(p)
        for name in ("w_q", "w_k", "w_v"):
            w = p_s[name]
            if maps == "per_head":
                tied[name] = np.stack([w] * heads)
            else:
                full = np.full((H, H), -1e4, np.float32)
                for h in range(heads):
                    full[h * d_k:(h + 1) * d_k, h * d_k:(h + 1) * d_k] = w
                tied[name] = full
        np.testing.assert_allclose(np.asarray(attend_fn(gd)(tied, X, e, g, graph)), base, rtol=1e-5, atol=1e-5)
        assert np.max(np.abs(outs[maps] - base)) > 1e-2
    assert np.max(np.abs(outs["per_head"] - outs["full"])) > 1e-2


def test_bias_and_skip_options_change_the_step():
    """tropical_bias = true with the attention's biases (L_Q/K/V, We, O) at 0 is the default step; nonzero biases
    change it. tropical_skip = true with R = P and the Q/K/V kernel P L (so the attention reads z P = X) is the
    default step; with untied kernels (the attention reading z itself) it differs."""
    H, heads = 8, 2
    rng = np.random.default_rng(14)
    graph, _ = random_graph(rng, n_node=(4, 3), p=0.5)
    N, E, G = graph.num_nodes, graph.num_edges, graph.num_graphs
    x, h_prev = (rng.normal(size=(N, H)).astype(np.float32) for _ in range(2))
    e = rng.normal(size=(E, H)).astype(np.float32)
    g = rng.normal(size=(G, H)).astype(np.float32)
    gd0, p0 = tropical_layer(H, random_fill(np.random.default_rng(2)), heads=heads)
    base = np.asarray(step_fn(gd0)(p0, x, e, g, graph, h_prev))

    gdb, pb = tropical_layer(H, random_fill(np.random.default_rng(3)), heads=heads, tropical_bias=True)
    with_bias = {k: ({**v, **{kk: vv for kk, vv in p0[k].items()}} if isinstance(v, dict) else p0[k])
                 for k, v in pb.items()}
    zeroed = {k: ({kk: (np.zeros_like(vv) if kk == "bias" and k in ("qkv", "edge_weight", "out") else vv)
                   for kk, vv in v.items()} if isinstance(v, dict) else v) for k, v in with_bias.items()}
    np.testing.assert_allclose(np.asarray(step_fn(gdb)(zeroed, x, e, g, graph, h_prev)), base, rtol=1e-5, atol=1e-5)
    assert np.max(np.abs(np.asarray(step_fn(gdb)(with_bias, x, e, g, graph, h_prev)) - base)) > 1e-2

    gds, ps = tropical_layer(H, random_fill(np.random.default_rng(4)), heads=heads, tropical_skip=True)
    P = p0["inp"]["kernel"]
    tied = {**{k: v for k, v in p0.items() if k != "inp"}, "skip": {"kernel": P},
            "qkv": {"kernel": P @ p0["qkv"]["kernel"]}}
    np.testing.assert_allclose(np.asarray(step_fn(gds)(tied, x, e, g, graph, h_prev)), base, rtol=1e-4, atol=1e-4)
    untied = {**tied, "qkv": ps["qkv"]}
    assert np.max(np.abs(np.asarray(step_fn(gds)(untied, x, e, g, graph, h_prev)) - base)) > 1e-2


# ---------------------------------------------------------------------------------------------------------------
# 7. One exact Bellman-Ford relaxation by a hand-set layer


def np_bellman_ford_step(d, edges):
    """d_new_i = min(d_i, min over edges (j, i, w) of d_j + w)."""
    new = np.array(d, np.float64)
    for j, i, w in edges:
        new[i] = min(new[i], d[j] + w)
    return new


@pytest.mark.parametrize("heads,maps", [(1, "head_shared"), (2, "head_shared"), (2, "per_head"), (2, "full")])
def test_hand_set_layer_performs_one_bellman_ford_relaxation(heads, maps):
    """valuation 'log', token feature 0 = exp(-d_j) so v gives -d_j; L_V copies it into u_V column 0 (head 0);
    L_Q = L_K = 0 and Wg = 0, so every q_i (every k_j) is the same vector and every Hilbert score is 0; lambda = 0;
    W_V the tropical identity; the edge map sends w_ji to -w_ji. Then attend(...)[:, 0] = exp(-d_new), d_new one
    Bellman-Ford relaxation (the self-loop, weight 0, keeps d_i). No bias anywhere (the default layout)."""
    H = 8
    d_k = H // heads
    edges = [(0, 1, 1.5), (0, 2, 4.0), (1, 2, 0.5), (2, 3, 1.0), (1, 3, 5.0), (4, 3, 0.25), (3, 4, 2.0),
             (5, 0, 1.0), (2, 5, 0.75), (1, 4, 3.0)]
    d = np.array([0.0, 2.0, 10.0, 10.0, 1.0, 10.0])  # 10 plays 'infinity' (exp(-10) is far above LOG_FLOOR)
    want = np_bellman_ford_step(d, edges)
    assert np.any(want != d) and np.any(want == d)  # some distances relax, others keep their value
    np.testing.assert_allclose(want, [0.0, 1.5, 2.5, 1.25, 1.0, 10.0])
    N = len(d)
    pairs = sorted([(j, i, w) for j, i, w in edges] + [(i, i, 0.0) for i in range(N)], key=lambda t: (t[1], t[0]))
    senders = jnp.asarray([j for j, _, _ in pairs], jnp.int32)
    receivers = jnp.asarray([i for _, i, _ in pairs], jnp.int32)
    graph = Graph(senders, receivers, jnp.zeros(N, jnp.int32), jnp.zeros(len(pairs), jnp.int32),
                  jnp.asarray([N], jnp.int32))
    rng = np.random.default_rng(9)
    identity = np.where(np.eye(d_k, dtype=bool), 0.0, -1e4)
    w_qk = rng.normal(size={"head_shared": (d_k, d_k), "per_head": (heads, d_k, d_k), "full": (H, H)}[maps])

    def fill(path, shape):
        name = path[-1]
        if path[0] == "qkv":
            k = np.zeros(shape)
            k[0, 2 * H] = 1.0  # u_V column 0 <- X[:, 0]
            return k
        if name == "shift" or path[0] == "qkv_graph":
            return np.zeros(shape)
        if name == "w_v":
            if maps == "per_head":
                return np.stack([identity] * heads)
            return np.where(np.eye(H, dtype=bool), 0.0, -1e4) if maps == "full" else identity
        if name in ("w_q", "w_k"):
            return w_qk  # any map, the same for both: q = k for every node
        if path[0] == "edge_weight":
            k = np.zeros(shape)
            k[0, :] = -1.0  # eps_ji = -w_ji in every tropical column
            return k
        return rng.normal(size=shape)  # unused by attend

    graphdef, params = tropical_layer(H, fill, heads=heads, valuation="log", tropical_maps=maps)
    X = rng.uniform(0.5, 2.0, size=(N, H)).astype(np.float32)
    X[:, 0] = np.exp(-d)
    e = rng.normal(size=(len(pairs), H)).astype(np.float32)
    e[:, 0] = [w for _, _, w in pairs]
    g = rng.normal(size=(1, H)).astype(np.float32)
    out = np.asarray(attend_fn(graphdef)(params, X, e, g, graph))
    assert out.shape == (N, H)
    np.testing.assert_allclose(-np.log(out[:, 0].astype(np.float64)), want, rtol=1e-5, atol=1e-5)

    # Two relaxations (feeding exp(-d_new) back) reach the second Bellman-Ford iterate.
    X2 = X.copy()
    X2[:, 0] = out[:, 0]
    out2 = np.asarray(attend_fn(graphdef)(params, X2, e, g, graph))
    np.testing.assert_allclose(-np.log(out2[:, 0].astype(np.float64)), np_bellman_ford_step(want, edges),
                               rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# 8. Valuations and option validation


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


@pytest.mark.parametrize("kwargs,match", [(dict(gated=True), "gate"), (dict(hidden=10, heads=4), "heads"),
                                          (dict(heads=0), "heads"), (dict(valuation="softplus"), "valuation"),
                                          (dict(tropical_maps="shared"), "tropical_maps")])
def test_tropical_constructor_rejects_bad_options(kwargs, match):
    kwargs = {"hidden": 8, **kwargs}
    with pytest.raises(ValueError, match=match):
        nnx.eval_shape(lambda: Tropical(rngs=nnx.Rngs(0), **kwargs))


def test_model_config_validates_tropical_options():
    with pytest.raises(ValueError, match="heads"):
        ModelConfig(processor="tropical", heads=3, hidden=16)
    with pytest.raises(ValueError, match="valuation"):
        ModelConfig(processor="tropical", valuation="softplus")
    with pytest.raises(ValueError, match=r"tropical_maps must be one of \('head_shared', 'per_head', 'full'\)"):
        ModelConfig(processor="tropical", tropical_maps="d_x_d")
    with pytest.raises(ValueError, match="tropical_bias and tropical_skip must be true or false"):
        ModelConfig(processor="tropical", tropical_skip="yes")
    with pytest.raises(ValueError, match="model.tropical_bias must be true or false"):
        from_dict({"model": {"processor": "tropical", "tropical_bias": 1}})
    cfg = ModelConfig(processor="tropical", heads=4, hidden=16, valuation="log")  # valid
    # the defaults: the released code's layout
    assert (cfg.tropical_maps, cfg.tropical_bias, cfg.tropical_skip) == ("head_shared", False, False)
    old = from_dict({"model": {"processor": "tropical", "tropical_maps": "full", "tropical_bias": True,
                               "tropical_skip": True}}).model
    assert (old.tropical_maps, old.tropical_bias, old.tropical_skip) == ("full", True, True)


def test_registry_and_default_message_graph():
    assert "tropical" in PROCESSORS
    entry = get_processor("tropical")
    assert entry.build is Tropical and entry.default_message_graph == "input"
    assert set(entry.options) == {"heads", "valuation", "tropical_maps", "tropical_bias", "tropical_skip"}
    assert not entry.triplets
    assert ModelConfig(processor="tropical").graph_kind == "input"
    assert ModelConfig(processor="tropical", message_graph="complete").graph_kind == "complete"


# ---------------------------------------------------------------------------------------------------------------
# 9. End to end


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
