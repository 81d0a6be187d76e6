"""MPNN, PGN and the Triplet-GMPNN family (Veličković et al. 2022; Ibarz et al. 2022), on sparse edges.

One step, for receiver i and sender j over the edges of the processing graph, z = [x || h_prev]:

    m_i = max_j MLP(ReLU(W1 z_i + W2 z_j + We e_ji + Wg g))        (MLP: Linear, ReLU, Linear)
    h_i = LayerNorm(ReLU(O1 z_i + O2 m_i))
    optional gate (GMPNN): g_i = sigmoid(W3 ReLU(W1' z_i + W2' m_i)), bias of W3 at -3 (closed);
                           h_i <- g_i * h_i + (1 - g_i) * h_prev_i
    optional triplets: for each processing edge j -> k, over every i with edges i -> j and i -> k,
        t_ijk = T1 z_i + T2 z_j + T3 z_k + E1 e_ij + E2 e_ik + E3 e_jk + Tg g      (8 features)
        eps_jk = ReLU(O3 max_i t_ijk)                                             (edge latent [E, H])
    As in CLRS, the edge latents go to the decoders only (concatenated to the edge features), not into messages.

MPNN and PGN are the same equations over different senders j. MPNN: every node of the sample (the complete
message graph). PGN (CLRS's `PGN`): the complete message graph with the messages masked to CLRS's adjacency, the
self-loops plus the input graph and the pointers (`graph.edge_mask`, set by the model): a masked message is -inf
before the max, so it never wins, and the self-loop is always in, so no node's max is empty. `pgn_mask` is the
same equations on the sparse input message graph, which holds only those edges. Triplets are computed over the
triplets the batch carries (`nar.data.batch.triplet_edges`): n^3 per graph on the complete graph, the triangles
on a sparse one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from nar.model.segment import segment_max
from nar.processors.base import Graph, Processor, edge_linear


class MPNN(Processor):
    """CLRS's MPNN/PGN step (max aggregation over the message graph, masked by `graph.edge_mask` when set),
    optionally gated and with triplets. Edge features come factored (`EdgeFeatures`): We e_ji and the triplets'
    edge terms are folded into the encoders' kernels."""

    factored_edges = True
    def __init__(self, hidden: int, *, rngs: nnx.Rngs, layer_norm: bool = True, gated: bool = False,
                 triplets: bool = False, triplet_features: int = 8, edge_size: int | None = None):
        H = hidden
        self.m_recv = nnx.Linear(2 * H, H, rngs=rngs)
        self.m_send = nnx.Linear(2 * H, H, rngs=rngs)
        self.m_edge = nnx.Linear(edge_size or H, H, rngs=rngs)
        self.m_graph = nnx.Linear(H, H, rngs=rngs)
        self.mlp1 = nnx.Linear(H, H, rngs=rngs)
        self.mlp2 = nnx.Linear(H, H, rngs=rngs)
        self.o_self = nnx.Linear(2 * H, H, rngs=rngs)
        self.o_msg = nnx.Linear(H, H, rngs=rngs)
        self.norm = nnx.LayerNorm(H, rngs=rngs) if layer_norm else None
        if gated:
            self.gate_self = nnx.Linear(2 * H, H, rngs=rngs)
            self.gate_msg = nnx.Linear(H, H, rngs=rngs)
            self.gate_out = nnx.Linear(H, H, rngs=rngs, bias_init=nnx.initializers.constant(-3.0))
        if triplets:
            F = triplet_features
            self.t_node = nnx.Linear(2 * H, 3 * F, rngs=rngs)  # T1 | T2 | T3
            self.t_edge = nnx.Linear(edge_size or H, 3 * F, rngs=rngs)  # E1 | E2 | E3
            self.t_graph = nnx.Linear(H, F, rngs=rngs)
            self.t_out = nnx.Linear(F, H, rngs=rngs)
            self.edge_latent_size = H
        self.gated = gated
        self.triplets = triplets

    def messages(self, z_NxH2, edge_fts, graph_fts_GxH, graph: Graph):
        """Aggregated messages m [N, H] (max over each node's incoming edges, those of `graph.edge_mask` only when
        it is set)."""
        # The graph term rides on the receiver's (an edge's graph is its receiver's): one gather of [N, H] rows
        # per edge instead of two.
        recv_NxH = self.m_recv(z_NxH2) + self.m_graph(graph_fts_GxH)[graph.node_graph]
        msg_ExH = (recv_NxH[graph.receivers] + self.m_send(z_NxH2)[graph.senders]
                   + edge_linear(self.m_edge, edge_fts))
        msg_ExH = self.mlp2(jax.nn.relu(self.mlp1(jax.nn.relu(msg_ExH))))
        if graph.edge_mask is not None:
            msg_ExH = jnp.where(graph.edge_mask[:, None], msg_ExH, -jnp.inf)
        return segment_max(msg_ExH, graph.receivers, graph.num_nodes, sorted_=True)

    def triplet_latents(self, z_NxH2, edge_fts, graph_fts_GxH, graph: Graph):
        """Edge latents eps [E, H] from the max over each edge's triplets (module docstring)."""
        F = self.t_graph.out_features
        tn_Nx3F, te_Ex3F = self.t_node(z_NxH2), edge_linear(self.t_edge, edge_fts)
        tg_GxF = self.t_graph(graph_fts_GxH)
        if graph.dense_nodes is not None:
            t_ExF = _dense_triplet_max(tn_Nx3F, te_Ex3F, tg_GxF, graph, F)
        elif graph.triplets is not None:
            valid_P = graph.triplets[:, 2] >= 0
            tri = jnp.where(valid_P[:, None], graph.triplets, graph.num_edges - 1)  # padding: sorted last
            ij, ik, jk = tri[:, 0], tri[:, 1], tri[:, 2]
            senders, receivers = jnp.asarray(graph.senders), jnp.asarray(graph.receivers)
            i, j, k = senders[ij], senders[jk], receivers[jk]
            t_PxF = (tn_Nx3F[i, :F] + tn_Nx3F[j, F:2 * F] + tn_Nx3F[k, 2 * F:] + te_Ex3F[ij, :F]
                     + te_Ex3F[ik, F:2 * F] + te_Ex3F[jk, 2 * F:] + tg_GxF[jnp.asarray(graph.edge_graph)[jk]])
            t_PxF = jnp.where(valid_P[:, None], t_PxF, -jnp.inf)
            t_ExF = segment_max(t_PxF, jk, graph.num_edges, sorted_=True)
        else:
            raise ValueError("this processor uses triplet features, but the batch has none: build it with "
                             "make_batch(..., triplets=True)")
        return jax.nn.relu(self.t_out(t_ExF))

    def __call__(self, node_fts, edge_fts, graph_fts, graph: Graph, hidden):
        z_NxH2 = jnp.concatenate([node_fts, hidden], axis=-1)
        m_NxH = self.messages(z_NxH2, edge_fts, graph_fts, graph)
        h_NxH = jax.nn.relu(self.o_self(z_NxH2) + self.o_msg(m_NxH))
        if self.norm is not None:
            h_NxH = self.norm(h_NxH)
        if self.gated:
            gate = jax.nn.sigmoid(self.gate_out(jax.nn.relu(self.gate_self(z_NxH2) + self.gate_msg(m_NxH))))
            h_NxH = gate * h_NxH + (1.0 - gate) * hidden
        latent = self.triplet_latents(z_NxH2, edge_fts, graph_fts, graph) if self.triplets else None
        return h_NxH, latent


def _dense_triplet_max(tn_Nx3F, te_Ex3F, tg_GxF, graph: Graph, F: int):
    """max_i t_ijk for every edge j -> k of complete message graphs, computed on each sample's dense [M, M, M] cube
    of (i, j, k) (M = `graph.dense_nodes`' width): broadcast sums and one reduction, no per-triplet index lists.
    Sample g's edges are laid out receiver-major (edge r * n_g + s is s -> r, after the earlier samples' n^2)."""
    nodes_SxM = graph.dense_nodes
    S, M = nodes_SxM.shape
    real_SxM = nodes_SxM >= 0
    n_S = jnp.asarray(graph.n_node)[:S]
    first_S = jnp.cumsum(n_S * n_S) - n_S * n_S  # each sample's first edge
    pos = jnp.arange(M)
    edge_SxMxM = first_S[:, None, None] + pos[None, :, None] * n_S[:, None, None] + pos[None, None, :]
    edge_SxMxM = jnp.where(real_SxM[:, :, None] & real_SxM[:, None, :], edge_SxMxM, 0)  # [slot, receiver, sender]
    tn_SxMx3F = tn_Nx3F[jnp.where(real_SxM, nodes_SxM, 0)]
    te_SxMxMx3F = jnp.swapaxes(te_Ex3F[edge_SxMxM], 1, 2)  # [slot, sender, receiver]: e_xy at [x, y]
    t_SxMxMxMxF = (tn_SxMx3F[:, :, None, None, :F] + tn_SxMx3F[:, None, :, None, F:2 * F]  # T1 z_i + T2 z_j
                   + tn_SxMx3F[:, None, None, :, 2 * F:]  # + T3 z_k
                   + te_SxMxMx3F[:, :, :, None, :F] + te_SxMxMx3F[:, :, None, :, F:2 * F]  # + E1 e_ij + E2 e_ik
                   + te_SxMxMx3F[:, None, :, :, 2 * F:] + tg_GxF[:S, None, None, None, :])  # + E3 e_jk + Tg g
    t_SxMxMxMxF = jnp.where(real_SxM[:, :, None, None, None], t_SxMxMxMxF, -jnp.inf)  # i beyond the sample
    max_SxMxMxF = t_SxMxMxMxF.max(axis=1)  # [slot, j, k]
    max_SxMxMxF = jnp.where(jnp.isfinite(max_SxMxMxF), max_SxMxMxF, 0.0)  # empty slots
    slot_E = jnp.asarray(graph.edge_graph)
    real_E = slot_E < S  # padding edges belong to the padding graph, the last slot
    slot_E = jnp.where(real_E, slot_E, 0)
    first_node_E = nodes_SxM[slot_E, 0]
    j_E, k_E = graph.senders - first_node_E, graph.receivers - first_node_E
    out_ExF = max_SxMxMxF[slot_E, jnp.clip(j_E, 0, M - 1), jnp.clip(k_E, 0, M - 1)]
    return jnp.where(real_E[:, None], out_ExF, 0.0)
