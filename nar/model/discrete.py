"""The discrete model: CLRS trajectories stepped by `nar.processors.discrete.DiscreteStep` between discrete states.

The state between steps is the algorithm's own hints, and only them: the node class (BFS `reach_h`, Bellman-Ford
`msk`), the pointer `pi_h` as an edge state, and for Bellman-Ford the distance `d` as a scalar that never enters an
MLP. Each step is Markov: no hidden vector crosses steps. Hint 0 is the truth; later states are the model's own hard
predictions (training: straight-through, so the forward pass is the evaluation's; with `teacher_forcing` = 1, the
default of the dnar configs, every step starts from the true hints, DNAR's "stepwise" training).

Scalars: BFS's attention reads the sender's position (CLRS's lowest-index parent); Bellman-Ford's reads the
candidate distance d_u + A_uv, with d_v on the self-loop (keeping the current distance), and the new distance is the
attended candidate: a hand-written scalar update, as DNAR writes Dijkstra's. Logits see the scalars divided by the
batch's largest, so their range does not grow with n. The output `pi` is the pointer of each sample's last step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from nar.data.batch import Batch, probes
from nar.model.net import ModelConfig, Predictions, graph_of
from nar.model.probes import truth_features
from nar.model.segment import segment_onehot_argmax, segment_softmax
from nar.processors import get_processor
from nar.processors.discrete import check_discrete_algorithm, straight_through
from nar.specs import Stage


class DiscreteModel(nnx.Module):
    """A discrete processor trained on an algorithm's hints (module docstring)."""

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        self.config = config
        self.class_hint, self.scalar_hint = check_discrete_algorithm(config.algorithm)
        self.input_probes = probes(config.algorithm, Stage.INPUT)
        self.hint_probes = probes(config.algorithm, Stage.HINT)
        self.output_probes = probes(config.algorithm, Stage.OUTPUT)
        entry = get_processor(config.processor)
        self.step = entry.build(config.hidden, rngs=rngs, **entry.options_of(config))
        self.scan_unroll = 1  # as `Model.scan_unroll`

    def _sigma(self, batch: Batch, graph, d_N):
        """[E] the scalar flow on each edge (module docstring)."""
        if self.scalar_hint is None:
            return batch.inputs["pos"][graph.senders]
        loop_E = graph.senders == graph.receivers
        return jnp.where(loop_E, d_N[graph.receivers], d_N[graph.senders] + batch.inputs["A"])

    def __call__(self, batch: Batch, key=None, *, train: bool = False, closed_gate: bool = False) -> Predictions:
        del closed_gate
        graph = graph_of(batch)
        recv = graph.receivers
        node_const = batch.inputs["s"].astype(jnp.float32)[:, None]
        edge_const = jnp.stack([batch.inputs["adj"].astype(jnp.float32),
                                (graph.senders == recv).astype(jnp.float32)], -1)
        num_steps = batch.pad_sizes.steps - 1
        tf = self.config.teacher_forcing if train else 0.0
        key = jax.random.key(0) if key is None else key
        probe = self.hint_probes["pi_h"]
        scalar = self.scalar_hint

        def step(carry, xs):
            cls_N, ptr_E, d_N = carry
            truth, k = xs
            k_noise, k_force = jax.random.split(k)
            sigma_E = self._sigma(batch, graph, d_N)
            scale = jax.lax.stop_gradient(jnp.maximum(jnp.max(jnp.abs(sigma_E)), 1e-6))
            node_NxF = jnp.concatenate([1.0 - cls_N[:, None], cls_N[:, None], node_const], -1)
            edge_ExF = jnp.concatenate([ptr_E[:, None], edge_const], -1)
            class_NxC, ptr_logit_E, alpha_E = self.step(node_NxF, edge_ExF, sigma_E / scale, graph,
                                                        k_noise if train else None)
            mask_N = class_NxC[:, 1] - class_NxC[:, 0]
            hints = {self.class_hint: mask_N, "pi_h": ptr_logit_E}
            if scalar:
                d_N = jax.ops.segment_sum(alpha_E * sigma_E, recv, graph.num_nodes, indices_are_sorted=True)
                hints[scalar] = d_N
            cls_pred = (mask_N > 0).astype(jnp.float32)
            ptr_pred = segment_onehot_argmax(ptr_logit_E, recv, graph.num_nodes, True)
            if train:
                cls_pred = straight_through(cls_pred, jax.nn.sigmoid(mask_N))
                ptr_pred = straight_through(ptr_pred, segment_softmax(ptr_logit_E, recv, graph.num_nodes, True))
            force_G = jax.random.uniform(k_force, (graph.num_graphs,)) < tf
            force_N, force_E = force_G[graph.node_graph], force_G[graph.edge_graph]
            nxt = (jnp.where(force_N, truth[self.class_hint].astype(jnp.float32), cls_pred),
                   jnp.where(force_E, truth_features(truth["pi_h"], *probe, graph), ptr_pred),
                   jnp.where(force_N, truth[scalar], d_N) if scalar else d_N)
            return nxt, hints

        hints_T = {n: batch.hints[n] for n in self.hint_probes}
        carry0 = (hints_T[self.class_hint][0].astype(jnp.float32), truth_features(hints_T["pi_h"][0], *probe, graph),
                  hints_T[scalar][0] if scalar else jnp.zeros(graph.num_nodes))
        xs = ({n: h[1:num_steps + 1] for n, h in hints_T.items()}, jax.random.split(key, num_steps))
        _, hint_logits = jax.lax.scan(step, carry0, xs, unroll=self.scan_unroll)
        last_E = jnp.clip(batch.lengths - 2, 0, num_steps - 1)[graph.edge_graph]  # step max(L - 2, 0), as CLRS
        outputs = {"pi": hint_logits["pi_h"][last_E, jnp.arange(graph.num_edges)]}
        return Predictions(outputs, hint_logits, {})
