"""A discrete processor step (after Rodionov & Prokhorenkova, "Discrete Neural Algorithmic Reasoning"): the step reads
only discrete states, attends to exactly one in-edge per node, and its scalars enter only the attention logits.

Per receiver v over its in-edges u -> v (self-loop included), with node state x (one-hot class + source flag, embedded)
and edge state e (one-hot: is v's pointer, is an input edge, is the self-loop, embedded):

    a_uv  = (<Q x_v, K x_u + R e_uv> + H w sigma_uv) / sqrt(H)            (w: one learned scalar, starts at -1)
    alpha = one-hot arg-max_u a_uv        (training: straight-through Gumbel-softmax, hard forward, soft backward)
    m_v   = sum_u alpha_uv M[x_u || e_uv]                                  (the attended sender's message)
    state'_v   = MLP_n([x_v || m_v])                                       (class logits)
    pointer'_uv = MLP_e([e_uv || x_v || m_v || alpha_uv || alpha_vv])      (logit of "u is v's pointer")

The scalar term is scaled by H / sqrt(H) = sqrt(H) as in DNAR's formula (shared notes, methods.md section 3), so
that it weighs as much as the Gumbel noise of training from the first step.

`dnar_attention = "gated"` (a departure from the paper, named in `ATTENTIONS`; "additive", the paper's, is the
default): the discrete part g_uv = <Q x_v, K x_u + R e_uv> / sqrt(H) only decides which in-edges are candidates
(g_uv > 0), and the scalar alone picks among them: alpha = one-hot arg-max_{u: g_uv > 0} w sigma_uv (none valid:
alpha = 0, so m_v = 0). In the paper's additive logit, candidates whose discrete states differ (Bellman-Ford's
self-loop, current parent, other neighbours) carry learned offsets that are never exactly equal, so a true
improvement of the scalar smaller than the offsets' gap is missed; a hard gate has no such gap. Training: the same
hard forward pass, with the gradient (straight-through) of a softmax over v's in-edges and a "none" option, with
logits (log sigmoid(g_uv) + sqrt(H) w sigma_uv + Gumbel noise) / temperature and sum_u log sigmoid(-g_uv) /
temperature (every gate closed). The "none" option lets the loss open a receiver's gates when all are closed, which
a softmax over the edges alone cannot: it is blind to a shift common to a receiver's edges, and one seed's gates
closed and stayed closed for all of training without it.

sigma is the scalar flow (`nar.model.discrete` chooses it per algorithm: BFS the sender position, so w < 0 is
CLRS's lowest-index rule; Bellman-Ford the candidate distance). Everything else is a function of finitely many
discrete values, so the learned step is a finite table: what it does at n = 16 it does at any n. The arg-max takes
the first maximum, so exact ties go to the lowest sender (edges are sorted by sender).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from nar.model.segment import segment_onehot_argmax, segment_softmax
from nar.processors.base import Graph

#: algorithm -> (the node-class hint, the scalar hint or None) that `nar.model.discrete.DiscreteModel` steps
DISCRETE_ALGORITHMS = {"bfs": ("reach_h", None), "bellman_ford": ("msk", "d")}
ATTENTIONS = ("additive", "gated")  # additive: the paper's logit; gated: a hard gate, then the scalar (docstring)
NODE_FEATURES = 3  # class 0, class 1, source
EDGE_FEATURES = 3  # pointer, input edge, self-loop


def straight_through(hard, soft):
    """`hard` in the forward pass, the gradient of `soft` in the backward pass."""
    return hard + (soft - jax.lax.stop_gradient(soft))


def check_discrete_algorithm(algorithm: str) -> tuple[str, str | None]:
    """The (class hint, scalar hint) the discrete model steps for `algorithm`, or a ValueError naming the supported
    ones."""
    if algorithm not in DISCRETE_ALGORITHMS:
        why = ("a step of its trajectory takes more than the one hop of dnar's step: docs/processors.md, 'Why DFS is "
               "out of reach of this step'" if algorithm == "dfs" else "its discrete states are not defined")
        raise ValueError(f"the discrete processor (dnar) runs {', '.join(DISCRETE_ALGORITHMS)}; {algorithm!r} is not "
                         f"supported ({why})")
    return DISCRETE_ALGORITHMS[algorithm]


class DiscreteStep(nnx.Module):
    """One discrete step (module docstring); `temperature` is the Gumbel-softmax temperature in training,
    `dnar_attention` the attention ("additive" or "gated")."""

    def __init__(self, hidden: int, *, rngs: nnx.Rngs, classes: int = 2, temperature: float = 1.0,
                 dnar_attention: str = "additive"):
        if dnar_attention not in ATTENTIONS:
            raise ValueError(f"dnar_attention must be one of {ATTENTIONS}, got {dnar_attention!r}")
        H = hidden
        self.node_emb = nnx.Linear(NODE_FEATURES, H, use_bias=False, rngs=rngs)
        self.edge_emb = nnx.Linear(EDGE_FEATURES, H, use_bias=False, rngs=rngs)
        self.query = nnx.Linear(H, H, rngs=rngs)
        self.key = nnx.Linear(H, H, rngs=rngs)
        self.edge_key = nnx.Linear(H, H, rngs=rngs)
        self.scalar_weight = nnx.Param(jnp.asarray(-1.0))
        self.message = nnx.Linear(2 * H, H, rngs=rngs)
        self.node_hidden = nnx.Linear(2 * H, H, rngs=rngs)
        self.node_out = nnx.Linear(H, classes, rngs=rngs)
        self.edge_hidden = nnx.Linear(H, H, rngs=rngs)  # e_uv's part of MLP_e's first layer
        self.edge_node = nnx.Linear(2 * H, H, rngs=rngs)  # [x_v || m_v]'s part, computed per node
        self.edge_alpha = nnx.Linear(2, H, rngs=rngs)  # [alpha_uv, alpha_vv]'s part
        self.edge_out = nnx.Linear(H, 1, rngs=rngs)
        self.temperature = temperature
        self.hidden = H
        self.attention = dnar_attention

    def __call__(self, node_NxF, edge_ExF, sigma_E, graph: Graph, key=None):
        """(class logits [N, C], pointer logits [E], attention [E]: one-hot per receiver in the forward pass).
        `key`: Gumbel noise and the straight-through gradient (training); None: plain arg-max."""
        recv, send = graph.receivers, graph.senders
        x_NxH, e_ExH = self.node_emb(node_NxF), self.edge_emb(edge_ExF)
        gate_E = jnp.sum(self.query(x_NxH)[recv] * (self.key(x_NxH)[send] + self.edge_key(e_ExH)), -1)
        scalar_E = self.hidden * self.scalar_weight[...] * sigma_E
        if self.attention == "gated":
            alpha_E = self._gated(gate_E / jnp.sqrt(self.hidden), scalar_E / jnp.sqrt(self.hidden), graph, key)
        else:
            alpha_E = self._additive((gate_E + scalar_E) / jnp.sqrt(self.hidden), graph, key)
        msg_ExH = self.message(jnp.concatenate([x_NxH[send], e_ExH], -1))
        m_NxH = jax.ops.segment_sum(alpha_E[:, None] * msg_ExH, recv, graph.num_nodes, indices_are_sorted=True)
        xm_NxH2 = jnp.concatenate([x_NxH, m_NxH], -1)
        class_logits = self.node_out(jax.nn.relu(self.node_hidden(xm_NxH2)))
        self_alpha_N = jax.ops.segment_sum(jnp.where(send == recv, alpha_E, 0.0), recv, graph.num_nodes,
                                           indices_are_sorted=True)
        alphas_Ex2 = jnp.stack([alpha_E, self_alpha_N[recv]], -1)
        hidden_ExH = jax.nn.relu(self.edge_hidden(e_ExH) + self.edge_node(xm_NxH2)[recv] + self.edge_alpha(alphas_Ex2))
        return class_logits, self.edge_out(hidden_ExH)[:, 0], alpha_E

    def _additive(self, logit_E, graph: Graph, key):
        """The paper's hard attention: arg-max of the logit per receiver (training: Gumbel-max, straight-through)."""
        recv, N = graph.receivers, graph.num_nodes
        if key is None:
            return segment_onehot_argmax(logit_E, recv, N, True)
        noisy_E = logit_E + _gumbel(key, logit_E.shape)
        soft_E = segment_softmax(noisy_E / self.temperature, recv, N, True)
        return straight_through(segment_onehot_argmax(noisy_E, recv, N, True), soft_E)

    def _gated(self, gate_E, scalar_E, graph: Graph, key):
        """The gated attention (module docstring): the hard choice among g > 0 by the scalar alone."""
        recv, N = graph.receivers, graph.num_nodes
        valid_E = gate_E > 0
        any_N = jax.ops.segment_max(valid_E.astype(jnp.float32), recv, N, indices_are_sorted=True) > 0
        hard_E = segment_onehot_argmax(jnp.where(valid_E, scalar_E, -jnp.inf), recv, N, True) * any_N[recv]
        if key is None:
            return hard_E
        # A softmax over the receiver's in-edges and "none" (logit: log P(every gate closed)), so that the loss
        # can move a receiver's gates together, which a softmax over the edges alone is blind to.
        c_E = (jax.nn.log_sigmoid(gate_E) + scalar_E + _gumbel(key, gate_E.shape)) / self.temperature
        none_N = jax.ops.segment_sum(jax.nn.log_sigmoid(-gate_E), recv, N, indices_are_sorted=True) / self.temperature
        return straight_through(hard_E, segment_softmax(c_E, recv, N, True, extra=none_N))


def _gumbel(key, shape):
    """Standard Gumbel noise."""
    return -jnp.log(-jnp.log(jax.random.uniform(key, shape, minval=1e-9, maxval=1.0)))
