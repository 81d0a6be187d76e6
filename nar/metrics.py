"""CLRS's evaluation metrics, as additive counts so that batches (and devices) can be pooled exactly.

Per probe: pointer, mask_one, categorical -> (correct, total); mask -> (tp, fp, fn) for the F1 of the positive
class; scalar -> (squared error, count). Sorting's permutation pointer `pred` is fused with its head `pred_mask`
back into a plain pointer (the predicted head points to itself) and scored as one pointer, as CLRS does. The
score of a sample set is the mean over its output probes (over its hints for a model without outputs).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from nar.data.batch import Batch
from nar.model.losses import row_weights, valid_graphs
from nar.model.net import Predictions, graph_of
from nar.model.probes import POINTERS
from nar.model.segment import segment_argmax
from nar.processors.base import Graph
from nar.specs import Type


def probe_counts(logits, stored, probe, graph: Graph, weight_G, head=None):
    """Counts of one probe; `head` = (predicted head logits, true head one-hot) fuses a permutation pointer."""
    location, type_, _ = probe
    w = row_weights(weight_G, probe, graph)
    if type_ in POINTERS:
        pred = graph.senders[segment_argmax(logits, graph.receivers, graph.num_nodes, True)]
        truth = graph.senders[stored]
        if head is not None:
            nodes = jnp.arange(graph.num_nodes)
            head_pred = segment_argmax(head[0], graph.node_graph, graph.num_graphs)[graph.node_graph] == nodes
            pred = jnp.where(head_pred, nodes, pred)
            truth = jnp.where(head[1] > 0, nodes, truth)
        return jnp.stack([jnp.sum((pred == truth) * w), jnp.sum(w)])
    if type_ == Type.MASK_ONE:
        pred = segment_argmax(logits, graph.node_graph, graph.num_graphs)
        truth = segment_argmax(stored, graph.node_graph, graph.num_graphs)
        return jnp.stack([jnp.sum((pred == truth) * w), jnp.sum(w)])
    if type_ == Type.CATEGORICAL:
        return jnp.stack([jnp.sum((jnp.argmax(logits, -1) == stored) * w), jnp.sum(w)])
    if type_ == Type.MASK:
        p, t = (logits > 0).astype(jnp.float32), stored
        return jnp.stack([jnp.sum(p * t * w), jnp.sum(p * (1 - t) * w), jnp.sum((1 - p) * t * w)])
    if type_ == Type.SCALAR:
        return jnp.stack([jnp.sum((logits - stored) ** 2 * w), jnp.sum(w)])
    raise ValueError(f"no metric for probe type {type_!r}")


def batch_counts(model, preds: Predictions, batch: Batch) -> dict:
    """Counts per output probe ('output/<name>') and per hint ('hint/<name>', pooled over valid steps)."""
    graph = graph_of(batch)
    valid = valid_graphs(batch)
    out = {}
    for name, probe in model.output_probes.items():
        if f"{name}_mask" in model.output_probes and probe[1] == Type.PERMUTATION_POINTER:
            head = (preds.outputs[f"{name}_mask"], batch.outputs[f"{name}_mask"])
            out[f"output/{name}"] = probe_counts(preds.outputs[name], batch.outputs[name], probe, graph, valid, head)
        elif not (name.endswith("_mask") and name[:-5] in model.output_probes):
            out[f"output/{name}"] = probe_counts(preds.outputs[name], batch.outputs[name], probe, graph, valid)
    for name, logits_T in preds.hints.items():
        probe = model.hint_probes[name]
        steps = logits_T.shape[0]
        weight_TG = valid * (jnp.arange(steps)[:, None] + 1 < batch.lengths[None, :])
        c = jax.vmap(lambda lg, tr, w, probe=probe: probe_counts(lg, tr, probe, graph, w))(
            logits_T, batch.hints[name][1:steps + 1], weight_TG)
        out[f"hint/{name}"] = c.sum(0)
    return out


def score(counts, type_: str) -> float:
    """CLRS's score from pooled counts: accuracy, F1 (mask) or MSE (scalar)."""
    c = np.asarray(counts, np.float64)
    if type_ == Type.MASK:
        tp, fp, fn = c
        precision = tp / (tp + fp) if tp + fp > 0 else 1.0
        recall = tp / (tp + fn) if tp + fn > 0 else 1.0
        return float(2 * precision * recall / (precision + recall)) if precision + recall > 0 else 0.0
    return float(c[0] / c[1]) if c[1] > 0 else float("nan")


def scores(model, counts: dict) -> dict:
    """Scores per probe plus 'score' (mean over output probes)."""
    out = {}
    for key, c in counts.items():
        stage, name = key.split("/", 1)
        probe = (model.output_probes if stage == "output" else model.hint_probes)[name]
        out[key] = score(c, probe[1])
    # The mean over outputs; a model that predicts no output (GraphFSA on DFS) is scored on its hints.
    outs = [v for k, v in out.items() if k.startswith("output/")] or list(out.values())
    out["score"] = float(np.mean(outs)) if outs else float("nan")
    return out
