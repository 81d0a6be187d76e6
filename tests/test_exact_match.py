"""Graph-level exact match (`nar.metrics`: 'graph/exact', 'graph/output/<name>'; 'exact' in the scores) against an
independent truth: predictions built by hand from each sample's own true outputs, with errors placed in known
graphs, so which graphs are entirely right is known before anything is counted.
"""

from __future__ import annotations

import math
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nar.data import generate
from nar.data.batch import PadSizes, cover, make_batch, output_probes, pad_sizes_for, probes
from nar.evaluate import format_table
from nar.metrics import batch_counts, graph_correct, scores
from nar.model.net import Predictions, graph_of
from nar.processors.base import Graph
from nar.specs import Stage, Type


def fast_jit(f, **kwargs):
    return jax.jit(f, compiler_options={"xla_backend_optimization_level": 0}, **kwargs)


def fake_model(algorithm: str, outputs: dict | None = None):
    """What `batch_counts` and `scores` read of a model: its probe tables."""
    return types.SimpleNamespace(hint_probes=probes(algorithm, Stage.HINT),
                                 output_probes=output_probes(algorithm) if outputs is None else outputs)


def counts_of(model, preds: Predictions, batch) -> dict:
    return jax.tree.map(np.asarray, fast_jit(lambda p, b: batch_counts(model, p, b))(preds, batch))


def node_offsets(tb) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(tb.n_node)]).astype(int)


def pointer_logits(batch, tb, name: str, targets) -> np.ndarray:
    """Edge logits whose arg-max at each real node v of sample s is the edge from targets[s][v] (local ids)."""
    snd, rcv = np.asarray(batch.graph.senders), np.asarray(batch.graph.receivers)
    edge = {(int(a), int(b)): e for e, (a, b) in enumerate(zip(snd, rcv))}
    logits = np.zeros(len(snd), np.float32)
    off = node_offsets(tb)
    for s in range(len(tb)):
        for v, t in enumerate(targets[s]):
            logits[edge[(off[s] + int(t), off[s] + v)]] = 5.0
    return logits


def true_parents(tb, name: str = "pi") -> list[np.ndarray]:
    return [np.asarray(tb.trajectory(s).outputs[name]).astype(int).copy() for s in range(len(tb))]


def with_errors(targets: list[np.ndarray], wrong) -> list[np.ndarray]:
    """Each (sample, node) in `wrong` points one node further on (mod n): a wrong target."""
    out = [t.copy() for t in targets]
    for s, v in wrong:
        out[s][v] = (out[s][v] + 1) % len(out[s])
    return out


# ---------------------------------------------------------------------------------------------------------------
# Pointers (BFS): one wrong pointer spoils its graph, and only its graph


@pytest.fixture(scope="module")
def bfs():
    tb = generate("bfs", 3, [5, 6, 4], seed=3, p=0.6).trajectories
    return tb, make_batch(tb, "complete")


def bfs_counts(tb, batch, wrong=()) -> dict:
    logits = pointer_logits(batch, tb, "pi", with_errors(true_parents(tb), wrong))
    return counts_of(fake_model("bfs"), Predictions({"pi": jnp.asarray(logits)}, {}), batch)


@pytest.mark.parametrize("wrong, right_graphs", [
    ((), 3),                      # all right
    (((1, 2),), 2),               # one wrong pointer in graph 1
    (((1, 2), (1, 4)), 2),        # two wrong pointers, same graph: still one graph wrong
    (((0, 0), (2, 3)), 1),        # one in graph 0, one in graph 2
    (((0, 1), (1, 0), (2, 2)), 0),
])
def test_pointer_exact_match_counts_graphs_with_every_pointer_right(bfs, wrong, right_graphs):
    tb, batch = bfs
    nodes = int(tb.n_node.sum())
    c = bfs_counts(tb, batch, wrong)
    assert set(c) == {"output/pi", "graph/output/pi", "graph/exact"}
    np.testing.assert_array_equal(c["output/pi"], [nodes - len(wrong), nodes])  # node level: one miss per error
    np.testing.assert_array_equal(c["graph/exact"], [right_graphs, 3])
    np.testing.assert_array_equal(c["graph/output/pi"], [right_graphs, 3])
    s = scores(fake_model("bfs"), c)
    assert s["exact"] == pytest.approx(right_graphs / 3) and s["exact/pi"] == s["exact"]
    assert s["score"] == pytest.approx((nodes - len(wrong)) / nodes)


def test_one_wrong_pointer_leaves_node_level_high_but_its_graph_wrong(bfs):
    """The SALSA-CLRS point in miniature: 14 of 15 nodes right (93%) but only 2 of 3 graphs."""
    tb, batch = bfs
    s = scores(fake_model("bfs"), bfs_counts(tb, batch, [(1, 3)]))
    assert s["score"] == pytest.approx(14 / 15) and s["exact"] == pytest.approx(2 / 3)


def test_padding_graph_slots_and_nodes_never_count(bfs):
    """Extra empty slots (no nodes: vacuously 'entirely right') and the padding slot (its nodes' garbage logits)
    are weighted out: the counts equal the tight batch's."""
    tb, tight = bfs
    wrong = [(2, 1)]
    want = bfs_counts(tb, tight, wrong)
    p = tight.pad_sizes
    loose = make_batch(tb, "complete", PadSizes(p.nodes + 8, p.edges + 16, p.steps, 7), num_graphs=6)
    assert loose.pad_sizes.graphs == 7 and int((np.asarray(loose.lengths) > 0).sum()) == 3
    logits = pointer_logits(loose, tb, "pi", with_errors(true_parents(tb), wrong))
    n_real = int(tb.n_node.sum())
    pad_edges = np.asarray(loose.graph.receivers) >= n_real
    logits[pad_edges] = np.random.default_rng(0).normal(size=pad_edges.sum()) * 10
    probe = output_probes("bfs")["pi"]
    ok = np.asarray(graph_correct(jnp.asarray(logits), loose.outputs["pi"], probe, graph_of(loose)))
    assert ok.tolist() == [True, True, False, True, True, True, ok[6]]  # empty slots 3-5 would count as right
    got = counts_of(fake_model("bfs"), Predictions({"pi": jnp.asarray(logits)}, {}), loose)
    assert {k: v.tolist() for k, v in got.items()} == {k: v.tolist() for k, v in want.items()}
    assert got["graph/exact"].tolist() == [2, 3]


def test_pooling_two_batches_equals_one(bfs):
    """Counts are sums: batches (and devices) pool exactly."""
    tb, _ = bfs
    wrong = [(0, 2), (2, 0)]  # graphs 0 and 2 wrong
    parts = [tb.select([0, 1]), tb.select([2])]
    pad = cover([pad_sizes_for(p, "complete", 2) for p in parts])
    whole = make_batch(tb, "complete")
    one = bfs_counts(tb, whole, wrong)
    assert one["graph/exact"].tolist() == [1, 3]
    total = None
    for part, sel in zip(parts, ([0, 1], [2])):
        b = make_batch(part, "complete", pad, num_graphs=2)
        part_wrong = [(sel.index(s), v) for s, v in wrong if s in sel]
        c = bfs_counts(part, b, part_wrong)
        total = c if total is None else {k: total[k] + c[k] for k in total}
    assert {k: v.tolist() for k, v in total.items()} == {k: v.tolist() for k, v in one.items()}
    assert scores(fake_model("bfs"), total)["exact"] == pytest.approx(1 / 3)


# ---------------------------------------------------------------------------------------------------------------
# Permutation pointer (sorting): fused with its head, as the node-level metric


@pytest.fixture(scope="module")
def sort3():
    tb = generate("insertion_sort", 3, [4, 5, 3], seed=5).trajectories
    return tb, make_batch(tb, "complete")


def sort_counts(tb, batch, pointer_wrong=(), head_wrong=(), head_pointer_wrong=()) -> dict:
    """Perfect sorting predictions but for: `pointer_wrong` samples where one node other than the head points
    elsewhere, `head_wrong` samples whose predicted head is another node, `head_pointer_wrong` samples whose head's
    own edge logits (which fusion ignores) point elsewhere."""
    stored_pred = np.asarray(batch.outputs["pred"])
    snd = np.asarray(batch.graph.senders)
    off = node_offsets(tb)
    # the stored permutation pointer, as local targets (the head points to the tail)
    targets = [np.array([snd[stored_pred[off[s] + v]] - off[s] for v in range(tb.n_node[s])])
               for s in range(len(tb))]
    truth_head = np.asarray(batch.outputs["pred_mask"])
    heads = [int(np.flatnonzero(truth_head[off[s]:off[s + 1]])[0]) for s in range(len(tb))]
    for s in head_pointer_wrong:
        targets[s][heads[s]] = (targets[s][heads[s]] + 1) % tb.n_node[s]
    lp = pointer_logits(batch, tb, "pred", with_errors(targets, [(s, (heads[s] + 1) % tb.n_node[s])
                                                                 for s in pointer_wrong]))
    head = truth_head * 5.0
    for s in head_wrong:
        head[off[s] + (heads[s] + 1) % tb.n_node[s]] = 9.0
    preds = Predictions({"pred": jnp.asarray(lp), "pred_mask": jnp.asarray(head, jnp.float32)}, {})
    return counts_of(fake_model("insertion_sort"), preds, batch)


@pytest.mark.parametrize("kw, right_graphs", [
    ({}, 3),
    ({"pointer_wrong": [0]}, 2),
    ({"head_wrong": [2]}, 2),                      # the wrong head makes its graph wrong
    ({"head_wrong": [0], "pointer_wrong": [1]}, 1),
    ({"head_pointer_wrong": [0, 1, 2]}, 3),         # fused: a right head points to itself, its edge is not read
])
def test_permutation_pointer_exact_match_is_fused_with_the_head(sort3, kw, right_graphs):
    tb, batch = sort3
    c = sort_counts(tb, batch, **kw)
    assert set(c) == {"output/pred", "graph/output/pred", "graph/exact"}  # pred_mask is scored with pred
    np.testing.assert_array_equal(c["graph/exact"], [right_graphs, 3])
    np.testing.assert_array_equal(c["graph/output/pred"], [right_graphs, 3])
    nodes = int(tb.n_node.sum())
    assert (c["output/pred"][0] == nodes) == (right_graphs == 3)


# ---------------------------------------------------------------------------------------------------------------
# Other types, by hand (graph_correct per slot), and scalar outputs


def hand_graph():
    """Sample 0: nodes 0-2, sample 1: nodes 3-4 (complete graphs), padding node 5 in slot 2."""
    edges = [(s, r) for r in range(3) for s in range(3)] + [(s, r) for r in (3, 4) for s in (3, 4)] + [(5, 5)] * 2
    snd = np.array([e[0] for e in edges], np.int32)
    rcv = np.array([e[1] for e in edges], np.int32)
    ng = np.array([0, 0, 0, 1, 1, 2], np.int32)
    return Graph(jnp.asarray(snd), jnp.asarray(rcv), jnp.asarray(ng), jnp.asarray(ng[rcv]), jnp.array([3, 2, 1]))


j_graph_correct = fast_jit(graph_correct, static_argnums=2)


def test_graph_correct_mask_mask_one_categorical_by_hand():
    g = hand_graph()
    # mask: predicted bits [1, 1, 0 | 0, 1 | 1] vs truth [1, 0, 1 | 0, 1 | 0]: graph 0 wrong, 1 right, padding wrong
    lg = jnp.array([2.0, 0.5, -1.0, -3.0, 0.1, 9.0])
    tr = jnp.array([1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    assert np.asarray(j_graph_correct(lg, tr, ("node", Type.MASK, None), g)).tolist() == [False, True, False]
    # mask_one: graph 0 picks node 1 (truth 1), graph 1 picks the tie 3/4 -> 3 (truth 4)
    lg = jnp.array([0.0, 5.0, 1.0, 2.0, 2.0, 0.0])
    tr = jnp.array([0.0, 1.0, 0.0, 0.0, 1.0, 0.0])
    assert np.asarray(j_graph_correct(lg, tr, ("node", Type.MASK_ONE, None), g))[:2].tolist() == [True, False]
    # node categorical: classes [1, 0, 2 | 0, 1] predicted, truth [1, 0, 2 | 0, 2]
    lc = jnp.eye(3)[jnp.array([1, 0, 2, 0, 1, 0])] * 3.0
    assert np.asarray(j_graph_correct(lc, jnp.array([1, 0, 2, 0, 2, 0]), ("node", Type.CATEGORICAL, 3), g))[
        :2].tolist() == [True, False]
    # graph categorical: one row per graph
    lc = jnp.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert np.asarray(j_graph_correct(lc, jnp.array([1, 1, 0]), ("graph", Type.CATEGORICAL, 2), g)).tolist() == [
        True, False, False]
    # scalar: no exact match
    assert graph_correct(jnp.zeros(6), jnp.zeros(6), ("node", Type.SCALAR, None), g) is None


def test_scalar_outputs_have_no_exact_match(bfs):
    """Scalar outputs are left out of the exact match; a model with scalar outputs only has none (NaN)."""
    tb, batch = bfs
    N = batch.pad_sizes.nodes
    scalar = ("node", Type.SCALAR, None)
    b = batch._replace(outputs={**batch.outputs, "d": jnp.zeros(N)})
    only_scalar = fake_model("bfs", {"d": scalar})
    c = counts_of(only_scalar, Predictions({"d": jnp.ones(N)}, {}), b)
    assert set(c) == {"output/d"}
    s = scores(only_scalar, c)
    assert math.isnan(s["exact"]) and not any(k.startswith("exact/") for k in s)
    # beside a pointer, a badly wrong scalar does not spoil the graphs
    mixed = fake_model("bfs", {"pi": output_probes("bfs")["pi"], "d": scalar})
    logits = pointer_logits(b, tb, "pi", true_parents(tb))
    c = counts_of(mixed, Predictions({"pi": jnp.asarray(logits), "d": jnp.full(N, 7.0)}, {}), b)
    assert c["graph/exact"].tolist() == [3, 3] and "graph/output/d" not in c


def test_scores_exact_keys_and_empty():
    m = fake_model("bfs")
    s = scores(m, {"output/pi": np.array([9.0, 10.0]), "graph/output/pi": np.array([1.0, 4.0]),
                   "graph/exact": np.array([1.0, 4.0])})
    assert s == {"output/pi": 0.9, "score": 0.9, "exact": 0.25, "exact/pi": 0.25}
    assert math.isnan(scores(m, {"output/pi": np.array([0.0, 0.0]), "graph/exact": np.array([0.0, 0.0])})["exact"])


# ---------------------------------------------------------------------------------------------------------------
# The table


def test_format_table_shows_exact_beside_score():
    base = {"family": "er", "graphs": 4, "score": 0.9875, "output/pi": 0.9875, "hint/pi_h": 0.5}
    results = {16: {**base, "exact": 0.75, "exact/pi": 0.75}, 64: dict(base)}  # 64: a result from before 'exact'
    lines = format_table(results, "t").splitlines()
    head = lines[1].split()
    assert head[:5] == ["n", "family", "graphs", "score", "exact"]
    assert head[5:] == ["output/pi", "hint/pi_h"]  # one output: its exact match is the 'exact' column
    assert lines[2].split()[3:5] == ["0.9875", "0.7500"]
    assert lines[3].split()[4] == "nan"
    two = {8: {**base, "exact": 0.5, "output/a": 1.0, "exact/a": 1.0, "exact/pi": 0.5}}
    head = format_table(two).splitlines()[0].split()
    assert head[5:] == ["output/a", "output/pi", "exact/a", "exact/pi", "hint/pi_h"]
    assert format_table(two).splitlines()[1].split()[4] == "0.5000"
