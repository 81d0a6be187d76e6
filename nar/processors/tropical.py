"""Tropical (max-plus) attention as a graph processor (Hashemi, Pasque, Teska, Yoshida, NeurIPS 2025).

One step, z_i = [x_i || h_prev_i] (Euclidean), heads h = 1..H_a of width d_k = d / H_a:

    u = phi(W z + Wg g) = val(W z + Wg g) - lambda            valuation into the tropical semiring, learnable shift
    q_i, k_i, v_i = u^Q_i (x) W_Q, u^K_i (x) W_K, u^V_i (x) W_V    max-plus projections: (u (x) W)_a = max_t u_t + W_ta
    S_ij^h = -d_H(q_i^h, k_j^h),  d_H(x, y) = max_r (x_r - y_r) - min_r (x_r - y_r)   (tropical Hilbert distance)
    C_i^h = max_{j -> i} (S_ij^h + v_j^h + eps_ji^h),  eps = We e                     (max-plus aggregation)
    a_i = O [dev(C_i^1) || ... || dev(C_i^H)]                devaluation back to Euclidean, output projection
    h_i = LN(R z_i + a_i);  h_i = LN(h_i + FFN(h_i))         Euclidean hidden state between steps (post-LN block)

On graphs, node i attends to its in-neighbours j (edges j -> i of the processing graph, self-loop included; the
default message graph is the input graph). Edge features enter the aggregation as tropical edge weights eps (a
linear map, no valuation), so with S = 0 one head computes max_j (v_j + eps_ji): the max-plus Bellman recursion,
i.e. one Bellman-Ford relaxation with v = -d and eps = -w.

Valuation variants: `log1p` (default; the authors' released code: val = log1p(ReLU(.)), dev = expm1) and `log`
(the paper: val = log(ReLU(.)), dev = exp; ReLU's zeros are floored at `LOG_FLOOR` so that no -inf can turn a
Hilbert distance into inf - inf = NaN). log1p is the default because it is finite and smooth everywhere by
construction, and it is what the published results were run with.

Every max here passes its gradient to one arg-max (the first), so ties cannot give NaN and gradients stay sparse.
The max-plus projection never materialises its [N, d, d] sums (`maxplus_matmul`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from nar.model.segment import segment_max_pick
from nar.processors.base import Graph, Processor

VALUATIONS = ("log1p", "log")
LOG_FLOOR = 1e-6
# Tropical values are clipped here before devaluation so that exp stays finite in float32.
MAX_EXPONENT = 30.0


def maxplus_matmul(x_NxK, w_KxM):
    """(x (x) w)[n, m] = max_k x[n, k] + w[k, m], its gradient sent to one arg-max (the first) per output.

    The arg-max is accumulated over k in a loop on [N, M] (a running best and its index), so no [N, K, M] tensor
    is ever built: memory is that of the output, whatever N (and on CPU this is 15x faster than XLA's arg-max
    reduction over a broadcast sum). The value is then gathered at the arg-max, which routes the gradient.
    """
    N, K = x_NxK.shape
    M = w_KxM.shape[1]
    xs, ws = jax.lax.stop_gradient(x_NxK), jax.lax.stop_gradient(w_KxM)

    def body(k, carry):
        best_NxM, arg_NxM = carry
        s_NxM = xs[:, k, None] + ws[k][None, :]
        better = s_NxM > best_NxM  # strict: ties keep the first k
        return jnp.where(better, s_NxM, best_NxM), jnp.where(better, k, arg_NxM)

    start = (xs[:, 0, None] + ws[0][None, :], jnp.zeros((N, M), jnp.int32))
    _, k_NxM = jax.lax.fori_loop(1, K, body, start, unroll=min(8, max(K - 1, 1)))
    return jnp.take_along_axis(x_NxK, k_NxM, axis=1) + w_KxM[k_NxM, jnp.arange(M)]


def max_pick(x, axis: int = -1):
    """max over `axis` with the gradient sent to the first arg-max only."""
    idx = jnp.expand_dims(jnp.argmax(jax.lax.stop_gradient(x), axis=axis), axis)
    return jnp.squeeze(jnp.take_along_axis(x, idx, axis=axis), axis)


def hilbert_distance(x, y):
    """Tropical Hilbert projective distance over the last axis: max_r (x - y)_r - min_r (x - y)_r. Invariant to
    adding a constant to x or y; 0 exactly when x - y is constant."""
    diff = x - y
    return max_pick(diff) + max_pick(-diff)


def valuation(x, variant: str):
    """Euclidean -> tropical (before the learnable shift)."""
    if variant == "log1p":
        return jnp.log1p(jax.nn.relu(x))
    if variant == "log":
        return jnp.log(jnp.maximum(x, LOG_FLOOR))
    raise ValueError(f"valuation must be one of {VALUATIONS}, got {variant!r}")


def devaluation(c, variant: str):
    """Tropical -> Euclidean: the inverse of `valuation` on its range."""
    c = jnp.minimum(c, MAX_EXPONENT)
    if variant == "log1p":
        return jnp.expm1(c)
    if variant == "log":
        return jnp.exp(c)
    raise ValueError(f"valuation must be one of {VALUATIONS}, got {variant!r}")


def tropical_attention(q_NxHxD, k_NxHxD, v_NxHxD, eps_ExHxD, graph: Graph):
    """Per head, C_i = max_{j -> i} (-d_H(q_i, k_j) + v_j + eps_ji) over the edges of `graph` -> [N, heads, d_k]
    (tropical values, before devaluation)."""
    scores_ExH = -hilbert_distance(q_NxHxD[graph.receivers], k_NxHxD[graph.senders])
    vals_ExHxD = scores_ExH[..., None] + v_NxHxD[graph.senders] + eps_ExHxD
    return segment_max_pick(vals_ExHxD, graph.receivers, graph.num_nodes, sorted_=True)


class Tropical(Processor):
    """Multi-head tropical attention over in-neighbours, in a post-LN Transformer block (module docstring)."""

    def __init__(self, hidden: int, *, rngs: nnx.Rngs, heads: int = 4, valuation: str = "log1p",
                 layer_norm: bool = True, gated: bool = False):
        if gated:
            raise ValueError("the tropical processor has no update gate; set gated = false")
        if valuation not in VALUATIONS:
            raise ValueError(f"valuation must be one of {VALUATIONS}, got {valuation!r}")
        if heads < 1 or hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be a positive multiple of heads ({heads})")
        H = d = hidden
        self.heads, self.variant = heads, valuation
        self.qkv = nnx.Linear(2 * H, 3 * d, rngs=rngs)
        self.qkv_graph = nnx.Linear(H, 3 * d, use_bias=False, rngs=rngs)
        self.edge_weight = nnx.Linear(H, d, rngs=rngs)
        self.shift = nnx.Param(jnp.ones(d))  # lambda, initialised to 1 as in the released code
        normal = jax.nn.initializers.normal(1.0)
        self.w_q = nnx.Param(normal(rngs.params(), (d, d)))
        self.w_k = nnx.Param(normal(rngs.params(), (d, d)))
        self.w_v = nnx.Param(normal(rngs.params(), (d, d)))
        self.out = nnx.Linear(d, H, rngs=rngs)
        self.skip = nnx.Linear(2 * H, H, rngs=rngs)
        self.ffn1 = nnx.Linear(H, 4 * H, rngs=rngs)
        self.ffn2 = nnx.Linear(4 * H, H, rngs=rngs)
        self.norm1 = nnx.LayerNorm(H, rngs=rngs) if layer_norm else None
        self.norm2 = nnx.LayerNorm(H, rngs=rngs) if layer_norm else None

    def attend(self, z_NxH2, edge_fts_ExH, graph_fts_GxH, graph: Graph):
        """The tropical attention sub-layer, devalued, before the output projection: [N, d]."""
        N = z_NxH2.shape[0]
        pre = self.qkv(z_NxH2) + self.qkv_graph(graph_fts_GxH)[graph.node_graph]
        u_q, u_k, u_v = jnp.split(valuation(pre, self.variant), 3, axis=-1)
        lam = self.shift[...]
        split = (N, self.heads, -1)
        q = maxplus_matmul(u_q - lam, self.w_q[...]).reshape(split)
        k = maxplus_matmul(u_k - lam, self.w_k[...]).reshape(split)
        v = maxplus_matmul(u_v - lam, self.w_v[...]).reshape(split)
        eps = self.edge_weight(edge_fts_ExH).reshape(edge_fts_ExH.shape[0], self.heads, -1)
        return devaluation(tropical_attention(q, k, v, eps, graph), self.variant).reshape(N, -1)

    def __call__(self, node_fts, edge_fts, graph_fts, graph: Graph, hidden):
        z_NxH2 = jnp.concatenate([node_fts, hidden], axis=-1)
        h_NxH = self.skip(z_NxH2) + self.out(self.attend(z_NxH2, edge_fts, graph_fts, graph))
        if self.norm1 is not None:
            h_NxH = self.norm1(h_NxH)
        h_NxH = h_NxH + self.ffn2(jax.nn.relu(self.ffn1(h_NxH)))
        if self.norm2 is not None:
            h_NxH = self.norm2(h_NxH)
        return h_NxH, None
