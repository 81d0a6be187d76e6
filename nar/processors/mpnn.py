"""MPNN and PGN (Veličković et al. 2022, the CLRS baselines), on sparse edges.

One step, for receiver i and sender j over the edges of the processing graph, z = [x || h_prev]:

    m_i = max_j MLP(ReLU(W1 z_i + W2 z_j + We e_ji + Wg g))        (MLP: Linear, ReLU, Linear)
    h_i = LayerNorm(ReLU(O1 z_i + O2 m_i))
    optional gate (GMPNN): g_i = sigmoid(W3 ReLU(W1' z_i + W2' m_i)), bias of W3 at -3 (closed);
                           h_i <- g_i * h_i + (1 - g_i) * h_prev_i

MPNN and PGN are the same equations: they differ only in the message graph (complete vs input graph), which is
the model's setting, so `pgn` is this class with the input graph as its default.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from nar.model.segment import segment_max
from nar.processors.base import Graph, Processor


class MPNN(Processor):
    def __init__(self, hidden: int, *, rngs: nnx.Rngs, layer_norm: bool = True, gated: bool = False,
                 edge_size: int | None = None):
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
        self.gated = gated

    def messages(self, z_NxH2, edge_fts_ExH, graph_fts_GxH, graph: Graph):
        """Aggregated messages m [N, H] (max over each node's incoming edges)."""
        msg_ExH = (self.m_recv(z_NxH2)[graph.receivers] + self.m_send(z_NxH2)[graph.senders]
                   + self.m_edge(edge_fts_ExH) + self.m_graph(graph_fts_GxH)[graph.edge_graph])
        msg_ExH = self.mlp2(jax.nn.relu(self.mlp1(jax.nn.relu(msg_ExH))))
        return segment_max(msg_ExH, graph.receivers, graph.num_nodes, sorted_=True)

    def __call__(self, node_fts, edge_fts, graph_fts, graph: Graph, hidden):
        z_NxH2 = jnp.concatenate([node_fts, hidden], axis=-1)
        m_NxH = self.messages(z_NxH2, edge_fts, graph_fts, graph)
        h_NxH = jax.nn.relu(self.o_self(z_NxH2) + self.o_msg(m_NxH))
        if self.norm is not None:
            h_NxH = self.norm(h_NxH)
        if self.gated:
            gate = jax.nn.sigmoid(self.gate_out(jax.nn.relu(self.gate_self(z_NxH2) + self.gate_msg(m_NxH))))
            h_NxH = gate * h_NxH + (1.0 - gate) * hidden
        return h_NxH, None
