"""Tests for the graph family samplers: structural truths checked independently (networkx, statistics)."""

import time

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nar.data.graphs import (
    GRAPH_FAMILIES,
    EdgeList,
    clrs_er_dense,
    clrs_stream_inputs,
    from_dense,
    sample_graph,
    to_dense,
)

FAMILIES = sorted(GRAPH_FAMILIES)
SELF_LOOP_FAMILIES = {"er"}
ORIENTED_SKELETON_FAMILIES = {"watts_strogatz", "grid", "tree"}  # directed=True orients each undirected edge.


def _degrees(g: EdgeList) -> np.ndarray:
    return np.bincount(g.senders, minlength=g.n)


def _undirected_nx(g: EdgeList) -> nx.Graph:
    graph = nx.Graph()
    graph.add_nodes_from(range(g.n))
    graph.add_edges_from(zip(g.senders.tolist(), g.receivers.tolist()))
    return graph


# --- er ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.5, 0.3])
def test_er_undirected_density_is_p_squared_off_diagonal_and_p_on_diagonal(p):
    n = 400
    a = to_dense(sample_graph("er", np.random.default_rng(0), n, p=p))
    off = ~np.eye(n, dtype=bool)
    # Off-diagonal: 159,600 Bernoulli(p^2) entries (sd < 0.002); diagonal: 400 Bernoulli(p) (sd < 0.03).
    assert abs((a[off] != 0).mean() - p**2) < 0.01
    assert abs((np.diag(a) != 0).mean() - p) < 0.1


def test_er_directed_density_is_p_everywhere():
    a = to_dense(sample_graph("er", np.random.default_rng(1), 300, p=0.2, directed=True))
    assert abs((a != 0).mean() - 0.2) < 0.01
    assert not np.array_equal(a, a.T)


def test_er_undirected_weighted_is_symmetric_with_clrs_weight_range():
    a = to_dense(sample_graph("er", np.random.default_rng(2), 200, weighted=True))
    np.testing.assert_array_equal(a, a.T)
    w = a[a != 0]
    # sqrt(w1 * w2 + 1e-3) with w1, w2 in [0, 1).
    assert w.min() >= np.sqrt(1e-3) and w.max() < np.sqrt(1 + 1e-3)


def test_er_directed_weights_stay_raw_uniform():
    g = sample_graph("er", np.random.default_rng(3), 200, directed=True, weighted=True, low=2.0, high=5.0)
    assert g.weights.min() >= 2.0 and g.weights.max() < 5.0
    assert abs(g.weights.mean() - 3.5) < 0.05


def test_er_acyclic_is_a_dag_with_half_the_pairs_at_rate_p():
    n, p = 200, 0.3
    g = sample_graph("er", np.random.default_rng(4), n, p=p, directed=True, acyclic=True)
    graph = nx.DiGraph(list(zip(g.senders.tolist(), g.receivers.tolist())))
    assert nx.is_directed_acyclic_graph(graph)
    assert abs(g.num_edges / (n * (n - 1) / 2) - p) < 0.02
    # The permutation hides the topological order: some edges must point from a higher to a lower id.
    assert np.any(g.senders > g.receivers)


# --- sparse_er --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("directed", [False, True])
def test_sparse_er_mean_degree_matches_and_has_no_self_loops(directed):
    n, degree = 20_000, 5.0
    g = sample_graph("sparse_er", np.random.default_rng(5), n, degree=degree, directed=directed)
    # Out-degree: each node has n-1 candidate neighbours at rate degree/(n-1); sd of the mean is ~0.02.
    assert abs(_degrees(g).mean() - degree) < 0.1
    assert not np.any(g.senders == g.receivers)


def test_sparse_er_undirected_is_symmetric_with_equal_weights():
    g = sample_graph("sparse_er", np.random.default_rng(6), 3000, weighted=True)
    a = to_dense(g)
    np.testing.assert_array_equal(a, a.T)


@given(n=st.integers(1, 40), directed=st.booleans())
@settings(max_examples=30, deadline=None)
def test_sparse_er_saturates_to_the_complete_graph(n, directed):
    g = sample_graph("sparse_er", np.random.default_rng(n), n, degree=n, directed=directed)
    expected = np.ones((n, n)) - np.eye(n)
    if directed:
        assert g.num_edges == n * (n - 1)
    else:
        np.testing.assert_array_equal(to_dense(g), expected)


def test_sparse_er_scales_without_dense_matrix():
    start = time.perf_counter()
    g = sample_graph("sparse_er", np.random.default_rng(7), 65_536, degree=5, weighted=True)
    # An O(n^2) implementation would need 4e9 entries here; a generous bound catches that.
    assert time.perf_counter() - start < 5.0
    assert abs(_degrees(g).mean() - 5) < 0.1


# --- watts_strogatz ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 4, 6])
def test_watts_strogatz_lattice_has_degree_k(k):
    n = 50
    g = sample_graph("watts_strogatz", np.random.default_rng(8), n, k=k, beta=0.0)
    assert _degrees(g).sum() == n * k
    assert np.all(_degrees(g) == k)
    assert nx.is_connected(_undirected_nx(g))


def test_watts_strogatz_rewiring_keeps_edge_count_and_simplicity():
    n, k = 2000, 6
    lattice = sample_graph("watts_strogatz", np.random.default_rng(9), n, k=k, beta=0.0)
    g = sample_graph("watts_strogatz", np.random.default_rng(9), n, k=k, beta=0.5)
    assert _degrees(g).sum() == n * k
    assert not np.any(g.senders == g.receivers)
    a = to_dense(g)
    np.testing.assert_array_equal(a, a.T)
    # About half the edges moved; a moved edge rarely lands back on a lattice pair.
    kept = (to_dense(lattice) * a).sum() / (n * k)
    assert 0.4 < kept < 0.6


def test_watts_strogatz_small_n_is_complete():
    g = sample_graph("watts_strogatz", np.random.default_rng(10), 4, k=4, beta=0.0)
    np.testing.assert_array_equal(to_dense(g), np.ones((4, 4)) - np.eye(4))


# --- grid -------------------------------------------------------------------------------------------------


@given(n=st.integers(1, 150))
@settings(max_examples=40, deadline=None)
def test_grid_is_the_row_major_prefix_of_a_networkx_grid(n):
    rows = int(np.floor(np.sqrt(n)))
    cols = -(-n // rows)
    ref = nx.convert_node_labels_to_integers(nx.grid_2d_graph(rows, cols), ordering="sorted")
    ref = ref.subgraph(range(n))
    g = sample_graph("grid", np.random.default_rng(n), n)
    got = {(s, r) for s, r in zip(g.senders.tolist(), g.receivers.tolist())}
    assert got == {(s, r) for s, r in ref.edges} | {(r, s) for s, r in ref.edges}


def test_grid_degrees_on_a_full_rectangle():
    g = sample_graph("grid", np.random.default_rng(11), 20)  # 4 rows x 5 columns.
    deg = _degrees(g).reshape(4, 5)
    assert deg[0, 0] == deg[0, -1] == deg[-1, 0] == deg[-1, -1] == 2
    assert np.all(deg[1:-1, 1:-1] == 4)
    assert np.all(deg[0, 1:-1] == 3)
    assert g.n == 20 and g.num_edges == 2 * (4 * 4 + 3 * 5)


# --- tree -------------------------------------------------------------------------------------------------


@given(n=st.integers(1, 300), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=40, deadline=None)
def test_tree_is_a_spanning_tree(n, seed):
    g = sample_graph("tree", np.random.default_rng(seed), n)
    assert g.num_edges == 2 * (n - 1)
    assert nx.is_tree(_undirected_nx(g))


def test_tree_directed_keeps_one_direction_per_edge():
    g = sample_graph("tree", np.random.default_rng(12), 100, directed=True)
    assert g.num_edges == 99
    assert nx.is_tree(_undirected_nx(g))


# --- shared invariants ------------------------------------------------------------------------------------


@given(family=st.sampled_from(FAMILIES), n=st.integers(1, 60), directed=st.booleans(), weighted=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
@settings(max_examples=150, deadline=None)
def test_every_family_yields_sorted_simple_edges_with_weights_in_range(family, n, directed, weighted, seed):
    g = sample_graph(family, np.random.default_rng(seed), n, directed=directed, weighted=weighted,
                     low=0.5, high=2.0)
    assert g.senders.dtype == g.receivers.dtype == np.int32 and g.weights.dtype == np.float64
    keys = g.senders.astype(np.int64) * n + g.receivers
    assert np.all(np.diff(keys) > 0)
    if weighted:
        lo = np.sqrt(0.25 + 1e-3) if family == "er" and not directed else 0.5
        hi = np.sqrt(4.0 + 1e-3) if family == "er" and not directed else 2.0
        assert np.all((g.weights >= lo) & (g.weights < hi))
    else:
        assert np.all(g.weights == 1.0)
    if family not in SELF_LOOP_FAMILIES:
        assert not np.any(g.senders == g.receivers)
    a = to_dense(g)
    if not directed:
        np.testing.assert_array_equal(a, a.T)
    elif family in ORIENTED_SKELETON_FAMILIES:
        assert not np.any((a != 0) & (a.T != 0))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("directed", [False, True])
def test_single_node_graphs_work(family, directed):
    g = sample_graph(family, np.random.default_rng(13), 1, directed=directed, weighted=True)
    assert g.n == 1 and to_dense(g).shape == (1, 1)


@pytest.mark.parametrize("family", ["er", "sparse_er"])
def test_zero_weight_draws_do_not_delete_edges(family):
    # With high = 5e-324 (the smallest subnormal) about half the uniform draws round to exactly 0.
    unweighted = sample_graph(family, np.random.default_rng(14), 300, directed=True)
    weighted = sample_graph(family, np.random.default_rng(14), 300, directed=True, weighted=True, high=5e-324)
    np.testing.assert_array_equal(weighted.senders, unweighted.senders)
    np.testing.assert_array_equal(weighted.receivers, unweighted.receivers)
    assert np.all(weighted.weights > 0)


@pytest.mark.parametrize("family, options, name", [
    ("nope", {}, "nope"),
    ("grid", {"bogus": 1}, "bogus"),
    ("er", {"degree": 5}, "degree"),
    ("er", {"p": 0.0}, "p"),
    ("er", {"acyclic": True}, "acyclic"),
    ("er", {"weighted": True, "low": -1.0}, "low"),
    ("sparse_er", {"degree": -1}, "degree"),
    ("watts_strogatz", {"k": 3}, "k"),
    ("watts_strogatz", {"beta": 1.5}, "beta"),
    ("tree", {"low": 1.0, "high": 1.0}, "low"),
])
def test_bad_options_raise_value_error_naming_them(family, options, name):
    with pytest.raises(ValueError, match=name):
        sample_graph(family, np.random.default_rng(0), 8, **options)


def test_unknown_family_lists_the_valid_ones():
    with pytest.raises(ValueError, match="sparse_er"):
        sample_graph("nope", np.random.default_rng(0), 8)


def test_bad_node_count_raises():
    with pytest.raises(ValueError, match="n must be"):
        sample_graph("grid", np.random.default_rng(0), 0)


# --- dense conversion -------------------------------------------------------------------------------------


@given(n=st.integers(0, 12), seed=st.integers(0, 2**32 - 1), density=st.floats(0.0, 1.0))
@settings(max_examples=80, deadline=None)
def test_dense_round_trip_is_exact(n, seed, density):
    rng = np.random.default_rng(seed)
    a = np.where(rng.random((n, n)) < density, rng.normal(size=(n, n)), 0.0)
    g = from_dense(a)
    np.testing.assert_array_equal(to_dense(g), a)
    back = from_dense(to_dense(g))
    for field in ("senders", "receivers", "weights"):
        np.testing.assert_array_equal(getattr(back, field), getattr(g, field))


def test_edge_list_rejects_unsorted_duplicate_or_zero_edges():
    s = np.array([1, 0], dtype=np.int32)
    r = np.array([0, 1], dtype=np.int32)
    with pytest.raises(ValueError, match="sorted"):
        EdgeList(2, s, r, np.ones(2)).validate()
    with pytest.raises(ValueError, match="sorted"):
        EdgeList(2, np.zeros(2, np.int32), np.ones(2, np.int32), np.ones(2)).validate()
    with pytest.raises(ValueError, match="nonzero"):
        EdgeList(2, s[::-1].copy(), r[::-1].copy(), np.array([1.0, 0.0])).validate()


# --- dm-clrs stream replay --------------------------------------------------------------------------------


def test_clrs_bfs_stream_regression():
    # Cross-checked against dm-clrs 2.0.3 `build_sampler('bfs', num_samples=K, length=16, seed=1)` on 2026-11-23.
    inputs = clrs_stream_inputs("bfs", np.random.RandomState(1), 16)
    a = inputs["A"]
    assert np.flatnonzero(a[0]).tolist() == [11, 13]
    assert np.flatnonzero(a[1]).tolist() == [1, 4, 5, 7, 13]
    assert np.flatnonzero(a[2]).tolist() == [2, 4, 5, 8, 14]
    assert inputs["s"] == 11


def test_clrs_dfs_graph_is_the_raw_bernoulli_draw():
    # A one-element p tuple is chosen without drawing, so dfs's A is exactly the first binomial matrix.
    a = clrs_stream_inputs("dfs", np.random.RandomState(5), 10)["A"]
    np.testing.assert_array_equal(a, np.random.RandomState(5).binomial(1, 0.5, size=(10, 10)))


def test_clrs_er_dense_structure():
    rs = np.random.RandomState(0)
    a = clrs_er_dense(rs, 30, 0.5, directed=False, weighted=True)
    np.testing.assert_array_equal(a, a.T)
    dag = clrs_er_dense(rs, 30, 0.5, directed=True, acyclic=True)
    assert nx.is_directed_acyclic_graph(nx.DiGraph(dag))


def test_clrs_sort_keys_are_uniform_unit_interval():
    key = clrs_stream_inputs("heapsort", np.random.RandomState(3), 2000)["key"]
    assert key.shape == (2000,) and key.min() >= 0.0 and key.max() < 1.0
    assert abs(key.mean() - 0.5) < 0.03


def test_clrs_stream_rejects_unknown_algorithm_and_options():
    with pytest.raises(ValueError, match="kmp"):
        clrs_stream_inputs("kmp", np.random.RandomState(0), 4)
    with pytest.raises(ValueError, match="low"):
        clrs_stream_inputs("bfs", np.random.RandomState(0), 4, low=0.0)


def test_erdos_renyi_batch_matches_the_single_graph_law():
    from nar.data.graphs import erdos_renyi_batch

    rng = np.random.default_rng(7)
    sizes = np.array([16, 9, 16, 9] * 100)
    p = np.where(np.arange(sizes.size) % 2 == 0, 0.5, 0.3)
    n_edge, s, r, w = erdos_renyi_batch(rng, sizes, p, weighted=True)
    bounds = np.concatenate([[0], np.cumsum(n_edge)])
    dens = {16: [], 9: []}
    for i, n in enumerate(sizes):
        g = EdgeList(int(n), s[bounds[i]:bounds[i + 1]].astype(np.int32),
                     r[bounds[i]:bounds[i + 1]].astype(np.int32), w[bounds[i]:bounds[i + 1]]).validate()
        a = to_dense(g)
        np.testing.assert_array_equal(a, a.T)  # undirected, geometric-mean weights are symmetric
        off = ~np.eye(n, dtype=bool)
        dens[int(n)].append((a[off] != 0).mean())
    assert abs(np.mean(dens[16]) - 0.25) < 0.02 and abs(np.mean(dens[9]) - 0.09) < 0.02  # p**2
    n_edge, s, r, _ = erdos_renyi_batch(rng, np.full(20, 12), np.full(20, 0.4), directed=True, acyclic=True)
    bounds = np.concatenate([[0], np.cumsum(n_edge)])
    for i in range(20):
        g = nx.DiGraph(list(zip(s[bounds[i]:bounds[i + 1]].tolist(), r[bounds[i]:bounds[i + 1]].tolist())))
        assert nx.is_directed_acyclic_graph(g)
