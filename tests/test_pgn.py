"""`pgn` is CLRS's PGN and `pgn_mask` its sparse, neighbours-only variant, checked against independent truths:

- the pointer candidates of each (every node of the sample / the input neighbours plus the node itself), from the
  trajectories' own edge lists;
- CLRS's adjacency (dm-clrs `accum_adj_mat`: self-loops, symmetric edge masks > 0, symmetric pointers > 0.5) as a
  dense NumPy matrix per sample, against the per-edge mask the model computes;
- one PGN step written densely in NumPy from CLRS's equations (docs: shared/reference/processors.md, section 1),
  M_ji = MLP(ReLU(W1 z_i + W2 z_j + We e_ji + Wg g)), m_i = max over allowed j (others at -1e6), h_i =
  LN(ReLU(O1 z_i + O2 m_i)), on a padded batch with an isolated node, a one-node sample and an empty slot;
- end to end: with the true hints fed (teacher forcing 1), `pgn` on the complete graph and `pgn_mask` on the input
  graph with the same weights compute the same hidden states, so their logits agree on every input edge, and
  `pgn` alone also scores the non-neighbours.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from nar.data import generate
from nar.data.batch import make_batch, probes
from nar.model.net import Model, ModelConfig, adjacency, graph_of, reverse_edges
from nar.model.probes import POINTERS, truth_features
from nar.model.segment import segment_softmax
from nar.processors import get_processor
from nar.processors.base import Graph
from nar.processors.mpnn import MPNN
from nar.specs import Stage

H = 8


def jitted(module, **kwargs):
    """module(*args, **kwargs) under jax.jit, XLA's backend optimisations off (values, not speed, are checked; a
    compile is cheaper than eager dispatch of the whole rollout)."""
    graphdef, state = nnx.split(module)
    f = jax.jit(lambda st, *a: nnx.merge(graphdef, st)(*a, **kwargs),
                compiler_options={"xla_backend_optimization_level": 0})
    return lambda *a: f(state, *a)


def offsets(counts):
    return np.concatenate([[0], np.cumsum(counts)]).astype(int)


def input_neighbours(tb, s):
    """{node: set of nodes} of sample s: the input graph made symmetric, from the trajectory's own edge list."""
    e0, e1 = offsets(tb.n_edge)[s], offsets(tb.n_edge)[s + 1]
    nb = {v: set() for v in range(int(tb.n_node[s]))}
    for a, b in zip(tb.senders[e0:e1], tb.receivers[e0:e1], strict=True):
        nb[int(a)].add(int(b))
        nb[int(b)].add(int(a))
    return nb


def candidates(batch, tb):
    """{(sample, node): set of candidate target nodes}: the senders of the edges each real node receives (the
    edges its pointer is decoded over), in sample-local ids."""
    snd, rcv = np.asarray(batch.graph.senders), np.asarray(batch.graph.receivers)
    noff = offsets(tb.n_node)
    sample_of = np.repeat(np.arange(len(tb)), tb.n_node)
    out = {}
    for s_, r_ in zip(snd, rcv, strict=True):
        if r_ >= noff[-1]:
            continue  # padding
        g = int(sample_of[r_])
        out.setdefault((g, int(r_ - noff[g])), set()).add(int(s_ - noff[g]))
    return out


@pytest.fixture(scope="module")
def bfs_tb():
    return generate("bfs", 3, [5, 4, 6], seed=3, p=0.3).trajectories


def test_registry_pgn_is_clrs_and_pgn_mask_is_the_sparse_variant():
    pgn, mask = get_processor("pgn"), get_processor("pgn_mask")
    assert (pgn.default_message_graph, pgn.adjacency) == ("complete", True)
    assert (mask.default_message_graph, mask.adjacency) == ("input", False)
    assert "no published figure" in mask.description
    assert ModelConfig("bfs", "pgn").graph_kind == "complete" and ModelConfig("bfs", "pgn_mask").graph_kind == "input"
    # A sort has no input graph: both run on the complete graph.
    assert ModelConfig("insertion_sort", "pgn_mask").graph_kind == "complete"


def test_pgn_points_over_every_node_and_pgn_mask_over_neighbours(bfs_tb):
    """`pgn`: a node's pointer candidates are all n nodes of its sample (non-neighbours included); `pgn_mask`:
    its input neighbours and itself."""
    some_non_neighbour = False
    for processor in ("pgn", "pgn_mask"):
        b = make_batch(bfs_tb, ModelConfig("bfs", processor).graph_kind, num_graphs=len(bfs_tb) + 1)
        cand = candidates(b, bfs_tb)
        for s in range(len(bfs_tb)):
            n, nb = int(bfs_tb.n_node[s]), input_neighbours(bfs_tb, s)
            for v in range(n):
                if processor == "pgn":
                    assert cand[(s, v)] == set(range(n)), (s, v)
                    some_non_neighbour |= len(nb[v] | {v}) < n
                else:
                    assert cand[(s, v)] == nb[v] | {v}, (s, v)
    assert some_non_neighbour  # the data has pairs that only `pgn` can point to


def dense_clrs_adjacency(n, adj_edges, pointer_mats):
    """CLRS's `accum_adj_mat` for one sample: I | (A + A^T > 0) | (P + P^T > 0.5) for each pointer matrix P
    (P[i, j] = probability that i points to j)."""
    adj = np.eye(n, dtype=bool)
    A = np.zeros((n, n))
    for a, b in adj_edges:
        A[a, b] = 1.0
    adj |= (A + A.T) > 0.0
    for P in pointer_mats:
        adj |= (P + P.T) > 0.5
    return adj


@pytest.mark.parametrize("algorithm", ["dfs", "insertion_sort"])
def test_model_adjacency_is_clrs_accum_adj_mat(algorithm):
    """The per-edge mask (`reverse_edges`, `adjacency`) equals CLRS's dense adjacency, for the input graph of a
    directed DFS graph (a node whose only incoming input edge is its self-loop gets its out-neighbours' messages)
    and for soft pointers (the model's own predictions) around the 0.5 threshold; a sort's is the self-loops plus
    pointers."""
    sizes = [5, 3, 6]
    tb = generate(algorithm, 3, sizes, seed=1).trajectories
    b = make_batch(tb, "complete", num_graphs=len(tb) + 1)  # an empty slot and padding
    graph = jax.tree.map(jnp.asarray, graph_of(b))
    rev = np.asarray(reverse_edges(graph))
    snd, rcv = np.asarray(graph.senders), np.asarray(graph.receivers)
    assert (snd[rev] == rcv).all() and (rcv[rev] == snd).all()

    enc = {**probes(algorithm, Stage.INPUT), **probes(algorithm, Stage.HINT)}
    feats = {name: truth_features(b.inputs[name], *enc[name], graph) for name in probes(algorithm, Stage.INPUT)}
    rng = np.random.default_rng(0)
    soft = {}
    for name, (loc, type_, classes) in probes(algorithm, Stage.HINT).items():
        if type_ in POINTERS:  # soft pointers: a softmax over each node's candidates, some rows above 0.5
            logits = jnp.asarray(rng.normal(scale=3.0, size=graph.num_edges), jnp.float32)
            soft[name] = np.asarray(segment_softmax(logits, graph.receivers, graph.num_nodes, True))
            feats[name] = jnp.asarray(soft[name])
        else:
            feats[name] = truth_features(b.hints[name][0], loc, type_, classes, graph)
    got = np.asarray(adjacency(feats, enc, graph, jnp.asarray(rev)))

    noff, eoff = offsets(tb.n_node), offsets(tb.n_edge)
    no_in_edge = False
    for s, n in enumerate(sizes):
        edges = list(zip(tb.senders[eoff[s]:eoff[s + 1]], tb.receivers[eoff[s]:eoff[s + 1]], strict=True))
        if algorithm == "dfs":
            others_in = {int(c) for a, c in edges if a != c}
            no_in_edge |= any(v not in others_in and any(a == v != c for a, c in edges) for v in range(n))
        pointer_mats = []
        for name, P_E in soft.items():  # P[i, j] = value on the edge j -> i
            P = np.zeros((n, n))
            for e in np.flatnonzero((snd >= noff[s]) & (snd < noff[s + 1])):
                P[rcv[e] - noff[s], snd[e] - noff[s]] = P_E[e]
            pointer_mats.append(P)
        want = dense_clrs_adjacency(n, [(int(a), int(c)) for a, c in edges] if "adj" in enc else [], pointer_mats)
        for e in np.flatnonzero((snd >= noff[s]) & (snd < noff[s + 1])):
            assert got[e] == want[snd[e] - noff[s], rcv[e] - noff[s]], (s, snd[e], rcv[e])
        if "adj" not in enc:
            assert want.sum() < n * n  # a sort's adjacency is not the complete graph
    assert got[np.asarray(graph.edge_graph) == graph.num_graphs - 1].all()  # padding self-loops
    assert no_in_edge or algorithm != "dfs"


def _w(lin):
    return np.asarray(lin.kernel[...]), np.asarray(lin.bias[...])


def clrs_pgn_step(proc, z, e_dense, g, adj):
    """One CLRS PGN step for one sample, densely: z [n, 2H]; e_dense[j, i] the features of the edge j -> i;
    g [H]; adj[j, i]: j may send to i. Written from CLRS's equations (module docstring), -1e6 off the adjacency."""
    (W1, b1), (W2, b2), (We, be), (Wg, bg) = _w(proc.m_recv), _w(proc.m_send), _w(proc.m_edge), _w(proc.m_graph)
    (M1, c1), (M2, c2), (O1, d1), (O2, d2) = _w(proc.mlp1), _w(proc.mlp2), _w(proc.o_self), _w(proc.o_msg)
    pre = ((z @ W1 + b1)[None, :, :] + (z @ W2 + b2)[:, None, :] + e_dense @ We + be + (g @ Wg + bg))  # [j, i, H]
    M = np.maximum(np.maximum(pre, 0.0) @ M1 + c1, 0.0) @ M2 + c2
    M = np.where(adj[:, :, None], M, -1e6)
    m = M.max(axis=0)
    h = np.maximum(z @ O1 + d1 + m @ O2 + d2, 0.0)
    mu, var = h.mean(-1, keepdims=True), h.var(-1, keepdims=True)
    return (h - mu) / np.sqrt(var + proc.norm.epsilon) * np.asarray(proc.norm.scale[...]) + np.asarray(
        proc.norm.bias[...])


def test_pgn_processor_step_matches_dense_numpy_clrs():
    """The MPNN processor with `Graph.edge_mask` is CLRS's PGN step: on a padded batch of complete graphs (sizes
    4, 1 and 5, an empty slot, padding nodes and edges) with a random symmetric adjacency plus self-loops, one
    node isolated (only its self-loop), every real node's update equals the dense NumPy step; gradients stay
    finite through the masked max."""
    rng = np.random.default_rng(0)
    sizes = [4, 1, 5]
    pad_nodes, pad_edges = 3, 6
    noff = offsets(sizes)
    snd, rcv, adj_dense = [], [], []
    for s, n in enumerate(sizes):
        A = rng.random((n, n)) < 0.4
        A = A | A.T | np.eye(n, dtype=bool)
        if s == 2:  # node 1 of the last sample: no neighbour at all
            A[1, :] = A[:, 1] = False
            A[1, 1] = True
        adj_dense.append(A)
        for r in range(n):  # receiver-major, as the complete message graph
            for s_ in range(n):
                snd.append(noff[s] + s_)
                rcv.append(noff[s] + r)
    N = int(noff[-1]) + pad_nodes
    snd += [N - 1] * pad_edges
    rcv += [N - 1] * pad_edges
    snd, rcv = np.asarray(snd, np.int32), np.asarray(rcv, np.int32)
    G = len(sizes) + 2  # one empty slot, then the padding graph
    node_graph = np.full(N, G - 1, np.int32)
    node_graph[: noff[-1]] = np.repeat(np.arange(len(sizes)), sizes)
    n_node = np.asarray(sizes + [0, pad_nodes], np.int32)
    mask = np.ones(len(snd), bool)
    for e, (a, c) in enumerate(zip(snd, rcv, strict=True)):
        g = node_graph[c]
        if g < len(sizes):
            mask[e] = adj_dense[g][a - noff[g], c - noff[g]]
    graph = Graph(jnp.asarray(snd), jnp.asarray(rcv), jnp.asarray(node_graph), jnp.asarray(node_graph[rcv]),
                  jnp.asarray(n_node), edge_mask=jnp.asarray(mask))
    proc = MPNN(H, rngs=nnx.Rngs(1))
    x = rng.normal(size=(N, H)).astype(np.float32)
    hprev = rng.normal(size=(N, H)).astype(np.float32)
    e = rng.normal(size=(len(snd), H)).astype(np.float32)
    gf = rng.normal(size=(G, H)).astype(np.float32)
    step = jitted(proc)
    h, latent = step(jnp.asarray(x), jnp.asarray(e), jnp.asarray(gf), graph, jnp.asarray(hprev))
    h = np.asarray(h)
    assert latent is None
    z = np.concatenate([x, hprev], axis=-1)
    for s, n in enumerate(sizes):
        e_dense = np.zeros((n, n, H), np.float32)
        for k in np.flatnonzero(node_graph[rcv] == s):
            e_dense[snd[k] - noff[s], rcv[k] - noff[s]] = e[k]
        want = clrs_pgn_step(proc, z[noff[s]:noff[s + 1]], e_dense, gf[s], adj_dense[s])
        np.testing.assert_allclose(h[noff[s]:noff[s + 1]], want, rtol=1e-4, atol=1e-4, err_msg=f"sample {s}")
    # Unmasked, the same step sees every pair: the mask changes the result (it is not a no-op here).
    h_all = np.asarray(step(jnp.asarray(x), jnp.asarray(e), jnp.asarray(gf), graph._replace(edge_mask=None),
                            jnp.asarray(hprev))[0])
    assert not np.allclose(h_all[: noff[-1]], h[: noff[-1]])
    grads = jax.jit(jax.grad(lambda z_: proc(z_, jnp.asarray(e), jnp.asarray(gf), graph, jnp.asarray(hprev))[0].sum()))(
        jnp.asarray(x))
    assert np.isfinite(np.asarray(grads)).all()


def test_pgn_equals_pgn_mask_on_input_edges_and_also_scores_non_neighbours(bfs_tb):
    """With the true hints fed at every step, every pointer CLRS adds to the adjacency is an input edge, so `pgn`
    (complete graph, masked messages) and `pgn_mask` (input graph) with the same weights have the same hidden
    states: their logits agree on every edge of the input graph plus self-loops, and `pgn` gives finite logits,
    hence non-zero probability, to the non-neighbours too."""
    cfgs = {p: ModelConfig("bfs", p, hidden=H, teacher_forcing=1.0) for p in ("pgn", "pgn_mask")}
    models = {p: Model(c, rngs=nnx.Rngs(0)) for p, c in cfgs.items()}
    nnx.update(models["pgn_mask"], nnx.state(models["pgn"]))
    batches = {p: make_batch(bfs_tb, c.graph_kind, num_graphs=len(bfs_tb) + 1) for p, c in cfgs.items()}
    assert batches["pgn"].pad_sizes.steps == batches["pgn_mask"].pad_sizes.steps
    preds = {p: jitted(models[p], train=True)(jax.tree.map(jnp.asarray, batches[p])) for p in cfgs}

    full, sparse = batches["pgn"].graph, batches["pgn_mask"].graph
    edge_index = {(int(a), int(c)): k for k, (a, c) in enumerate(zip(full.senders, full.receivers, strict=True))}
    n_real = int(bfs_tb.n_node.sum())
    e_real = int(np.asarray(sparse.n_edge)[: len(bfs_tb)].sum())
    pairs = zip(sparse.senders[:e_real], sparse.receivers[:e_real], strict=True)
    to_full = np.asarray([edge_index[(int(a), int(c))] for a, c in pairs])
    np.testing.assert_allclose(np.asarray(preds["pgn"].outputs["pi"])[to_full],
                               np.asarray(preds["pgn_mask"].outputs["pi"])[:e_real], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(preds["pgn"].hints["pi_h"])[:, to_full],
                               np.asarray(preds["pgn_mask"].hints["pi_h"])[:, :e_real], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(preds["pgn"].hints["reach_h"])[:, :n_real],
                               np.asarray(preds["pgn_mask"].hints["reach_h"])[:, :n_real], rtol=1e-4, atol=1e-5)
    others = np.setdiff1d(np.arange(int(np.asarray(full.n_edge)[: len(bfs_tb)].sum())), to_full)
    assert len(others) > 0 and np.isfinite(np.asarray(preds["pgn"].outputs["pi"])[others]).all()


def test_pgn_on_a_sort_without_encoded_hints_passes_messages_over_self_loops_only():
    """A sort has no input graph: with no encoded hints (no pointers), CLRS's adjacency is the self-loops alone, so
    a node's state never depends on another node's input. Changing node 0's key changes node 0's node-level hint
    logits and no other node's under `pgn`, but other nodes' under `mpnn` (same weights, every pair)."""
    tb = generate("insertion_sort", 2, [4, 5], seed=0).trajectories
    b = jax.tree.map(jnp.asarray, make_batch(tb, "complete"))
    inputs = dict(b.inputs)
    inputs["key"] = inputs["key"].at[0].add(0.5)
    b2 = b._replace(inputs=inputs)
    n0 = int(tb.n_node[0])
    changed = {}
    for processor in ("pgn", "mpnn"):
        model = jitted(Model(ModelConfig("insertion_sort", processor, hidden=H, hint_mode="decoded_only"),
                             rngs=nnx.Rngs(0)))
        a, c = np.asarray(model(b).hints["i"]), np.asarray(model(b2).hints["i"])
        assert not np.allclose(a[:, 0], c[:, 0])
        changed[processor] = not np.allclose(a[:, 1:n0], c[:, 1:n0], rtol=1e-5, atol=1e-6)
    assert changed == {"pgn": False, "mpnn": True}
