"""Executor tests: CLRS probe contracts, textbook properties, hand-worked trajectories and bad input."""

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nar.algorithms import SPECS, execute
from nar.specs import GRAPH_ALGORITHMS, NUM_CLASSES, SORTING_ALGORITHMS, probes_of

ALGORITHMS = GRAPH_ALGORITHMS + SORTING_ALGORITHMS
WITH_SOURCE = ("bfs", "bellman_ford")

# Weight pools, most likely first after shrinking. `WALK_SAFE` values are k + 1/1024: every walk of fewer than
# 1024 edges has a nonzero weight, so Bellman-Ford never newly reaches a node at distance exactly 0 (where CLRS's
# "d unchanged" test stops early).
SIGNED = (1.0, 2.0, 0.5, 1.0, 2.0, -1.0, -0.5)
INTEGER = (1.0, 2.0, 3.0)
WALK_SAFE = tuple(k + 1 / 1024 for k in (1, 2, 0, -1, 3, -2, -3))
POSITIVE = st.floats(0.0625, 1.0, width=32)


# ---------------------------------------------------------------------------------------------------------------
# Strategies and helpers


def matrix(draw, n, elements):
    return np.array(draw(st.lists(elements, min_size=n * n, max_size=n * n)), dtype=np.float64).reshape(n, n)


@st.composite
def adjacency(draw, weights=SIGNED, max_n=12, directed=None, acyclic=False):
    """A weighted adjacency matrix: random (density 0.1-0.9), empty, complete or a shuffled path."""
    n = draw(st.integers(1, max_n))
    shape = draw(st.sampled_from(["random", "empty", "complete", "path", "random", "random"]))
    if shape == "random":
        density = draw(st.sampled_from([1, 3, 6, 9]))
        edges = matrix(draw, n, st.integers(0, 9)) >= 10 - density
    elif shape == "path":
        edges = np.eye(n, k=1, dtype=bool)
    else:
        edges = np.full((n, n), shape == "complete")
    if directed is None:
        directed = draw(st.booleans())
    if acyclic:
        edges = np.triu(edges, 1)
    elif not directed:
        edges = np.triu(edges) | np.triu(edges).T
    if not acyclic and not draw(st.booleans()):
        np.fill_diagonal(edges, False)
    perm = np.asarray(draw(st.permutations(range(n))))
    edges = edges[np.ix_(perm, perm)]
    w = matrix(draw, n, POSITIVE if weights is None else st.sampled_from(weights))
    if not directed and not acyclic:
        w = np.triu(w) + np.triu(w, 1).T
    return np.where(edges, w, 0.0)


@st.composite
def graph_and_source(draw, **kwargs):
    A = draw(adjacency(**kwargs))
    return A, draw(st.integers(0, A.shape[0] - 1))


@st.composite
def sort_keys(draw, max_n=12):
    """Keys with duplicates, distinct floats, sorted, reversed or all equal; exactly representable in float32."""
    n = draw(st.integers(1, max_n))
    pool = st.sampled_from([0.0, 0.25, 0.5, 1.0]) if draw(st.booleans()) else st.floats(-10, 10, width=32)
    key = np.array(draw(st.lists(pool, min_size=n, max_size=n)), dtype=np.float64)
    arrangement = draw(st.sampled_from(["as_drawn", "as_drawn", "sorted", "reversed", "constant"]))
    if arrangement == "sorted":
        key = np.sort(key)
    elif arrangement == "reversed":
        key = np.sort(key)[::-1].copy()
    elif arrangement == "constant":
        key = np.full(n, key[0])
    return key


def inputs_for(name):
    """Strategy of keyword inputs for `execute(name, ...)`."""
    if name in SORTING_ALGORITHMS:
        return sort_keys().map(lambda key: {"key": key})
    if name == "bellman_ford":
        return graph_and_source(weights=None).map(lambda As: {"A": As[0], "s": As[1]})
    if name == "bfs":
        return graph_and_source().map(lambda As: {"A": As[0], "s": As[1]})
    return adjacency().map(lambda A: {"A": A})


def digraph(A, edge=lambda w: w != 0):
    """networkx DiGraph of the entries of A selected by `edge`, weights in attribute 'weight'."""
    G = nx.DiGraph()
    G.add_nodes_from(range(A.shape[0]))
    for u, v in zip(*np.nonzero(edge(A))):
        G.add_edge(int(u), int(v), weight=float(A[u, v]))
    return G


def decode_order(pred):
    """Nodes in list order from a predecessor array (head points to itself); None if it is not a permutation."""
    pred = np.asarray(pred)
    heads = np.flatnonzero(pred == np.arange(pred.size))
    if heads.size != 1:
        return None
    succ = {int(p): v for v, p in enumerate(pred) if v != heads[0]}
    if len(succ) != pred.size - 1:
        return None
    order = [int(heads[0])]
    while order[-1] in succ and len(order) <= pred.size:
        order.append(succ[order[-1]])
    return order if sorted(order) == list(range(pred.size)) else None


def idx(mask_one):
    """Indices of the ones of a [T, n] mask_one hint."""
    return np.argmax(mask_one, axis=-1).tolist()


def check_one_hot(x):
    assert np.isin(x, (0.0, 1.0)).all()
    np.testing.assert_array_equal(x.sum(axis=-1), 1.0)


# ---------------------------------------------------------------------------------------------------------------
# Generic contract: probe names, stages, shapes, dtypes, input encodings, no mutation


@pytest.mark.parametrize("name", ALGORITHMS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_probe_contract(name, data):
    given_inputs = data.draw(inputs_for(name))
    copies = {k: np.copy(v) for k, v in given_inputs.items()}
    traj = execute(name, **given_inputs)

    for k, v in given_inputs.items():
        np.testing.assert_array_equal(v, copies[k])
    assert traj.algorithm == name
    n = len(given_inputs["key"] if "key" in given_inputs else given_inputs["A"])
    for stage, probes in (("input", traj.inputs), ("output", traj.outputs), ("hint", traj.hints)):
        assert set(probes) == set(probes_of(name, stage))
        for probe, value in probes.items():
            assert not any(np.shares_memory(value, v) for v in given_inputs.values() if isinstance(v, np.ndarray))
            _, location, kind = SPECS[name][probe]
            shape = {"node": (n,), "edge": (n, n), "graph": ()}[location]
            if stage == "hint":
                shape = (traj.length,) + shape
            if kind == "categorical":
                shape += (NUM_CLASSES[(name, probe)],)
            assert value.shape == shape, (probe, value.shape, shape)
            if kind in ("pointer", "should_be_permutation"):
                assert value.dtype == np.int32, probe
                assert ((value >= 0) & (value < n)).all(), probe
            else:
                assert value.dtype == np.float32, probe
            if kind in ("mask_one", "categorical") and value.size:
                check_one_hot(value)
            if kind == "mask":
                assert np.isin(value, (0.0, 1.0)).all(), probe

    np.testing.assert_allclose(traj.inputs["pos"], np.arange(n) / n, rtol=0, atol=1e-7)
    if name in SORTING_ALGORITHMS:
        np.testing.assert_array_equal(traj.inputs["key"], given_inputs["key"].astype(np.float32))
    else:
        A = given_inputs["A"]
        np.testing.assert_array_equal(traj.inputs["A"], A.astype(np.float32))
        np.testing.assert_array_equal(traj.inputs["adj"], ((A + np.eye(n)) != 0).astype(np.float32))
    if name in WITH_SOURCE:
        np.testing.assert_array_equal(traj.inputs["s"], np.eye(n, dtype=np.float32)[given_inputs["s"]])


def test_adj_follows_clrs_formula_for_negative_self_loop():
    A = np.array([[-1.0, 2.0], [0.0, 0.0]])
    traj = execute("dfs", A=A)
    np.testing.assert_array_equal(traj.inputs["adj"], [[0.0, 1.0], [0.0, 1.0]])


# ---------------------------------------------------------------------------------------------------------------
# BFS


@settings(max_examples=150, deadline=None)
@given(graph_and_source())
def test_bfs_matches_networkx(As):
    A, s = As
    n = A.shape[0]
    traj = execute("bfs", A=A, s=s)
    dist = nx.single_source_shortest_path_length(digraph(A, lambda w: w > 0), s)

    assert traj.length == max(dist.values()) + 1
    reach = traj.hints["reach_h"]
    assert (np.diff(reach, axis=0) >= 0).all()
    for v in range(n):
        if v in dist:
            assert np.argmax(reach[:, v]) == dist[v]
        else:
            assert not reach[:, v].any()
    pi = traj.outputs["pi"]
    for v in range(n):
        if v == s or v not in dist:
            assert pi[v] == v
        else:
            closer = [u for u in range(n) if A[u, v] > 0 and dist.get(u) == dist[v] - 1]
            assert pi[v] == min(closer)
    np.testing.assert_array_equal(traj.hints["pi_h"][-1], pi)
    for t in range(traj.length):
        expected = [pi[v] if dist.get(v, n) <= t else v for v in range(n)]
        np.testing.assert_array_equal(traj.hints["pi_h"][t], expected)


def test_bfs_path_by_hand():
    A = np.zeros((4, 4))
    for i in range(3):
        A[i, i + 1] = A[i + 1, i] = 1.0
    traj = execute("bfs", A=A, s=1)
    assert traj.length == 3
    np.testing.assert_array_equal(traj.hints["reach_h"], [[0, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]])
    np.testing.assert_array_equal(traj.hints["pi_h"], [[0, 1, 2, 3], [1, 1, 1, 3], [1, 1, 1, 2]])
    np.testing.assert_array_equal(traj.outputs["pi"], [1, 1, 1, 2])


def test_bfs_isolated_source_and_non_positive_weights():
    A = np.array([[0.0, -1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    traj = execute("bfs", A=A, s=0)
    assert traj.length == 1
    np.testing.assert_array_equal(traj.hints["reach_h"], [[1, 0, 0]])
    np.testing.assert_array_equal(traj.outputs["pi"], [0, 1, 2])


# ---------------------------------------------------------------------------------------------------------------
# DFS


def textbook_dfs(A):
    """Recursive CLRS DFS, roots and neighbours in index order; integer timestamps."""
    n = A.shape[0]
    color, d, f, pi = [0] * n, [0] * n, [0] * n, list(range(n))
    time = 0

    def visit(u):
        nonlocal time
        time += 1
        d[u], color[u] = time, 1
        for v in range(n):
            if A[u, v] != 0 and color[v] == 0:
                pi[v] = u
                visit(v)
        time += 1
        f[u], color[u] = time, 2

    for u in range(n):
        if color[u] == 0:
            visit(u)
    return np.array(d), np.array(f), np.array(pi)


@settings(max_examples=150, deadline=None)
@given(adjacency())
def test_dfs_matches_textbook_recursion(A):
    traj = execute("dfs", A=A)
    d, f, pi = textbook_dfs(A)
    np.testing.assert_allclose(traj.hints["d"][-1], 0.01 * d, atol=1e-5)
    np.testing.assert_allclose(traj.hints["f"][-1], 0.01 * f, atol=1e-5)
    np.testing.assert_array_equal(traj.outputs["pi"], pi)
    np.testing.assert_array_equal(traj.hints["pi_h"][-1], pi)


@settings(max_examples=150, deadline=None)
@given(adjacency())
def test_dfs_invariants(A):
    n = A.shape[0]
    traj = execute("dfs", A=A)
    h = traj.hints
    assert traj.length == 3 * n
    d, f, pi = h["d"][-1], h["f"][-1], traj.outputs["pi"]

    stamps = np.sort(np.concatenate([d, f]))
    np.testing.assert_allclose(stamps, 0.01 * np.arange(1, 2 * n + 1), atol=1e-5)
    assert (d < f).all()
    for v in range(n):
        if pi[v] != v:
            assert A[pi[v], v] != 0
    ancestors = [set() for _ in range(n)]
    for v in range(n):
        u = v
        for _ in range(n):
            if pi[u] == u:
                break
            u = pi[u]
            ancestors[v].add(u)
        assert pi[u] == u, "pi must form a forest"
    for u in range(n):
        for v in range(n):
            if u != v:
                nested = d[u] < d[v] < f[v] < f[u]
                disjoint = f[u] < d[v] or f[v] < d[u]
                assert nested or disjoint or d[v] < d[u] < f[u] < f[v]
                assert nested == (u in ancestors[v])

    color = np.argmax(h["color"], axis=-1)
    assert (np.diff(color, axis=0) >= 0).all()
    np.testing.assert_array_equal(color[0], 0)
    np.testing.assert_array_equal(color[-1], 2)
    np.testing.assert_allclose(h["time"], np.maximum(h["d"].max(axis=1), h["f"].max(axis=1)), atol=1e-5)


def test_dfs_three_nodes_by_hand():
    A = np.zeros((3, 3))
    A[0, 1] = A[2, 1] = 1.0
    traj = execute("dfs", A=A)
    h = traj.hints
    assert traj.length == 9
    assert idx(h["u"]) == [0, 0, 0, 1, 1, 0, 2, 2, 2]
    assert idx(h["v"]) == [0, 0, 1, 1, 2, 2, 2, 2, 2]
    assert idx(h["s_last"]) == [0, 0, 1, 1, 1, 0, 2, 2, 2]
    assert idx(h["s"]) == [0, 0, 0, 0, 0, 0, 2, 2, 2]
    assert np.argmax(h["color"], axis=-1).tolist() == [
        [0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 0], [1, 2, 0], [2, 2, 0], [2, 2, 0], [2, 2, 1], [2, 2, 2]]
    np.testing.assert_allclose(h["time"], [0, 0.01, 0.01, 0.02, 0.03, 0.04, 0.04, 0.05, 0.06], atol=1e-6)
    np.testing.assert_allclose(h["d"][-1], [0.01, 0.02, 0.05], atol=1e-6)
    np.testing.assert_allclose(h["f"][-1], [0.04, 0.03, 0.06], atol=1e-6)
    np.testing.assert_array_equal(h["s_prev"][[2, 4, 5]], [[0, 0, 2], [0, 0, 2], [0, 1, 2]])
    np.testing.assert_array_equal(h["pi_h"][[1, 2]], [[0, 1, 2], [0, 0, 2]])
    np.testing.assert_array_equal(traj.outputs["pi"], [0, 0, 2])


# ---------------------------------------------------------------------------------------------------------------
# Bellman-Ford


def check_shortest_path_tree(A, s, d, pi, reachable):
    for v in range(A.shape[0]):
        if v == s or v not in reachable:
            assert pi[v] == v
        else:
            assert A[pi[v], v] != 0 and pi[v] in reachable
            np.testing.assert_allclose(d[v], d[pi[v]] + A[pi[v], v], rtol=1e-5, atol=1e-5)


@settings(max_examples=150, deadline=None)
@given(graph_and_source(weights=INTEGER))
def test_bellman_ford_integer_weights(As):
    A, s = As
    n = A.shape[0]
    traj = execute("bellman_ford", A=A, s=s)
    G = digraph(A)
    dist = nx.single_source_dijkstra_path_length(G, s)
    # Weight 1000 w + 1 ranks paths by weight, then by hop count: its remainder is the fewest hops of a shortest path.
    for _, _, attrs in G.edges(data=True):
        attrs["weight"] = 1000 * attrs["weight"] + 1
    hops = {v: int(x) % 1000 for v, x in nx.single_source_dijkstra_path_length(G, s).items()}
    hop_dist = nx.single_source_shortest_path_length(G, s)

    assert traj.length == 1 + max(hops.values())
    d, msk, pi = traj.hints["d"][-1], traj.hints["msk"][-1], traj.outputs["pi"]
    np.testing.assert_array_equal(d, [dist.get(v, 0.0) for v in range(n)])
    np.testing.assert_array_equal(msk, [v in dist for v in range(n)])
    for t in range(traj.length):
        np.testing.assert_array_equal(traj.hints["msk"][t], [hop_dist.get(v, n) <= t for v in range(n)])
    check_shortest_path_tree(A, s, d, pi, dist)
    np.testing.assert_array_equal(traj.hints["pi_h"][-1], pi)


@settings(max_examples=100, deadline=None)
@given(graph_and_source(weights=None))
def test_bellman_ford_float_weights(As):
    A, s = As
    traj = execute("bellman_ford", A=A, s=s)
    dist = nx.single_source_dijkstra_path_length(digraph(A), s)
    d = traj.hints["d"][-1]
    np.testing.assert_allclose(d, [dist.get(v, 0.0) for v in range(A.shape[0])], rtol=1e-5, atol=1e-6)
    check_shortest_path_tree(A, s, d, traj.outputs["pi"], dist)


@settings(max_examples=100, deadline=None)
@given(graph_and_source(weights=WALK_SAFE, acyclic=True))
def test_bellman_ford_negative_edges_on_dags(As):
    A, s = As
    traj = execute("bellman_ford", A=A, s=s)
    dist = nx.single_source_bellman_ford_path_length(digraph(A), s)
    d = traj.hints["d"][-1]
    np.testing.assert_allclose(d, [dist.get(v, 0.0) for v in range(A.shape[0])], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(traj.hints["msk"][-1], [v in dist for v in range(A.shape[0])])
    check_shortest_path_tree(A, s, d, traj.outputs["pi"], dist)


@settings(max_examples=100, deadline=None)
@given(graph_and_source(weights=WALK_SAFE, directed=True))
def test_bellman_ford_negative_cycles(As):
    A, s = As
    G = digraph(A)
    reachable = nx.descendants(G, s) | {s}
    if nx.negative_edge_cycle(G.subgraph(reachable).copy()):
        with pytest.raises(ValueError, match="(?i)negative"):
            execute("bellman_ford", A=A, s=s)
    else:
        traj = execute("bellman_ford", A=A, s=s)
        dist = nx.single_source_bellman_ford_path_length(G, s)
        d = traj.hints["d"][-1]
        np.testing.assert_allclose(d, [dist.get(v, 0.0) for v in range(A.shape[0])], rtol=1e-5, atol=1e-6)
        check_shortest_path_tree(A, s, d, traj.outputs["pi"], dist)


def test_bellman_ford_triangles_by_hand():
    tie = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 1.0], [2.0, 1.0, 0.0]])
    traj = execute("bellman_ford", A=tie, s=0)
    assert traj.length == 2
    np.testing.assert_array_equal(traj.hints["d"], [[0, 0, 0], [0, 1, 2]])
    np.testing.assert_array_equal(traj.hints["msk"], [[1, 0, 0], [1, 1, 1]])
    np.testing.assert_array_equal(traj.hints["pi_h"], [[0, 1, 2], [0, 0, 0]])
    np.testing.assert_array_equal(traj.outputs["pi"], [0, 0, 0])

    detour = np.array([[0.0, 1.0, 3.0], [1.0, 0.0, 1.0], [3.0, 1.0, 0.0]])
    traj = execute("bellman_ford", A=detour, s=0)
    assert traj.length == 3
    np.testing.assert_array_equal(traj.hints["d"], [[0, 0, 0], [0, 1, 3], [0, 1, 2]])
    np.testing.assert_array_equal(traj.hints["pi_h"], [[0, 1, 2], [0, 0, 0], [0, 0, 1]])
    np.testing.assert_array_equal(traj.outputs["pi"], [0, 0, 1])


def test_bellman_ford_negative_cycle_unreachable_from_source_is_fine():
    A = np.zeros((4, 4))
    A[0, 1] = 1.0
    A[2, 3], A[3, 2] = -2.0, 1.0
    traj = execute("bellman_ford", A=A, s=0)
    np.testing.assert_array_equal(traj.outputs["pi"], [0, 0, 2, 3])
    with pytest.raises(ValueError, match="(?i)negative"):
        execute("bellman_ford", A=A, s=2)


# ---------------------------------------------------------------------------------------------------------------
# Sorting


@pytest.mark.parametrize("name", SORTING_ALGORITHMS)
@settings(max_examples=100, deadline=None)
@given(key=sort_keys())
def test_sort_pointers_decode_to_sorted_permutations(name, key):
    traj = execute(name, key=key)
    order = decode_order(traj.outputs["pred"])
    assert order is not None
    assert (np.diff(key[order]) >= 0).all()
    if name in ("insertion_sort", "bubble_sort"):
        assert order == np.argsort(key, kind="stable").tolist()
    orders = [decode_order(pred) for pred in traj.hints["pred_h"]]
    assert all(o is not None for o in orders)
    if traj.length:
        np.testing.assert_array_equal(traj.hints["pred_h"][-1], traj.outputs["pred"])
    if name != "quicksort":
        assert orders[0] == list(range(len(key)))
    if name != "insertion_sort":
        for before, after in zip(orders, orders[1:]):
            moved = [k for k in range(len(key)) if before[k] != after[k]]
            assert len(moved) in (0, 2)
            if moved and name == "bubble_sort":
                assert moved[1] == moved[0] + 1 and key[before[moved[1]]] < key[before[moved[0]]]


@settings(max_examples=100, deadline=None)
@given(key=sort_keys())
def test_insertion_sort_steps(key):
    n = len(key)
    traj = execute("insertion_sort", key=key)
    assert traj.length == n
    assert idx(traj.hints["j"]) == list(range(n))
    for t, pred in enumerate(traj.hints["pred_h"]):
        prefix = np.argsort(key[: t + 1], kind="stable").tolist()
        assert decode_order(pred) == prefix + list(range(t + 1, n))


@settings(max_examples=100, deadline=None)
@given(key=sort_keys())
def test_bubble_sort_length(key):
    n = len(key)
    assert execute("bubble_sort", key=key).length == 1 + n * (n - 1) // 2


@settings(max_examples=100, deadline=None)
@given(key=sort_keys())
def test_heapsort_heap_structure(key):
    n = len(key)
    traj = execute("heapsort", key=key)
    h = traj.hints
    phase = idx(h["phase"])
    build = phase.index(1) if 1 in phase else len(phase)
    assert set(phase[:build]) == {0} and 0 not in phase[build:]
    assert phase.count(1) == n - 1
    for t in range(traj.length):
        order = decode_order(h["pred_h"][t])
        size = order.index(idx(h["heap_size"][t])) + 1
        expected = np.arange(n)
        expected[order[1:size]] = [order[(k - 1) // 2] for k in range(1, size)]
        np.testing.assert_array_equal(h["parent"][t], expected)
    heap = key[decode_order(h["pred_h"][build - 1])]
    assert all(heap[(k - 1) // 2] >= heap[k] for k in range(1, n))


def test_insertion_sort_by_hand():
    traj = execute("insertion_sort", key=np.array([0.3, 0.1, 0.2]))
    np.testing.assert_array_equal(traj.hints["pred_h"], [[0, 0, 1], [1, 1, 0], [2, 1, 1]])
    assert idx(traj.hints["i"]) == [0, 0, 0]
    assert idx(traj.hints["j"]) == [0, 1, 2]
    np.testing.assert_array_equal(traj.outputs["pred"], [2, 1, 1])


def test_bubble_sort_by_hand():
    traj = execute("bubble_sort", key=np.array([0.3, 0.1, 0.2]))
    np.testing.assert_array_equal(traj.hints["pred_h"], [[0, 0, 1], [0, 0, 1], [1, 1, 0], [2, 1, 1]])
    assert idx(traj.hints["i"]) == [0, 0, 1, 2]
    assert idx(traj.hints["j"]) == [0, 2, 0, 0]


def test_quicksort_by_hand():
    traj = execute("quicksort", key=np.array([0.2, 0.1]))
    np.testing.assert_array_equal(traj.hints["pred_h"], [[0, 0], [1, 1]])
    assert [idx(traj.hints[p]) for p in "prij"] == [[0, 1], [1, 0], [0, 1], [0, 0]]

    traj = execute("quicksort", key=np.array([0.3, 0.1, 0.2]))
    np.testing.assert_array_equal(traj.hints["pred_h"], [[0, 0, 1], [1, 1, 0], [2, 1, 1]])
    assert [idx(traj.hints[p]) for p in "prij"] == [[0, 1, 1], [2, 2, 0], [0, 0, 2], [0, 0, 0]]
    np.testing.assert_array_equal(traj.outputs["pred"], [2, 1, 1])

    tie = execute("quicksort", key=np.array([0.1, 0.1]))
    np.testing.assert_array_equal(tie.hints["pred_h"], [[0, 0], [0, 0]])
    assert [idx(tie.hints[p]) for p in "prij"] == [[0, 0], [1, 1], [1, 1], [0, 1]]


def test_quicksort_single_key_has_no_hints():
    traj = execute("quicksort", key=np.array([0.5]))
    assert traj.length == 0
    assert all(h.shape == (0, 1) for h in traj.hints.values())
    np.testing.assert_array_equal(traj.outputs["pred"], [0])


def test_heapsort_by_hand():
    traj = execute("heapsort", key=np.array([0.1, 0.2]))
    h = traj.hints
    np.testing.assert_array_equal(h["pred_h"], [[0, 0], [0, 0], [1, 1], [1, 1], [0, 0], [0, 0]])
    np.testing.assert_array_equal(h["parent"], [[0, 0], [0, 0], [1, 1], [1, 1], [0, 1], [0, 1]])
    assert [idx(h[p]) for p in ("i", "j", "largest", "heap_size", "phase")] == [
        [1, 1, 1, 1, 0, 1], [1, 1, 1, 0, 1, 0], [1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 2]]

    # Equal children: the left one wins (strict `>`), so the two 0.2 keys come out as node 2 before node 1.
    tie = execute("heapsort", key=np.array([0.1, 0.2, 0.2]))
    np.testing.assert_array_equal(tie.hints["pred_h"], [
        [0, 0, 1], [0, 0, 1], [0, 0, 1], [1, 1, 0], [1, 1, 0], [2, 0, 2], [2, 0, 2], [0, 2, 0], [0, 2, 0]])
    assert idx(tie.hints["phase"]) == [0, 0, 0, 0, 0, 1, 2, 1, 2]
    np.testing.assert_array_equal(tie.outputs["pred"], [0, 2, 0])


# ---------------------------------------------------------------------------------------------------------------
# Bad input


BAD_INPUTS = [
    ("bfs", {"A": np.zeros(3), "s": 0}, r"(?i)2-?d|dimension"),
    ("dfs", {"A": np.zeros((2, 2, 2))}, r"(?i)2-?d|dimension"),
    ("dfs", {"A": np.zeros((2, 3))}, r"(?i)square"),
    ("dfs", {"A": np.array([[0.0, np.nan], [0.0, 0.0]])}, r"(?i)finite|nan"),
    ("bellman_ford", {"A": np.array([[0.0, np.inf], [0.0, 0.0]]), "s": 0}, r"(?i)finite|inf"),
    ("bfs", {"A": np.eye(3), "s": 3}, r"(?i)source|range"),
    ("bellman_ford", {"A": np.eye(3), "s": -1}, r"(?i)source|range"),
    ("bfs", {"A": np.eye(3), "s": 1.5}, r"(?i)source|integer"),
    ("bfs", {"A": np.eye(3)}, r"(?i)\bs\b|missing|source"),
    ("dfs", {"A": np.eye(3), "s": 0}, r"(?i)\bs\b|unknown|unexpected"),
    ("insertion_sort", {"keys": np.ones(3)}, r"(?i)keys|unknown|unexpected|missing"),
    ("heapsort", {}, r"(?i)key|missing"),
    ("no_such_sort", {"key": np.ones(3)}, r"no_such_sort"),
    ("quicksort", {"key": np.zeros(0)}, r"(?i)empty"),
    ("bubble_sort", {"key": np.array([0.5, np.nan])}, r"(?i)finite|nan"),
    ("heapsort", {"key": np.array([0.5, -np.inf])}, r"(?i)finite|inf"),
    ("insertion_sort", {"key": np.ones((2, 2))}, r"(?i)1-?d|dimension"),
    ("bellman_ford", {"A": np.array([[0.0, 1.0], [-2.0, 0.0]]), "s": 0}, r"(?i)negative"),
    ("bellman_ford", {"A": np.array([[-0.5]]), "s": 0}, r"(?i)negative"),
]


@pytest.mark.parametrize("name,kwargs,message", BAD_INPUTS)
def test_bad_input_raises_value_error(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        execute(name, **kwargs)


def test_bellman_ford_negative_cycle_hidden_by_clrs_early_stop_still_raises():
    # CLRS's loop stops after round 1 here (node 2 is first reached at distance exactly 0, so d looks unchanged),
    # before it meets the reachable cycle 1 <-> 2 of weight -2; the input is refused all the same.
    A = np.array([[0, 1, 0], [0, 0, -1], [0, -1, 0]], float)
    with pytest.raises(ValueError, match="negative"):
        execute("bellman_ford", A=A, s=0)
