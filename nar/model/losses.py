"""CLRS's per-type losses, as masked means over valid rows; total = sum over outputs and hints (as CLRS sums).

scalar: squared error; mask: binary cross-entropy on logits; mask_one: cross-entropy over each graph's nodes;
categorical: cross-entropy over classes; pointer: cross-entropy over each node's incoming edges; permutation
pointer: -sum P_true * log S(Y) with S the Sinkhorn operator. Hint t+1 is predicted at step t and counts only
where t + 1 < L for its sample.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from nar.data.batch import Batch
from nar.distributed import unstacked
from nar.model.net import Model, Predictions, graph_of
from nar.model.relic import CausalPair, HintRelic, hint_relic_loss
from nar.model.segment import segment_log_softmax
from nar.processors.base import Graph
from nar.specs import Type


def row_weights(weight_G, probe, graph: Graph):
    """Per-graph weights -> weights of a probe's loss rows (nodes, or graphs for graph probes and mask_one)."""
    location, type_, _ = probe
    return weight_G if location == "graph" or type_ == Type.MASK_ONE else weight_G[graph.node_graph]


def probe_loss(logits, stored, probe, graph: Graph, weight_G):
    """(sum of weighted row losses, sum of weights) for one probe."""
    location, type_, _ = probe
    if type_ == Type.SCALAR:
        rows = (logits - stored) ** 2
    elif type_ == Type.MASK:
        rows = optax.sigmoid_binary_cross_entropy(logits, stored)
    elif type_ == Type.MASK_ONE:
        logp = segment_log_softmax(logits, graph.node_graph, graph.num_graphs)
        rows = -jax.ops.segment_sum(stored * logp, graph.node_graph, graph.num_graphs)
    elif type_ == Type.CATEGORICAL:
        rows = -jnp.take_along_axis(jax.nn.log_softmax(logits, -1), stored[..., None], -1)[..., 0]
    elif type_ == Type.POINTER:
        rows = -segment_log_softmax(logits, graph.receivers, graph.num_nodes, True)[stored]
    elif type_ == Type.PERMUTATION_POINTER:
        rows = -logits[stored]  # logits are already Sinkhorn log-probabilities
    else:
        raise ValueError(f"no loss for probe type {type_!r}")
    w = row_weights(weight_G, probe, graph)
    return jnp.sum(rows * w), jnp.sum(w)


def valid_graphs(batch: Batch):
    """[G] 1.0 for slots holding a sample."""
    return (batch.lengths > 0).astype(jnp.float32)


def loss_sums(model, preds: Predictions, batch: Batch) -> dict:
    """(sum of weighted row losses, sum of weights) per output and hint probe: the numerators and denominators
    `losses` divides. A data-parallel step adds them over its groups before dividing (a mean over the whole global
    batch, not a mean of per-device means)."""
    graph = graph_of(batch)
    valid = valid_graphs(batch)
    out = {}
    for name, probe in model.output_probes.items():
        out[f"output/{name}"] = probe_loss(preds.outputs[name], batch.outputs[name], probe, graph, valid)
    for name, logits_T in preds.hints.items():
        probe = model.hint_probes[name]
        steps = logits_T.shape[0]
        truth_T = batch.hints[name][1:steps + 1]
        weight_TG = valid * (jnp.arange(steps)[:, None] + 1 < batch.lengths[None, :])
        s, c = jax.vmap(lambda lg, tr, w, probe=probe: probe_loss(lg, tr, probe, graph, w))(logits_T, truth_T,
                                                                                             weight_TG)
        out[f"hint/{name}"] = (s.sum(), c.sum())
    return out


def losses(model, preds: Predictions, batch: Batch) -> dict:
    """Masked-mean loss per output probe and per hint probe (keys 'output/<name>', 'hint/<name>')."""
    return {k: s / jnp.maximum(c, 1.0) for k, (s, c) in loss_sums(model, preds, batch).items()}


def total_loss(model, preds: Predictions, batch: Batch):
    parts = losses(model, preds, batch)
    return sum(parts.values()), parts


def live_node_steps(batch: Batch):
    """How many (real node, step) pairs a model's statistics (`Predictions.stats`) average over: the nodes of
    sample g at the processor steps t with t + 1 < L_g."""
    return jnp.sum(jnp.maximum(batch.lengths[batch.node_graph] - 1, 0)).astype(jnp.float32)


def training_loss(model, batch: Batch | CausalPair, key, gate_penalty: str = "none", weight=0.0,
                  causal: HintRelic | None = None):
    """(loss, parts, stats) of a training step: `total_loss` plus, for G-ForgetNet, `weight` times the gate penalty.

    With `causal` (Hint-ReLIC), `batch` is a `CausalPair` (one group: `nar.training.causal`): the augmented twin
    runs too, with the same key, and `causal.weight` times `nar.model.relic.hint_relic_loss` of the two runs' node
    states is added; stats gain 'hint_relic' and 'certified_anchors' (the (step, node) pairs it averaged).

    "magnitude": the mean gate over real nodes, steps and channels (penalty A); "closed_loss": the total loss of
    the same parameters run with the gate shut (penalty B), which trains the pure Markov path used by
    `eval.closed_gate`. `stats` holds the processor's statistics (the mean gate) and the penalty's value.

    `batch` may also be groups stacked on a leading axis (a data-parallel step, `nar.distributed`): every loss term
    and statistic is then pooled over the graphs of all groups, as if they were one batch, and group g draws its
    randomness from fold_in(key, g). A single group is exactly the plain batch.
    """
    if isinstance(batch, CausalPair) != (causal is not None):
        raise ValueError("training_loss takes a CausalPair exactly when a causal regulariser is given")
    if causal is not None:
        return _causal_training_loss(model, batch, key, gate_penalty, weight, causal)
    plain = unstacked(batch)
    if plain is None:
        return _grouped_training_loss(model, batch, key, gate_penalty, weight)
    batch = plain
    preds = model(batch, key, train=True)
    # A model with a loss of its own (GraphFSA's squared error) uses it.
    loss, parts = model.loss(preds, batch) if hasattr(model, "loss") else total_loss(model, preds, batch)
    closed = lambda: total_loss(model, model(batch, key, train=True, closed_gate=True), batch)[0]  # noqa: E731
    return _with_penalty(loss, parts, dict(preds.stats), gate_penalty, weight, closed)


def _causal_training_loss(model, pair: CausalPair, key, gate_penalty: str, weight, causal: HintRelic):
    """`training_loss` plus Hint-ReLIC on one group (a single-group stack is unstacked)."""
    if pair.certified.ndim == 2:
        if pair.certified.shape[0] != 1:
            raise ValueError(f"Hint-ReLIC trains on one data group, got {pair.certified.shape[0]}")
        pair = jax.tree.map(lambda x: x[0], pair)
    if not isinstance(model, Model):
        raise ValueError(f"Hint-ReLIC needs an encode-process-decode Model, got {type(model).__name__}")
    batch = pair.batch
    preds = model(batch, key, train=True, trace=True)
    twin = model(pair.augmented, key, train=True, trace=True)
    loss, parts = total_loss(model, preds, batch)
    reg, anchors = hint_relic_loss(preds.hidden, twin.hidden, pair.nodes, pair.certified, causal.tau, causal.alpha)
    closed = lambda: total_loss(model, model(batch, key, train=True, closed_gate=True), batch)[0]  # noqa: E731
    stats = {**preds.stats, "hint_relic": reg, "certified_anchors": anchors.astype(jnp.float32)}
    return _with_penalty(loss + causal.weight * reg, parts, stats, gate_penalty, weight, closed)


def _grouped_training_loss(model, batch_D, key, gate_penalty: str, weight):
    """`training_loss` of groups stacked on axis 0: sums and counts of every group added, then divided."""
    own = getattr(model, "loss_sums", None)

    def group(b, k):
        preds = model(b, k, train=True)
        sums = own(preds, b) if own else loss_sums(model, preds, b)
        n = live_node_steps(b)
        stats = {name: (v * n, n) for name, v in preds.stats.items()}
        closed = (loss_sums(model, model(b, k, train=True, closed_gate=True), b)
                  if gate_penalty == "closed_loss" else {})
        return sums, stats, closed

    keys = jax.vmap(lambda g: jax.random.fold_in(key, g))(jnp.arange(batch_D.lengths.shape[0]))
    sums, stats, closed = jax.vmap(group)(batch_D, keys)
    pool = lambda sc: {k: s.sum() / jnp.maximum(c.sum(), 1.0) for k, (s, c) in sc.items()}  # noqa: E731
    parts = pool(sums)
    return _with_penalty(sum(parts.values()), parts, pool(stats), gate_penalty, weight,
                         lambda: sum(pool(closed).values()))


def _with_penalty(loss, parts: dict, stats: dict, gate_penalty: str, weight, closed_loss):
    """(loss + weight * penalty, parts, stats with the penalty); `closed_loss()` gives penalty B."""
    if gate_penalty == "none":
        return loss, parts, stats
    if "gate" not in stats:
        raise ValueError(f"gate_penalty={gate_penalty!r} needs a processor with a history gate (g_forgetnet)")
    if gate_penalty == "magnitude":
        penalty = stats["gate"]
    elif gate_penalty == "closed_loss":
        penalty = closed_loss()
    else:
        raise ValueError(f"unknown gate_penalty {gate_penalty!r}; known: none, magnitude, closed_loss")
    stats["gate_penalty"] = penalty
    return loss + weight * penalty, parts, stats
