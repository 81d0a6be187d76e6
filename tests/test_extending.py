"""Extension points: registering an algorithm (spec checks) and the executor validator, against hand-made cases."""

import itertools

import numpy as np
import pytest

import nar
from nar.algorithms import register
from nar.algorithms.probing import graph_trajectories, sort_trajectories
from nar.algorithms.validate import check_executor
from nar.specs import NUM_CLASSES, SPECS

IN, OUT, H = "input", "output", "hint"
SORT_INPUTS = {"pos": (IN, "node", "scalar"), "key": (IN, "node", "scalar")}
GRAPH_INPUTS = {"pos": (IN, "node", "scalar"), "A": (IN, "edge", "scalar"), "adj": (IN, "edge", "mask")}
SPEC = {**SORT_INPUTS, "argmin": (OUT, "node", "mask_one"), "best": (H, "node", "mask_one")}
_ids = itertools.count()


def fresh(prefix="t"):
    """A name no test used before (the registry is global and has no removal)."""
    return f"{prefix}_{next(_ids)}_{np.random.default_rng().integers(1 << 30)}"


def running_min(keys, *, corrupt=None):
    """Scan left to right keeping the smallest key so far: T = n steps, hint `best`, output `argmin`."""
    keys = np.asarray(keys)
    num, n = keys.shape
    best = np.minimum.accumulate(keys, axis=1)
    best_idx = np.array([[int(np.argmax(row == b)) for b in bests] for row, bests in zip(keys, best)])
    probes = {"argmin": best_idx[:, -1].astype(np.int32), "best": best_idx.reshape(-1).astype(np.int32)}
    if corrupt:
        probes = corrupt(probes, n)
    return sort_trajectories(running_min.name, keys, np.full(num, n), probes)


def registered(run, spec=SPEC, **kwargs):
    name = fresh()
    running_min.name = name

    def executor(keys):
        running_min.name = name
        return run(keys)

    register(name, executor, spec, kind="sort", **kwargs)
    return name


def test_builtin_executors_pass_the_validator():
    rng = np.random.default_rng(0)
    graphs = [(rng.random((n, n)) < 0.4) * rng.uniform(0.1, 1.0, (n, n)) for n in (1, 4, 7)]
    for name in ("bfs", "bellman_ford"):
        assert check_executor(name, [{"A": A, "s": len(A) - 1} for A in graphs])["samples"] == 3
    assert check_executor("dfs", [{"A": A} for A in graphs])["steps_max"] == 21  # DFS: T = 3n
    for name in ("insertion_sort", "bubble_sort", "heapsort", "quicksort"):
        assert check_executor(name, [{"key": rng.random(n)} for n in (1, 5, 5, 8)])["samples"] == 4


def test_registered_algorithm_runs_like_a_builtin():
    name = registered(running_min)
    t = nar.execute(name, key=np.array([0.4, 0.9, 0.1, 0.3]))
    assert int(np.argmax(t.outputs["argmin"])) == 2  # hand-computed
    assert [int(np.argmax(r)) for r in t.hints["best"]] == [0, 0, 2, 2]
    assert check_executor(name, [{"key": np.random.default_rng(1).random(n)} for n in (1, 3, 6)]) == {
        "samples": 3, "steps_min": 1, "steps_max": 6}
    assert nar.SPECS[name]["argmin"] == ("output", "node", "mask_one")
    ds = nar.data.generate(name, 10, 6, seed=0)
    assert len(ds) == 10 and ds[0].length == 6
    assert nar.ModelConfig(algorithm=name).algorithm == name
    with pytest.raises(ValueError, match="already registered"):
        register(name, running_min, SPEC, kind="sort")


@pytest.mark.parametrize("corrupt, message", [
    (lambda p, n: {**p, "argmin": p["argmin"] + n}, "'argmin' holds 5, out of range \\[0, 3\\)"),
    (lambda p, n: {**p, "best": np.where(np.arange(p["best"].size) == 1, -1, p["best"])}, "'best' holds -1"),
])
def test_validator_catches_out_of_range_indices(corrupt, message):
    name = registered(lambda keys: running_min(keys, corrupt=corrupt))
    with pytest.raises(ValueError, match=message):
        check_executor(name, [{"key": np.array([0.3, 0.2, 0.1])}])


def test_validator_catches_a_mask_outside_0_1():
    spec = {**SPEC, "seen": (H, "node", "mask")}
    name = registered(lambda keys: running_min(keys, corrupt=lambda p, n: {
        **p, "seen": np.full(p["best"].size * n, 2, np.uint8)}), spec)
    with pytest.raises(ValueError, match="hint 'seen': a mask holds only 0 and 1"):
        check_executor(name, [{"key": np.array([0.3, 0.2, 0.1])}])


def test_validator_catches_nondeterminism_and_batch_mismatch():
    calls = itertools.count()

    def shifting(keys):  # every call answers differently: not a pure function of its inputs
        k = next(calls)
        return running_min(keys, corrupt=lambda p, n: {**p, "argmin": (p["argmin"] + k) % n})

    name = registered(shifting)
    with pytest.raises(ValueError, match="differ"):
        check_executor(name, [{"key": np.array([0.3, 0.2, 0.1])}])


@pytest.mark.parametrize("spec, kwargs, message", [
    ({k: v for k, v in SPEC.items() if k != "key"}, {}, "needs the input probe 'key'"),
    ({**SPEC, "w": (IN, "edge", "scalar")}, {}, "sort algorithm has no edges"),
    ({**GRAPH_INPUTS, "pi": (OUT, "node", "pointer"), "e": (H, "edge", "mask")}, {"kind": "graph"},
     "edge probe 'e' must be an input"),
    ({**SPEC, "c": (H, "node", "categorical")}, {}, "needs its number of classes"),
    ({**SPEC, "c": (H, "node", "categorical")}, {"num_classes": {"c": 1}}, "at least 2 classes"),
    ({**SPEC, "m": (H, "node", "mask")}, {"num_classes": {"m": 3}}, "not categorical"),
    ({**SPEC, "x": (H, "node", "vector")}, {}, "type 'vector'"),
    ({**SPEC, "x": (H, "graph", "pointer")}, {}, "must be on nodes"),
    ({**SPEC, "x": ("during", "node", "mask")}, {}, "stage 'during'"),
    ({k: v for k, v in SPEC.items() if k != "best"}, {}, "at least one hint"),
    (SPEC, {"needs_source": True}, "only graph algorithms take a source"),
    (SPEC, {"kind": "tree"}, "kind must be one of"),
])
def test_register_refuses_bad_specs(spec, kwargs, message):
    name = fresh("bad")
    kwargs = {"kind": "sort", **kwargs}
    with pytest.raises(ValueError, match=message):
        register(name, running_min, spec, **kwargs)
    assert name not in nar.ALGORITHMS and name not in SPECS  # nothing half-registered


def test_categorical_class_counts_are_registered():
    name = registered(running_min, {**SPEC, "phase": (H, "graph", "categorical")}, num_classes={"phase": 3})
    assert NUM_CLASSES[(name, "phase")] == 3


def one_hop(graphs, sources):
    """Nodes within one edge of the source: hint `near_h` = {s} then {s} + out-neighbours (T = 2), output `near`."""
    gid, offset = graphs.graph_of_node, graphs.node_offset
    near0 = np.zeros(int(graphs.n_node.sum()), bool)
    near0[offset + sources] = True
    near1 = near0.copy()
    live = (graphs.weights > 0) & near0[graphs.senders]
    near1[graphs.receivers[live]] = True
    n_step = np.full(graphs.n_node.size, 2)
    hints = np.concatenate([np.concatenate([h[gid == g] for h in (near0, near1)]) for g in range(gid.max() + 1)])
    return graph_trajectories(one_hop.name, graphs, n_step, {
        "s": np.asarray(sources, np.int32), "near": near1.astype(np.uint8), "near_h": hints.astype(np.uint8)})


def test_registered_graph_algorithm_generates_batches_and_trains(tmp_path):
    """A graph algorithm of one's own: drawn with its own sampler defaults (directed here), checked against a
    brute-force neighbourhood, batched on its input graph and trained a few steps like a built-in one."""
    name = one_hop.name = fresh("hop")
    spec = {**GRAPH_INPUTS, "s": (IN, "node", "mask_one"), "near": (OUT, "node", "mask"),
            "near_h": (H, "node", "mask")}
    register(name, one_hop, spec, kind="graph", needs_source=True, directed=True)
    assert check_executor(name, [{"A": np.eye(3, k=1), "s": 0}, {"A": np.ones((4, 4)), "s": 2}])["steps_max"] == 2
    ds = nar.data.generate(name, 12, 8, seed=3)
    assert ds.config["options"]["directed"] is True
    asymmetric = 0
    for i in range(len(ds)):
        t = ds[i]
        A, s = t.inputs["A"], int(np.argmax(t.inputs["s"]))
        asymmetric += int(np.any((A > 0) != (A.T > 0)))
        want = (A[s] > 0) | (np.arange(len(A)) == s)  # brute force: the source and its out-neighbours
        assert np.array_equal(t.outputs["near"].astype(bool), want)
    assert asymmetric > 0  # directed graphs were drawn, not CLRS's undirected default
    config = nar.load_config(model={"algorithm": name, "processor": "mpnn", "hidden": 8},
                             train={"steps": 3, "batch_size": 4, "sizes": [5, 8], "eval_every": 3,
                                    "val_samples": 4, "checkpoint_every": 3, "log_every": 1})
    summary = nar.train(config, tmp_path / "run", progress=False)
    assert summary["steps"] == 3 and np.isfinite(summary["best_val_score"])
