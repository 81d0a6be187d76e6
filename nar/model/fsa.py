"""GraphFSA on nar's trajectories: the automaton steps through an algorithm's finite node hint, one hint per step.

The tracked hint (`FSA_HINTS`: BFS's reach mask, DFS's colour) has C classes; the automaton has S >= C states and
state s means class s mod C (states beyond C are extra memory). Hint 0 (the truth) gives the start states; step t
predicts hint t + 1 from the automaton's own previous state (free-running, as Diff-FSA trains; with
`teacher_forcing` > 0 a sample restarts from the true hint with that probability). The loss is Diff-FSA's squared
error between the class probabilities and the one-hot truth, over real nodes and steps.

BFS's output pi is NOT learned. It names a neighbour, which no per-node automaton holds, so it is decoded by a
fixed, hand-written rule (`PARENT_RULE`) from the learned reach trajectory: a node first reached at step t points to
its lowest-index in-neighbour reached before t (CLRS's BFS picks exactly that parent), and the source and unreached
nodes point to themselves. No parameter is involved and no loss trains it; its score ('output/pi') measures the
learned reach trajectory seen through that rule, and is exact exactly when the trajectory is. The model says so in
`FSAModel.fixed_outputs` ({output: the rule}). DFS has no such rule (its parents depend on the visiting order), so a
DFS run scores the colour hint only; the colours themselves follow a global stack and the neighbours' index order,
which a count-based automaton cannot see: DFS is a documented limitation, trained and scored to show it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from nar.data.batch import Batch, probes
from nar.model.losses import valid_graphs
from nar.model.net import ModelConfig, Predictions, graph_of
from nar.processors import get_processor
from nar.processors.graphfsa import check_fsa_algorithm
from nar.specs import Stage, Type

#: Log-odds / log-probability floor for the hint logits read from state probabilities.
_LOG_FLOOR = 1e-6
_STATE_NAMES = {"reach_h": ["unreached", "reached"], "color": ["white", "grey", "black"]}
#: How BFS's pi is decoded (module docstring): a fixed rule, not a learned readout.
PARENT_RULE = ("fixed rule, not learned: a node first reached at step t points to its lowest-index in-neighbour "
               "reached before t; the source and unreached nodes point to themselves")


class FSAModel(nnx.Module):
    """A GraphFSA trained against a CLRS algorithm's finite node hint (module docstring)."""

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        self.config = config
        name = check_fsa_algorithm(config.algorithm)
        probe = probes(config.algorithm, Stage.HINT)[name]
        self.hint_name = name
        self.hint_probes = {name: probe}
        self.input_probes = {}
        outputs = probes(config.algorithm, Stage.OUTPUT)
        # BFS's pi, decoded from the reach mask by a fixed rule (not learned): `fixed_outputs` says so.
        self.output_probes = {"pi": outputs["pi"]} if probe[1] == Type.MASK else {}
        self.fixed_outputs = {"pi": PARENT_RULE} if self.output_probes else {}
        self.classes = 2 if probe[1] == Type.MASK else probe[2]
        states = config.fsa_states or self.classes
        if states < self.classes:
            raise ValueError(f"graphfsa on {config.algorithm} needs fsa_states >= {self.classes} (the classes of "
                             f"{name}), got {states}")
        self.fsa = get_processor(config.processor).build(states, config.fsa_bound, rngs=rngs)
        self.scan_unroll = 1  # as `Model.scan_unroll` (benchmarks unroll to count FLOPs)

    def _start(self, batch: Batch, graph):
        """[N, S] one-hot start states from hint 0 (state = class); padding nodes hold no state."""
        start_NxS = jax.nn.one_hot(batch.hints[self.hint_name][0].astype(jnp.int32), self.fsa.states)
        return start_NxS * (batch.lengths > 0)[graph.node_graph][:, None]

    def class_probs(self, state_NxS):
        """[N, C] probability of each hint class (state s is class s mod C)."""
        S, C = self.fsa.states, self.classes
        return state_NxS @ (jnp.arange(S)[:, None] % C == jnp.arange(C)[None, :]).astype(state_NxS.dtype)

    def _logits(self, p_NxC):
        logp = jnp.log(jnp.maximum(p_NxC, _LOG_FLOOR))
        return logp[:, 1] - logp[:, 0] if self.hint_probes[self.hint_name][1] == Type.MASK else logp

    def __call__(self, batch: Batch, key=None, *, train: bool = False, closed_gate: bool = False) -> Predictions:
        del closed_gate
        graph = graph_of(batch)
        hard = not train
        real_N = (batch.lengths > 0)[graph.node_graph][:, None]
        truth_TN = batch.hints[self.hint_name].astype(jnp.int32)
        start_NxS = self._start(batch, graph)
        num_steps = batch.pad_sizes.steps - 1
        tf = self.config.teacher_forcing if train else 0.0
        key = jax.random.key(0) if key is None else key

        def step(state, xs):
            truth_next, k = xs
            nxt = self.fsa(state, graph, hard=hard)
            force_N = (jax.random.uniform(k, (graph.num_graphs,)) < tf)[graph.node_graph][:, None]
            carry = jnp.where(force_N, jax.nn.one_hot(truth_next, self.fsa.states) * real_N, nxt)
            return carry, self.class_probs(nxt)

        xs = (truth_TN[1:num_steps + 1], jax.random.split(key, num_steps))
        _, probs_TxNxC = jax.lax.scan(step, start_NxS, xs, unroll=self.scan_unroll)
        logits = jax.vmap(self._logits)(probs_TxNxC)
        outputs = {}
        if self.output_probes:
            outputs["pi"] = self._parent_readout(truth_TN[0] > 0, probs_TxNxC[..., 1] > 0.5, batch, graph)
        return Predictions(outputs, {self.hint_name: logits}, {})

    def _parent_readout(self, start_N, reach_TxN, batch: Batch, graph):
        """BFS's pi as edge logits (0 on the chosen parent edge, -1 elsewhere) from a predicted reach trajectory, by
        the fixed rule `PARENT_RULE` (no parameters, no gradient): each node's parent is its lowest-index
        in-neighbour reached at an earlier step (module docstring)."""
        T = reach_TxN.shape[0]
        live_TxN = (jnp.arange(T)[:, None] + 1 < batch.lengths[graph.node_graph][None, :])
        reached_TxN = jnp.concatenate([start_N[None], reach_TxN & live_TxN])
        never = T + 1
        first_N = jnp.where(reached_TxN.any(0), jnp.argmax(reached_TxN, 0), never)
        snd, rcv = jnp.asarray(graph.senders), jnp.asarray(graph.receivers)
        ok_E = (snd != rcv) & (first_N[snd] < first_N[rcv]) & (first_N[rcv] < never)
        parent_N = jax.ops.segment_min(jnp.where(ok_E, snd, graph.num_nodes), rcv, graph.num_nodes)
        parent_N = jnp.where(parent_N < graph.num_nodes, parent_N, jnp.arange(graph.num_nodes))
        return jnp.where(snd == parent_N[rcv], 0.0, -1.0)

    def describe(self, batch: Batch) -> str:
        """The learned automaton as a table of the transitions the hard automaton takes on `batch`'s real steps."""
        graph = graph_of(batch)
        C = self.classes
        names = _STATE_NAMES.get(self.hint_name, [f"class{c}" for c in range(C)])
        names = [names[s % C] + "'" * (s // C) for s in range(self.fsa.states)]
        t_T = jnp.arange(batch.pad_sizes.steps - 1)[:, None]
        live_TxN = (t_T + 1 < batch.lengths[graph.node_graph][None, :]).astype(jnp.float32)
        return self.fsa.describe(names, self.fsa.usage_over(self._start(batch, graph), graph, live_TxN))

    def loss_sums(self, preds: Predictions, batch: Batch) -> dict:
        """{'hint/<name>': (sum, count)} of Diff-FSA's squared error of the class probabilities over real nodes and
        steps (`nar.model.losses.loss_sums`: data-parallel groups add these before dividing)."""
        graph = graph_of(batch)
        logits_T = preds.hints[self.hint_name]
        steps = logits_T.shape[0]
        if self.hint_probes[self.hint_name][1] == Type.MASK:
            p1 = jax.nn.sigmoid(logits_T)
            probs = jnp.stack([1.0 - p1, p1], -1)
        else:
            probs = jax.nn.softmax(logits_T, -1)
        truth = jax.nn.one_hot(batch.hints[self.hint_name][1:steps + 1].astype(jnp.int32), self.classes)
        w_TN = (valid_graphs(batch) * (jnp.arange(steps)[:, None] + 1 < batch.lengths[None, :]))[:, graph.node_graph]
        sq = jnp.sum((probs - truth) ** 2, -1)
        return {f"hint/{self.hint_name}": (jnp.sum(sq * w_TN), jnp.sum(w_TN))}

    def loss(self, preds: Predictions, batch: Batch):
        """(total, parts): Diff-FSA's squared error of the class probabilities, mean over real nodes and steps."""
        (s, c), = self.loss_sums(preds, batch).values()
        part = s / jnp.maximum(c, 1.0)
        return part, {f"hint/{self.hint_name}": part}
