"""CLRS's evaluation metrics, as additive counts so that batches (and devices) can be pooled exactly.

Per probe: pointer, mask_one, categorical -> (correct, total); mask -> (tp, fp, fn) for the F1 of the positive
class; scalar -> (squared error, count). Sorting's permutation pointer `pred` is fused with its head `pred_mask`
back into a plain pointer (the predicted head points to itself) and scored as one pointer, as CLRS does. The
score of a sample set is the mean over its output probes (over its hints for a model without outputs).

Graph-level exact match (SALSA-CLRS's measure, beside CLRS's node-level one): a test graph is entirely right when
every output probe is right on all of its rows (pointer: every node's predicted pointer, the permutation pointer
fused with its head as above; mask: every node's bit; mask_one: the graph's arg-max; categorical: every class).
Counts: 'graph/exact' = (graphs entirely right, graphs) and 'graph/output/<name>' = (graphs whose output <name> is
entirely right, graphs), over valid graphs only (padding slots never count). Scalar outputs have no exact match
and are left out of it; a model with no non-scalar output (GraphFSA on DFS predicts none) has no 'graph/' counts
and its 'exact' is NaN. `scores` turns them into 'exact' and 'exact/<name>'.
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


def row_correct(logits, stored, probe, graph: Graph, head=None):
    """Whether each row of a probe is predicted right (bool, rows as `row_weights`'s: nodes, or graphs for graph
    probes and mask_one); None for scalar probes (no exact match). `head` as in `probe_counts`."""
    type_ = probe[1]
    if type_ in POINTERS:
        pred = graph.senders[segment_argmax(logits, graph.receivers, graph.num_nodes, True)]
        truth = graph.senders[stored]
        if head is not None:
            nodes = jnp.arange(graph.num_nodes)
            head_pred = segment_argmax(head[0], graph.node_graph, graph.num_graphs)[graph.node_graph] == nodes
            pred = jnp.where(head_pred, nodes, pred)
            truth = jnp.where(head[1] > 0, nodes, truth)
        return pred == truth
    if type_ == Type.MASK_ONE:
        pred = segment_argmax(logits, graph.node_graph, graph.num_graphs)
        truth = segment_argmax(stored, graph.node_graph, graph.num_graphs)
        return pred == truth
    if type_ == Type.CATEGORICAL:
        return jnp.argmax(logits, -1) == stored
    if type_ == Type.MASK:
        return (logits > 0) == (stored > 0)
    if type_ == Type.SCALAR:
        return None
    raise ValueError(f"no metric for probe type {type_!r}")


def graph_correct(logits, stored, probe, graph: Graph, head=None):
    """[G] whether every row of each graph slot is right (a graph-level exact match of one probe); None for scalar
    probes. Padding slots get a value too: weight it with `valid_graphs`."""
    ok = row_correct(logits, stored, probe, graph, head)
    if ok is None:
        return None
    location, type_, _ = probe
    if location == "graph" or type_ == Type.MASK_ONE:
        return ok
    wrong_G = jax.ops.segment_sum((~ok).astype(jnp.int32), graph.node_graph, graph.num_graphs)
    return wrong_G == 0


def probe_counts(logits, stored, probe, graph: Graph, weight_G, head=None):
    """Counts of one probe; `head` = (predicted head logits, true head one-hot) fuses a permutation pointer."""
    location, type_, _ = probe
    w = row_weights(weight_G, probe, graph)
    if type_ in (*POINTERS, Type.MASK_ONE, Type.CATEGORICAL):
        return jnp.stack([jnp.sum(row_correct(logits, stored, probe, graph, head) * w), jnp.sum(w)])
    if type_ == Type.MASK:
        p, t = (logits > 0).astype(jnp.float32), stored
        return jnp.stack([jnp.sum(p * t * w), jnp.sum(p * (1 - t) * w), jnp.sum((1 - p) * t * w)])
    if type_ == Type.SCALAR:
        return jnp.stack([jnp.sum((logits - stored) ** 2 * w), jnp.sum(w)])
    raise ValueError(f"no metric for probe type {type_!r}")


def batch_counts(model, preds: Predictions, batch: Batch) -> dict:
    """Counts per output probe ('output/<name>'), per hint ('hint/<name>', pooled over valid steps) and the
    graph-level exact matches ('graph/exact', 'graph/output/<name>': module docstring)."""
    graph = graph_of(batch)
    valid = valid_graphs(batch)
    out, exact_G = {}, None
    for name, probe in model.output_probes.items():
        if f"{name}_mask" in model.output_probes and probe[1] == Type.PERMUTATION_POINTER:
            head = (preds.outputs[f"{name}_mask"], batch.outputs[f"{name}_mask"])
        elif not (name.endswith("_mask") and name[:-5] in model.output_probes):
            head = None
        else:
            continue  # a permutation pointer's head: scored with it
        out[f"output/{name}"] = probe_counts(preds.outputs[name], batch.outputs[name], probe, graph, valid, head)
        ok_G = graph_correct(preds.outputs[name], batch.outputs[name], probe, graph, head)
        if ok_G is not None:
            out[f"graph/output/{name}"] = jnp.stack([jnp.sum(ok_G * valid), jnp.sum(valid)])
            exact_G = ok_G if exact_G is None else exact_G & ok_G
    if exact_G is not None:
        out["graph/exact"] = jnp.stack([jnp.sum(exact_G * valid), jnp.sum(valid)])
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


def exact_match(counts) -> float:
    """Fraction of graphs entirely right from pooled (right, graphs) counts; NaN for no graphs."""
    c = np.asarray(counts, np.float64)
    return float(c[0] / c[1]) if c[1] > 0 else float("nan")


def scores(model, counts: dict) -> dict:
    """Scores per probe plus 'score' (mean over output probes, node-level as CLRS), 'exact' (the fraction of graphs
    whose every output is entirely right; NaN without a non-scalar output) and 'exact/<name>' per output."""
    out, exact = {}, {}
    for key, c in counts.items():
        stage, name = key.split("/", 1)
        if stage == "graph":
            exact["exact" if name == "exact" else f"exact/{name.split('/', 1)[1]}"] = exact_match(c)
            continue
        probe = (model.output_probes if stage == "output" else model.hint_probes)[name]
        out[key] = score(c, probe[1])
    # The mean over outputs; a model that predicts no output (GraphFSA on DFS) is scored on its hints.
    outs = [v for k, v in out.items() if k.startswith("output/")] or list(out.values())
    out["score"] = float(np.mean(outs)) if outs else float("nan")
    out["exact"] = exact.pop("exact", float("nan"))
    out.update(exact)
    return out
