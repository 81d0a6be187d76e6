"""Dataset generation and TrajectoryBatch tests: determinism, range splitting, re-execution, distributions,
dm-clrs stream replay, bad requests and the compact layout."""

import networkx as nx
import numpy as np
import pytest

from nar.algorithms import execute, get_algorithm
from nar.data import BLOCK, CLRS_TRAIN_P, CLRS_TRAIN_SIZES, clrs_train, generate, resolve_config
from nar.specs import GRAPH_ALGORITHMS, NUM_CLASSES, SORTING_ALGORITHMS, SPECS, Location, Stage, Type
from nar.trajectory import TrajectoryBatch

ALGORITHMS = GRAPH_ALGORITHMS + SORTING_ALGORITHMS
FIELDS = ("n_node", "n_step", "n_edge", "senders", "receivers")


# ---------------------------------------------------------------------------------------------------------------
# Helpers


def assert_batches_identical(a: TrajectoryBatch, b: TrajectoryBatch):
    """Same algorithm and byte-identical arrays (dtype and shape included)."""
    assert a.algorithm == b.algorithm
    assert set(a.probes) == set(b.probes)
    pairs = [(f, getattr(a, f), getattr(b, f)) for f in FIELDS]
    pairs += [(f"probe {k}", a.probes[k], b.probes[k]) for k in a.probes]
    for name, x, y in pairs:
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert x.tobytes() == y.tobytes(), name


def assert_same_trajectory(t, r):
    """Equal probe for probe, bit for bit."""
    assert t.algorithm == r.algorithm
    for stage in ("inputs", "hints", "outputs"):
        got, want = getattr(t, stage), getattr(r, stage)
        assert set(got) == set(want), stage
        for name in got:
            assert got[name].dtype == want[name].dtype and got[name].shape == want[name].shape, (stage, name)
            np.testing.assert_array_equal(got[name], want[name], err_msg=f"{stage} {name}")


def rerun(t):
    """Execute a stored trajectory's own inputs again."""
    algo = get_algorithm(t.algorithm)
    if algo.kind == "sort":
        return execute(t.algorithm, key=t.inputs["key"])
    inputs = {"A": t.inputs["A"]}
    if algo.needs_source:
        inputs["s"] = int(np.argmax(t.inputs["s"]))
    return execute(t.algorithm, **inputs)


def stacked_adjacency(ds):
    """[S, n, n] adjacency of a same-size graph dataset."""
    return np.stack([t.inputs["A"] for t in ds])


def off_diagonal(A):
    return A[:, ~np.eye(A.shape[-1], dtype=bool)]


# ---------------------------------------------------------------------------------------------------------------
# Determinism and purity


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_generate_is_deterministic(algorithm):
    a = generate(algorithm, 20, (4, 7), 3)
    b = generate(algorithm, 20, (4, 7), 3)
    assert_batches_identical(a.trajectories, b.trajectories)
    assert a.config == b.config


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_different_seeds_differ(algorithm):
    name = "key" if get_algorithm(algorithm).kind == "sort" else "A"
    a, b = generate(algorithm, 8, 8, 0), generate(algorithm, 8, 8, 1)
    assert not np.array_equal(a.trajectories.probes[name], b.trajectories.probes[name])
    # Blocks have their own streams: block 1 does not repeat block 0.
    blocks = generate(algorithm, 8, 8, 0, start=BLOCK)
    assert not np.array_equal(a.trajectories.probes[name], blocks.trajectories.probes[name])


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_any_range_equals_the_same_slice_of_the_whole(algorithm):
    whole = generate(algorithm, BLOCK + 12, (4, 7, 11), 9)
    for start, count in [(0, 1), (5, 5), (BLOCK - 4, 10), (BLOCK, 3), (BLOCK + 11, 1)]:
        part = generate(algorithm, count, (4, 7, 11), 9, start=start)
        assert len(part) == count
        for k in range(count):
            assert_same_trajectory(part[k], whole[start + k])
        assert_batches_identical(part.trajectories, whole.trajectories.select(range(start, start + count)))


@pytest.mark.parametrize("algorithm", ["bfs", "heapsort"])
def test_workers_give_identical_bytes(algorithm):
    kwargs = dict(num_samples=3 * BLOCK + 5, num_nodes=(4, 7), seed=5, start=10)
    serial = generate(algorithm, **kwargs, workers=1)
    parallel = generate(algorithm, **kwargs, workers=2)
    assert_batches_identical(serial.trajectories, parallel.trajectories)
    assert serial.config == parallel.config


# ---------------------------------------------------------------------------------------------------------------
# Every stored trajectory is its inputs' execution

REEXECUTION_CASES = [(a, "mixed", dict(num_samples=6, num_nodes=(4, 7, 11), seed=0)) for a in ALGORITHMS]
REEXECUTION_CASES += [(a, "clrs_train", None) for a in ALGORITHMS]
REEXECUTION_CASES += [(a, family, dict(num_samples=4, num_nodes=(9, 20), seed=2, graph=family, **opts))
                      for a in GRAPH_ALGORITHMS
                      for family, opts in [("sparse_er", {"degree": 3}), ("grid", {}), ("tree", {}),
                                           ("watts_strogatz", {})]]
REEXECUTION_CASES += [("bfs", "clrs_stream", dict(num_samples=3, num_nodes=16, seed=1, stream="clrs")),
                      ("bellman_ford", "p_tuple", dict(num_samples=4, num_nodes=10, seed=4, p=(0.2, 0.8)))]


@pytest.mark.parametrize("algorithm,case,kwargs", REEXECUTION_CASES, ids=lambda x: x if isinstance(x, str) else "")
def test_trajectories_equal_reexecution_of_their_inputs(algorithm, case, kwargs):
    ds = clrs_train(algorithm, 6, 1) if kwargs is None else generate(algorithm, **kwargs)
    # Weights are drawn float32-representable, so the stored A reproduces even Bellman-Ford's d bit for bit.
    for t in ds:
        assert_same_trajectory(t, rerun(t))


# ---------------------------------------------------------------------------------------------------------------
# TrajectoryBatch layout


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_select_and_concatenate_round_trip(algorithm):
    ds = clrs_train(algorithm, 12, 0)
    first, second = [0, 3, 7, 3], [11, 1, -2]
    joined = TrajectoryBatch.concatenate([ds.trajectories.select(first), ds.trajectories.select(second)])
    assert len(joined) == len(first) + len(second)
    for k, i in enumerate(first + second):
        assert_same_trajectory(joined.trajectory(k), ds[i])
    assert_batches_identical(ds.trajectories.select(range(len(ds))), ds.trajectories)
    assert len(ds.trajectories.select([])) == 0


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_trajectory_shapes_and_encodings(algorithm):
    ds = clrs_train(algorithm, 10, 0)
    batch = ds.trajectories
    for i, t in enumerate(ds):
        n, T = int(batch.n_node[i]), int(batch.n_step[i])
        assert t.num_nodes == n and t.length == T >= 1
        for name, (stage, location, type_) in SPECS[algorithm].items():
            value = {Stage.INPUT: t.inputs, Stage.HINT: t.hints, Stage.OUTPUT: t.outputs}[stage][name]
            shape = {Location.NODE: (n,), Location.EDGE: (n, n), Location.GRAPH: ()}[location]
            if stage == Stage.HINT:
                shape = (T,) + shape
            if type_ == Type.CATEGORICAL:
                shape += (NUM_CLASSES[algorithm, name],)
            assert value.shape == shape, (name, value.shape, shape)
            if type_ in (Type.MASK_ONE, Type.CATEGORICAL):
                rows = value.reshape(-1, value.shape[-1])
                assert set(np.unique(rows)) <= {0.0, 1.0}, name
                np.testing.assert_array_equal(rows.sum(axis=1), 1.0, err_msg=name)
            elif type_ == Type.MASK:
                assert set(np.unique(value)) <= {0.0, 1.0}, name
            elif type_ in (Type.POINTER, Type.SHOULD_BE_PERMUTATION):
                assert value.min() >= 0 and value.max() < n, name
        np.testing.assert_array_equal(t.inputs["pos"], (np.arange(n) / n).astype(np.float32))
        if algorithm in GRAPH_ALGORITHMS:
            A, adj = t.inputs["A"], t.inputs["adj"]
            np.testing.assert_array_equal(adj, ((A + np.eye(n)) != 0).astype(np.float32))


@pytest.mark.parametrize("algorithm", ["bfs", "dfs", "heapsort"])
def test_flat_layout_lengths(algorithm):
    batch = clrs_train(algorithm, 10, 0).trajectories
    n, T, e = (batch.n_node.astype(int), batch.n_step.astype(int), batch.n_edge.astype(int))
    assert batch.senders.shape == batch.receivers.shape == (e.sum(),)
    for name, (stage, location, type_) in SPECS[algorithm].items():
        per_node = location == Location.NODE and type_ != Type.MASK_ONE
        if location == Location.EDGE:
            want = e.sum()
        elif stage == Stage.HINT:
            want = (T * n).sum() if per_node else T.sum()
        else:
            want = n.sum() if per_node else len(batch)
        assert batch.probes[name].shape == (want,), name
    if algorithm in GRAPH_ALGORITHMS:
        # Every sample lists its diagonal (adj = A + I), with local node ids.
        starts = np.concatenate([[0], np.cumsum(e)])
        for i in range(len(batch)):
            s, r = batch.senders[starts[i]:starts[i + 1]], batch.receivers[starts[i]:starts[i + 1]]
            assert s.min() >= 0 and r.min() >= 0 and s.max() < n[i] and r.max() < n[i]
            assert sorted(s[s == r].tolist()) == list(range(n[i]))


def test_batch_constructor_validates_probes():
    batch = generate("bfs", 3, 5, 0).trajectories
    fields = [getattr(batch, f) for f in FIELDS]
    missing = {k: v for k, v in batch.probes.items() if k != "pi"}
    with pytest.raises(ValueError, match="spec"):
        TrajectoryBatch("bfs", *fields, missing)
    with pytest.raises(ValueError, match="spec"):
        TrajectoryBatch("bfs", *fields, {**batch.probes, "extra": batch.probes["pi"]})
    for name in ("reach_h", "A", "s"):
        short = {**batch.probes, name: batch.probes[name][:-1]}
        with pytest.raises(ValueError, match=name):
            TrajectoryBatch("bfs", *fields, short)
    TrajectoryBatch("bfs", *fields, dict(batch.probes))


def test_out_of_range_indices_raise():
    batch = generate("insertion_sort", 4, 5, 0).trajectories
    for i in (4, -5, 100):
        with pytest.raises(IndexError):
            batch.trajectory(i)
    for idx in ([0, 4], [-5]):
        with pytest.raises(IndexError):
            batch.select(idx)
    assert_same_trajectory(batch.trajectory(-1), batch.trajectory(3))


def test_concatenate_rejects_empty_and_mixed():
    with pytest.raises(ValueError, match="empty"):
        TrajectoryBatch.concatenate([])
    with pytest.raises(ValueError, match="different algorithms"):
        TrajectoryBatch.concatenate([generate("bfs", 2, 4).trajectories, generate("dfs", 2, 4).trajectories])


# ---------------------------------------------------------------------------------------------------------------
# Distributions


def test_default_bfs_graphs_are_clrs_er():
    A = stacked_adjacency(generate("bfs", 300, 16, 0))
    assert set(np.unique(A)) <= {0.0, 1.0}
    np.testing.assert_array_equal(A, A.transpose(0, 2, 1))
    # An off-diagonal entry survives both Bernoulli(0.5) draws; a self-loop needs one.
    assert abs(off_diagonal(A).mean() - 0.25) < 0.03
    assert abs(np.diagonal(A, axis1=1, axis2=2).mean() - 0.5) < 0.03


def test_default_dfs_graphs_are_directed_er():
    A = stacked_adjacency(generate("dfs", 200, 16, 0))
    assert abs(off_diagonal(A).mean() - 0.5) < 0.03
    assert (A != A.transpose(0, 2, 1)).any()


def test_default_bellman_ford_weights():
    A = stacked_adjacency(generate("bellman_ford", 100, 12, 0))
    np.testing.assert_array_equal(A, A.transpose(0, 2, 1))
    w = A[A != 0]
    # sqrt(w * w.T + 1e-3) of uniform [0, 1) weights (float32-rounded).
    assert w.min() >= np.float32(np.sqrt(1e-3)) and w.max() <= np.float32(np.sqrt(1 + 1e-3))
    assert abs(off_diagonal(A != 0).mean() - 0.25) < 0.03


@pytest.mark.parametrize("algorithm", ["bfs", "insertion_sort", "heapsort"])
def test_clrs_train_cycles_sizes_by_index(algorithm):
    assert CLRS_TRAIN_SIZES == (4, 7, 11, 13, 16)
    full = clrs_train(algorithm, 12, 0)
    np.testing.assert_array_equal(full.trajectories.n_node, [CLRS_TRAIN_SIZES[i % 5] for i in range(12)])
    shifted = clrs_train(algorithm, 4, 0, start=3)
    np.testing.assert_array_equal(shifted.trajectories.n_node, [13, 16, 4, 7])


def test_clrs_train_draws_density_per_graph():
    ds = clrs_train("bfs", 1000, 0)
    density = np.array([off_diagonal(t.inputs["A"][None]).mean() for t in ds if t.num_nodes == 16])
    # E[p^2] over p uniform on 0.1..0.9, within 4 standard errors; the spread shows p varies per graph.
    assert abs(density.mean() - np.mean(np.square(CLRS_TRAIN_P))) < 4 * density.std() / np.sqrt(density.size)
    assert density.std() > 0.15


@pytest.mark.parametrize("algorithm", ["bfs", "bellman_ford"])
def test_sources_are_uniform(algorithm):
    ds = generate(algorithm, 800, 8, 0)
    counts = np.bincount([int(np.argmax(t.inputs["s"])) for t in ds], minlength=8)
    assert counts.sum() == 800 and counts.min() > 65 and counts.max() < 135


@pytest.mark.parametrize("low,high", [(0.0, 1.0), (-3.0, -1.0), (10.0, 10.5)])
def test_sort_keys_lie_in_range(low, high):
    options = {} if (low, high) == (0.0, 1.0) else {"low": low, "high": high}
    keys = generate("insertion_sort", 50, 8, 0, **options).trajectories.probes["key"]
    assert keys.min() >= low and keys.max() < high
    span = high - low
    assert keys.min() < low + 0.05 * span and keys.max() > high - 0.05 * span
    assert abs(keys.mean() - (low + high) / 2) < 0.05 * span


def test_grid_family_is_the_row_major_grid():
    for n in (10, 12):
        rows = int(np.sqrt(n))
        cols = -(-n // rows)
        want = nx.Graph()
        want.add_nodes_from(range(n))
        want.add_edges_from((r * cols + c, rr * cols + cc) for (r, c), (rr, cc) in nx.grid_2d_graph(rows, cols).edges
                            if r * cols + c < n and rr * cols + cc < n)
        for t in generate("bfs", 3, n, 0, graph="grid"):
            np.testing.assert_array_equal(t.inputs["A"], nx.to_numpy_array(want, nodelist=range(n)))


def test_tree_family_gives_trees():
    for t in generate("bfs", 10, (5, 17), 0, graph="tree"):
        A = t.inputs["A"]
        np.testing.assert_array_equal(A, A.T)
        assert nx.is_tree(nx.from_numpy_array(A))


def test_watts_strogatz_family_keeps_the_edge_count():
    for t in generate("dfs", 10, 20, 0, graph="watts_strogatz"):
        A = t.inputs["A"]
        # Default k=4 ring of 2n undirected edges; dfs orients each one way.
        assert np.diagonal(A).sum() == 0 and (A * A.T).sum() == 0
        assert A.sum() == 2 * 20
    for t in generate("bfs", 10, 20, 0, graph="watts_strogatz"):
        np.testing.assert_array_equal(t.inputs["A"], t.inputs["A"].T)
        assert t.inputs["A"].sum() == 4 * 20


def test_sparse_er_family_has_the_requested_degree():
    A = stacked_adjacency(generate("bfs", 100, 40, 0, graph="sparse_er", degree=3))
    np.testing.assert_array_equal(A, A.transpose(0, 2, 1))
    assert np.diagonal(A, axis1=1, axis2=2).sum() == 0
    assert abs(A.sum(axis=2).mean() - 3) < 0.15


# ---------------------------------------------------------------------------------------------------------------
# dm-clrs stream replay


def test_clrs_stream_bfs_seed_1_matches_dm_clrs():
    # Cross-checked against dm-clrs 2.0.3 (BfsSampler, seed 1, n=16) on 2026-11-23.
    t = generate("bfs", 1, 16, 1, stream="clrs")[0]
    assert np.flatnonzero(t.inputs["A"][0]).tolist() == [11, 13]
    assert int(np.argmax(t.inputs["s"])) == 11


def test_clrs_stream_sort_keys_follow_the_random_state():
    rs = np.random.RandomState(1)
    want = [rs.uniform(0.0, 1.0, size=16) for _ in range(3)]
    for t, key in zip(generate("quicksort", 3, 16, 1, stream="clrs"), want):
        np.testing.assert_array_equal(t.inputs["key"], key.astype(np.float32))


def test_clrs_stream_ranges_are_suffixes_of_the_sequence():
    whole = generate("bellman_ford", 5, 10, 1, stream="clrs")
    part = generate("bellman_ford", 2, 10, 1, stream="clrs", start=3)
    for k in range(2):
        assert_same_trajectory(part[k], whole[3 + k])


@pytest.mark.parametrize("kwargs", [
    dict(algorithm="bfs", num_nodes=(4, 7)),
    dict(algorithm="insertion_sort", num_nodes=(4, 7)),
    dict(algorithm="bfs", num_nodes=16, graph="sparse_er", degree=3),
    dict(algorithm="dfs", num_nodes=16, graph="grid"),
    dict(algorithm="bfs", num_nodes=16, directed=True),
])
def test_clrs_stream_rejects_what_dm_clrs_cannot_replay(kwargs):
    with pytest.raises(ValueError, match="stream='clrs'"):
        generate(num_samples=2, seed=1, stream="clrs", **kwargs)


# ---------------------------------------------------------------------------------------------------------------
# Bad requests


@pytest.mark.parametrize("args,kwargs,match", [
    (("nope", 4, 8), {}, "unknown algorithm"),
    (("bfs", 4, 8), {"graph": "nope"}, "unknown graph family"),
    (("bfs", 4, 8), {"graph": "sparse_er", "degre": 3}, "degre"),
    (("bfs", 4, 8), {"colour": 1}, "colour"),
    (("insertion_sort", 4, 8), {"degree": 3}, "degree"),
    (("insertion_sort", 4, 8), {"graph": "er"}, "graph"),
    (("bfs", 4, 0), {}, "num_nodes"),
    (("bfs", 4, (4, 0)), {}, "num_nodes"),
    (("bfs", 4, ()), {}, "num_nodes"),
    (("bfs", 0, 8), {}, "num_samples"),
    (("bfs", -1, 8), {}, "num_samples"),
    (("bfs", 4, 8), {"start": -1}, "start"),
    (("insertion_sort", 4, 8), {"low": 1.0, "high": 1.0}, "low"),
    (("heapsort", 4, 8), {"low": 2.0, "high": 1.0}, "low"),
    (("bellman_ford", 4, 8), {"low": 1.0, "high": 0.5}, "low"),
    (("bfs", 4, 8), {"stream": "other"}, "stream"),
])
def test_bad_requests_raise_value_error_naming_the_problem(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate(*args, **kwargs)


def test_resolve_config_fills_clrs_defaults():
    bfs = resolve_config("bfs", 10, 16, 1)
    assert bfs["graph"] == "er" and bfs["options"] == {"directed": False, "weighted": False, "p": 0.5}
    assert bfs["num_nodes"] == [16] and bfs["stream"] == "nar" and bfs["start"] == 0
    assert resolve_config("dfs", 10, 16, 1)["options"] == {"directed": True, "weighted": False, "p": 0.5}
    assert resolve_config("bellman_ford", 10, 16, 1)["options"] == {"directed": False, "weighted": True, "p": 0.5}
    assert resolve_config("quicksort", 10, (4, 7), 1)["options"] == {"low": 0.0, "high": 1.0}
    assert resolve_config("quicksort", 10, (4, 7), 1)["graph"] is None


def test_batch_rejects_edge_arrays_that_disagree_with_n_edge():
    b = generate("bfs", 2, 5, 0).trajectories
    with pytest.raises(ValueError, match="senders/receivers"):
        TrajectoryBatch(b.algorithm, b.n_node, b.n_step, b.n_edge, b.senders[:-1], b.receivers, b.probes)


@pytest.mark.parametrize("p,match", [((0.5, 2.0), "p must lie"), ((), "non-empty")])
def test_every_density_of_a_p_tuple_is_checked_up_front(p, match):
    with pytest.raises(ValueError, match=match):
        generate("bfs", 4, 8, 0, p=p)


def test_content_hash_names_the_data_exactly():
    """Equal data hash equally (regenerated, or copied sample by sample); any change to a value, to the sample
    order or to an array's dtype changes the hash."""
    tb = generate("bellman_ford", 6, 8, seed=5).trajectories
    h = tb.content_hash()
    assert len(h) == 64 and int(h, 16) >= 0
    assert generate("bellman_ford", 6, 8, seed=5).trajectories.content_hash() == h
    assert tb.select(range(len(tb))).content_hash() == h
    assert generate("bellman_ford", 6, 8, seed=6).trajectories.content_hash() != h
    assert tb.select([1, 0, 2, 3, 4, 5]).content_hash() != h
    changed = dict(tb.probes)
    changed["d"] = changed["d"].copy()
    changed["d"][3] += 1.0
    assert TrajectoryBatch(tb.algorithm, tb.n_node, tb.n_step, tb.n_edge, tb.senders, tb.receivers,
                           changed).content_hash() != h
    widened = TrajectoryBatch(tb.algorithm, tb.n_node.astype(np.int64), tb.n_step, tb.n_edge, tb.senders,
                              tb.receivers, tb.probes)
    assert widened.content_hash() != h
