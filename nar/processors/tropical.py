"""Tropical (max-plus) attention as a graph processor (Hashemi, Pasque, Teska, Yoshida, NeurIPS 2025, "Tropical
Attention: Neural Algorithmic Reasoning for Combinatorial Algorithms"), by default as the authors' released code
(github.com/Baran-phys/Tropical-Attention, `models.py` `TropicalAttention` + `TransformerBlock`, the code the
paper's numbers were run with; `TropicalAttention.py` v2.0.0 has the same per-head maps).

One step. z_i = [x_i || h_prev_i] (CLRS's processor input, width 2H) is first brought to the block's width by a
bias-free Linear, X_i = P z_i (nar's adaptation: the paper's block maps d -> d); then the paper's post-LN
Transformer block with Multi-Head Tropical Attention (MHTA), heads h = 1..H_a of width d_k = d / H_a:

    u_i = val(L_Q X_i + Wg g) - lambda   (same for K, V)   valuation into the tropical semiring; L_Q, L_K, L_V
                                                         Euclidean, bias-free; lambda in R^d learnable (init 1)
    q_i^h = u_i^h (x) W_Q^h,  (u (x) W)_a = max_t u_t + W_ta      per-head max-plus projection of the head's own
                                                                  d_k slice u_i^h (`tropical_maps`, below)
    S_ij^h = -d_H(q_i^h, k_j^h),  d_H(x, y) = max_r (x_r - y_r) - min_r (x_r - y_r)   (tropical Hilbert distance)
    C_i^h = max_{j -> i} (S_ij^h + v_j^h + eps_ji^h),  eps = We e                     (max-plus aggregation)
    MHTA(X)_i = O [dev(C_i^1) || ... || dev(C_i^H_a)]    devaluation back to Euclidean, bias-free output projection
    h_i = LN(X_i + MHTA(X)_i);  h_i = LN(h_i + FFN(h_i))  identity residual, post-LN, FFN = Linear-ReLU-Linear (4x)

On graphs, node i attends to its in-neighbours j (edges j -> i of the processing graph, self-loop included; the
default message graph is the input graph); on the complete graph with self-loops and e = 0, g = 0 this is the
paper's attention over all tokens. Edge features enter the aggregation as tropical edge weights eps (a linear map,
no valuation), so with S = 0 one head computes max_j (v_j + eps_ji): the max-plus Bellman recursion, i.e. one
Bellman-Ford relaxation with v = -d and eps = -w. Graph features enter the Euclidean Q/K/V maps (Wg g), as in
CLRS's processors. Edge and graph features are nar's adaptation: the paper's model has neither.

Options (ModelConfig fields; each off by default; docs/processors.md gives the reasons):
- `tropical_maps`: the layout of the tropical projections W_Q^h, W_K^h, W_V^h. "head_shared" (default, the
  released code, both `models.py` and v2.0.0): u is split into heads first and one d_k x d_k max-plus map (per Q, K,
  V) is applied to every head's slice. "per_head": each head its own d_k x d_k map on its own slice. "full": one
  d x d map on the whole u before the head split, so head h's map reads every coordinate of u (W^h in R^{d_k x d},
  as the paper's text writes it, and nar's layout before this option existed).
- `tropical_bias`: biases on the Euclidean maps around the attention (L_Q/K/V, We, O and the skip R). The released
  code's attention has none (its FFN has biases, and so has nar's).
- `tropical_skip`: an untied learned residual h_i = LN(R z_i + MHTA(z)_i), the attention reading z itself, instead
  of the identity residual on X = P z.
nar's layout before these options: tropical_maps = "full", tropical_bias = true, tropical_skip = true.

Valuation variants: `log1p` (default; the released code: val = log1p(ReLU(.)), dev = expm1) and `log` (the paper:
val = log(ReLU(.)), dev = exp; ReLU's zeros are floored at `LOG_FLOOR` so that no -inf can turn a Hilbert distance
into inf - inf = NaN). Numerical guard on both: tropical values are clipped at `MAX_EXPONENT` before devaluation.

Every max here passes its gradient to one arg-max (the first), so ties cannot give NaN and gradients stay sparse.
The max-plus projection never materialises its [N, K, M] sums (`maxplus_matmul`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from nar.model.segment import segment_max_pick
from nar.processors.base import Graph, Processor, edge_linear

VALUATIONS = ("log1p", "log")
# Layouts of the tropical projections (module docstring): the released code's first (the default).
MAPS = ("head_shared", "per_head", "full")
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

    factored_edges = True  # the edge weights fold into the encoders' kernels (`EdgeFeatures.linear`)

    def __init__(self, hidden: int, *, rngs: nnx.Rngs, heads: int = 4, valuation: str = "log1p",
                 layer_norm: bool = True, gated: bool = False, tropical_maps: str = "head_shared",
                 tropical_bias: bool = False, tropical_skip: bool = False):
        if gated:
            raise ValueError("the tropical processor has no update gate; set gated = false")
        if valuation not in VALUATIONS:
            raise ValueError(f"valuation must be one of {VALUATIONS}, got {valuation!r}")
        if tropical_maps not in MAPS:
            raise ValueError(f"tropical_maps must be one of {MAPS}, got {tropical_maps!r}")
        if heads < 1 or hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be a positive multiple of heads ({heads})")
        H = d = hidden
        d_k = d // heads
        self.heads, self.variant, self.maps, self.skip_connection = heads, valuation, tropical_maps, tropical_skip
        # X = P z (identity residual on X), or the old untied skip R z with the attention reading z itself.
        self.inp = None if tropical_skip else nnx.Linear(2 * H, d, use_bias=False, rngs=rngs)
        self.skip = nnx.Linear(2 * H, H, use_bias=tropical_bias, rngs=rngs) if tropical_skip else None
        self.qkv = nnx.Linear(2 * H if tropical_skip else d, 3 * d, use_bias=tropical_bias, rngs=rngs)
        self.qkv_graph = nnx.Linear(H, 3 * d, use_bias=False, rngs=rngs)
        self.edge_weight = nnx.Linear(H, d, use_bias=tropical_bias, rngs=rngs)
        self.shift = nnx.Param(jnp.ones(d))  # lambda, initialised to 1 as in the released code
        shape = {"head_shared": (d_k, d_k), "per_head": (heads, d_k, d_k), "full": (d, d)}[tropical_maps]
        normal = jax.nn.initializers.normal(1.0)  # N(0, 1), as the released code's torch.randn
        self.w_q = nnx.Param(normal(rngs.params(), shape))
        self.w_k = nnx.Param(normal(rngs.params(), shape))
        self.w_v = nnx.Param(normal(rngs.params(), shape))
        self.out = nnx.Linear(d, H, use_bias=tropical_bias, rngs=rngs)
        self.ffn1 = nnx.Linear(H, 4 * H, rngs=rngs)
        self.ffn2 = nnx.Linear(4 * H, H, rngs=rngs)
        self.norm1 = nnx.LayerNorm(H, rngs=rngs) if layer_norm else None
        self.norm2 = nnx.LayerNorm(H, rngs=rngs) if layer_norm else None

    def project(self, u_NxD, w):
        """The tropical projection of u (after the shift) -> [N, heads, d_k], laid out as `self.maps` says."""
        N = u_NxD.shape[0]
        if self.maps == "full":
            return maxplus_matmul(u_NxD, w).reshape(N, self.heads, -1)
        u_NxHxK = u_NxD.reshape(N, self.heads, -1)
        if self.maps == "head_shared":
            return maxplus_matmul(u_NxHxK.reshape(N * self.heads, -1), w).reshape(N, self.heads, -1)
        return jax.vmap(maxplus_matmul, in_axes=(1, 0), out_axes=1)(u_NxHxK, w)  # per_head: w [heads, d_k, d_k]

    def attend(self, x_NxI, edge_fts, graph_fts_GxH, graph: Graph):
        """The tropical attention, devalued, before the output projection: [N, d]. `x` is what the Euclidean Q/K/V
        maps read: X = P z by default, z itself with `tropical_skip`."""
        N = x_NxI.shape[0]
        pre = self.qkv(x_NxI) + self.qkv_graph(graph_fts_GxH)[graph.node_graph]
        lam = self.shift[...]
        u_q, u_k, u_v = (u - lam for u in jnp.split(valuation(pre, self.variant), 3, axis=-1))
        q, k, v = self.project(u_q, self.w_q[...]), self.project(u_k, self.w_k[...]), self.project(u_v, self.w_v[...])
        eps = edge_linear(self.edge_weight, edge_fts).reshape(graph.num_edges, self.heads, -1)
        return devaluation(tropical_attention(q, k, v, eps, graph), self.variant).reshape(N, -1)

    def __call__(self, node_fts, edge_fts, graph_fts, graph: Graph, hidden):
        z_NxH2 = jnp.concatenate([node_fts, hidden], axis=-1)
        if self.skip_connection:
            h_NxH = self.skip(z_NxH2) + self.out(self.attend(z_NxH2, edge_fts, graph_fts, graph))
        else:
            x_NxH = self.inp(z_NxH2)
            h_NxH = x_NxH + self.out(self.attend(x_NxH, edge_fts, graph_fts, graph))
        if self.norm1 is not None:
            h_NxH = self.norm1(h_NxH)
        h_NxH = h_NxH + self.ffn2(jax.nn.relu(self.ffn1(h_NxH)))
        if self.norm2 is not None:
            h_NxH = self.norm2(h_NxH)
        return h_NxH, None
