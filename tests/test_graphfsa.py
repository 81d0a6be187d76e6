"""GraphFSA: neighbour counts and characters against a Python loop (self-loops excluded, capped at k), the soft step
as a stochastic matrix and the hard step as table lookups, a hand-written BFS automaton reproducing BFS's reach hints
and parent pointers exactly (the pointer through its fixed, unlearned rule, which the model declares), the
hand-written Distance-parity automaton against networkx distances, the absorbing penalty against its formula,
`describe` and `usage`, the configuration errors, and short training runs.

Graphs are small (<= 60 nodes, except one sparse_er batch at n = 200) and runs are short: the whole module is meant
to stay well under a minute on two CPU cores.
"""

import functools
import itertools
import json
import re

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest
from flax import nnx

from nar.bench.fsa_distance import (
    EVEN,
    FINALS,
    ODD,
    ROOT,
    STATE_NAMES,
    UNREACHED,
    accuracy,
    distance_automaton,
    distance_batch,
    evaluate_distance,
    hop_distances,
    train_distance,
)
from nar.config import load
from nar.data import generate
from nar.data.batch import cover, make_batch
from nar.metrics import batch_counts, scores
from nar.model.fsa import PARENT_RULE, FSAModel
from nar.model.net import ModelConfig, graph_of
from nar.processors import get_processor
from nar.processors.base import Graph
from nar.processors.graphfsa import MAX_TABLE_ENTRIES, GraphFSA
from nar.train import METRICS_FILE, Trainer, build_model

UNREACHED_BFS, REACHED_BFS = 0, 1


def random_graph(rng, n_node=(5, 10, 4), p=0.6, pad_nodes=2):
    """A padded Graph of random directed edges (each pair at most once) plus a self-loop on every real node, several
    graphs in one batch; `pad_nodes` padding nodes with a self-loop each, in the last graph slot. Also returns the
    edges as Python lists and the number of real nodes."""
    off = np.concatenate([[0], np.cumsum(n_node)]).astype(int)
    n_real = int(off[-1])
    pairs = [(n_real + i, n_real + i) for i in range(pad_nodes)]
    for g, n in enumerate(n_node):
        for u in range(n):
            for v in range(n):
                if u == v or rng.random() < p:
                    pairs.append((int(off[g] + u), int(off[g] + v)))  # u -> v
    pairs.sort(key=lambda e: (e[1], e[0]))
    senders = [s for s, _ in pairs]
    receivers = [r for _, r in pairs]
    node_graph = np.concatenate([np.repeat(np.arange(len(n_node)), n_node),
                                 np.full(pad_nodes, len(n_node))]).astype(np.int32)
    graph = Graph(jnp.asarray(senders, jnp.int32), jnp.asarray(receivers, jnp.int32), jnp.asarray(node_graph),
                  jnp.asarray(node_graph[receivers]), jnp.asarray([*n_node, pad_nodes], jnp.int32))
    return graph, senders, receivers, n_real


def random_states(rng, num_nodes, n_real, S, hard):
    """[N, S] one-hot (hard) or Dirichlet (soft) states of the real nodes; padding nodes hold zeros."""
    states = np.zeros((num_nodes, S), np.float32)
    if hard:
        states[np.arange(n_real), rng.integers(S, size=n_real)] = 1.0
    else:
        states[:n_real] = rng.dirichlet(np.full(S, 0.7), size=n_real)
    return states


def brute_counts(states, senders, receivers, k, hard):
    """[N, S] capped counts by a loop over nodes and their in-edges, self-loops skipped: for hard states the number
    of in-neighbours whose arg-max state is c, for soft ones #{r < k : sum_u s_uc > r + 1/2}."""
    N, S = states.shape
    out = np.zeros((N, S), int)
    for v in range(N):
        for c in range(S):
            sources = [u for u, r in zip(senders, receivers) if r == v and u != v]
            if hard:
                out[v, c] = min(k, sum(1 for u in sources if states[u].any() and np.argmax(states[u]) == c))
            else:
                total = sum(float(states[u, c]) for u in sources)
                out[v, c] = sum(1 for r in range(k) if total > r + 0.5)
    return out


@functools.partial(jax.jit, static_argnames=("graphdef", "method", "hard"),
                   compiler_options={"xla_backend_optimization_level": 0})
def _jitted(graphdef, params, method, state_NxS, graph, hard):
    kwargs = {} if hard is None else {"hard": hard}
    return getattr(nnx.merge(graphdef, params), method)(state_NxS, graph, **kwargs)


def run(fsa, method, states, graph, hard=None):
    """fsa.<method>(states, graph[, hard=hard]) as a NumPy array, jitted (eager ops would compile one by one)."""
    graphdef, params = nnx.split(fsa)
    return np.asarray(_jitted(graphdef, params, method, jnp.asarray(states), graph, hard))


def make_fsa(S, k, logits=None, seed=0):
    """A GraphFSA built abstractly (its initialiser would compile eagerly) with table logits `logits` (default:
    N(0, 1))."""
    fsa = nnx.eval_shape(lambda: GraphFSA(S, k, rngs=nnx.Rngs(0)))
    if logits is None:
        logits = np.random.default_rng(seed).normal(size=fsa.table.shape)
    fsa.table = nnx.Param(jnp.asarray(logits, jnp.float32))
    return fsa


def table_logits(nxt):
    """[(k + 1)^S, S, S] logits of the hard table with next states `nxt` [(k + 1)^S, S]."""
    return np.eye(nxt.shape[1], dtype=np.float32)[nxt] * 10.0


def bfs_table():
    """S = 2, k = 1: reached stays reached; unreached becomes reached when a neighbour is reached (character x has
    digit 1 = the count of reached neighbours, so x >= 2)."""
    nxt = np.array([[UNREACHED_BFS, REACHED_BFS]] * 4)
    nxt[2:, UNREACHED_BFS] = REACHED_BFS
    return table_logits(nxt)


def bfs_model(nxt_logits):
    model = FSAModel(ModelConfig(algorithm="bfs", processor="graphfsa"), rngs=nnx.Rngs(0))
    model.fsa.table[...] = jnp.asarray(nxt_logits)
    return model


@nnx.jit
def predict(model, batch):
    """(hard predictions, metric counts) of an FSAModel on a batch."""
    preds = model(batch, train=False)
    return preds, batch_counts(model, preds, batch)


# ---------------------------------------------------------------------------------------------------------------
# 1. Counts and characters


@pytest.mark.parametrize("S,k", [(2, 1), (2, 3), (3, 2), (4, 1), (3, 3)])
@pytest.mark.parametrize("hard", [True, False])
def test_counts_and_characters_match_brute_force(S, k, hard):
    """Capped in-neighbour counts (self-loops excluded, three graphs and padding in one batch) and characters
    sum_c a_c (k + 1)^c against a Python loop, for one-hot and soft states."""
    rng = np.random.default_rng(100 * S + 10 * k + hard)
    graph, senders, receivers, n_real = random_graph(rng)
    states = random_states(rng, graph.num_nodes, n_real, S, hard)
    fsa = make_fsa(S, k)
    want = brute_counts(states, senders, receivers, k, hard)
    assert want.max() == k and want.min() == 0  # the cap is exercised
    np.testing.assert_array_equal(run(fsa, "counts", states, graph), want)
    place = (k + 1) ** np.arange(S)
    np.testing.assert_array_equal(run(fsa, "characters", states, graph), want @ place)


@pytest.mark.parametrize("S,k", [(2, 1), (2, 3), (3, 2), (4, 1)])
def test_characters_are_a_bijection_onto_the_table_rows(S, k):
    """A star per count vector (a_c leaves in state c point to the centre, which also has a self-loop): the centres'
    characters are sum_c a_c (k + 1)^c, and together exactly range((k + 1)^S)."""
    vectors = list(itertools.product(range(k + 1), repeat=S))
    senders, receivers, leaf_states = [], [], []
    centres = list(range(len(vectors)))
    nxt = len(vectors)
    for centre, a in enumerate(vectors):
        senders.append(centre)
        receivers.append(centre)
        for c, count in enumerate(a):
            for _ in range(count):
                senders.append(nxt)
                receivers.append(centre)
                leaf_states.append(c)
                nxt += 1
    states = np.zeros((nxt, S), np.float32)
    states[centres, 0] = 1.0  # the centres' own state is not counted (self-loop)
    states[np.arange(len(vectors), nxt), leaf_states] = 1.0
    order = np.argsort(receivers, kind="stable")
    s, r = np.asarray(senders)[order], np.asarray(receivers)[order]
    graph = Graph(jnp.asarray(s, jnp.int32), jnp.asarray(r, jnp.int32), jnp.zeros(nxt, jnp.int32),
                  jnp.zeros(len(s), jnp.int32), jnp.asarray([nxt], jnp.int32))
    chars = run(make_fsa(S, k), "characters", states, graph)[centres]
    np.testing.assert_array_equal(chars, [sum(a[c] * (k + 1) ** c for c in range(S)) for a in vectors])
    assert sorted(chars.tolist()) == list(range((k + 1) ** S))


# ---------------------------------------------------------------------------------------------------------------
# 2. The step


@pytest.mark.parametrize("S,k", [(2, 1), (3, 2), (4, 1)])
def test_soft_step_is_stochastic_and_hard_step_is_table_lookup(S, k):
    """Softmax rows are positive and sum to 1, so a distribution stays a distribution (and equals s_v P[x_v] by
    hand); the hard table is one-hot at the arg-max and a hard step of one-hot states is a NumPy table lookup."""
    rng = np.random.default_rng(S * 10 + k)
    graph, senders, receivers, n_real = random_graph(rng)
    logits = rng.normal(size=((k + 1) ** S, S, S)).astype(np.float32) * 3
    fsa = make_fsa(S, k, logits)
    P = np.asarray(fsa.transitions(hard=False))
    assert (P > 0).all()
    np.testing.assert_allclose(P.sum(-1), 1.0, atol=1e-6)
    place = (k + 1) ** np.arange(S)

    soft = random_states(rng, graph.num_nodes, n_real, S, hard=False)
    out = run(fsa, "__call__", soft, graph, hard=False)
    assert (out >= 0).all()
    np.testing.assert_allclose(out[:n_real].sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(out[n_real:], 0.0)  # padding nodes hold no state
    x = brute_counts(soft, senders, receivers, k, hard=False) @ place
    np.testing.assert_allclose(out, np.einsum("ns,nst->nt", soft, P[x]), atol=1e-5)

    nxt = np.argmax(logits, -1)
    np.testing.assert_array_equal(np.asarray(fsa.transitions(hard=True)), np.eye(S)[nxt])
    hard = random_states(rng, graph.num_nodes, n_real, S, hard=True)
    out = run(fsa, "__call__", hard, graph, hard=True)
    x = brute_counts(hard, senders, receivers, k, hard=True) @ place
    want = np.eye(S)[nxt[x[:n_real], np.argmax(hard[:n_real], -1)]]
    np.testing.assert_array_equal(out[:n_real], want)
    np.testing.assert_array_equal(out[n_real:], 0.0)


# ---------------------------------------------------------------------------------------------------------------
# 3. A hand-written BFS automaton on FSAModel


@pytest.fixture(scope="module")
def bfs_batches():
    """BFS batches of three graphs each from several families, one of them sparse_er at n = 200, all padded to one
    shape (one compile)."""
    specs = [("er", 12, {}), ("tree", 30, {}), ("grid", 25, {}), ("watts_strogatz", 20, {}),
             ("sparse_er", 200, {"degree": 3.0})]
    tbs = {family: generate("bfs", 3, n, seed=5, graph=family, **opts).trajectories for family, n, opts in specs}
    pad = cover([make_batch(tb, "input").pad_sizes for tb in tbs.values()])
    return {family: make_batch(tb, "input", pad) for family, tb in tbs.items()}


def test_hand_bfs_automaton_reproduces_reach_hints_and_parents(bfs_batches):
    """The hand BFS table run hard by FSAModel gives BFS's reach hint at every live step and, through the parent
    readout, BFS's pi exactly (score 1.0); with every state kept the reach hints go wrong."""
    model = bfs_model(bfs_table())
    for family, batch in bfs_batches.items():
        preds, counts = predict(model, batch)
        graph = graph_of(batch)
        node_len = np.asarray(batch.lengths)[np.asarray(batch.node_graph)]
        real = node_len > 0
        logits = np.asarray(preds.hints["reach_h"])
        truth = np.asarray(batch.hints["reach_h"])
        for t in range(logits.shape[0]):
            live = real & (t + 1 < node_len)
            np.testing.assert_array_equal(logits[t][live] > 0, truth[t + 1][live] > 0, err_msg=f"{family} step {t}")
        # pi: per receiver the arg-max edge's sender is the true parent
        snd, rcv = np.asarray(graph.senders), np.asarray(graph.receivers)
        pi_logits = np.asarray(preds.outputs["pi"])
        parent = np.full(graph.num_nodes, -1)
        best = np.full(graph.num_nodes, -np.inf)
        for e in range(len(snd)):
            if pi_logits[e] > best[rcv[e]]:
                best[rcv[e]], parent[rcv[e]] = pi_logits[e], snd[e]
        true_parent = snd[np.asarray(batch.outputs["pi"])]
        np.testing.assert_array_equal(parent[real], true_parent[real], err_msg=family)
        s = scores(model, counts)
        assert s["score"] == 1.0 and s["hint/reach_h"] == 1.0, (family, s)

    frozen = bfs_model(table_logits(np.array([[UNREACHED_BFS, REACHED_BFS]] * 4)))
    s = scores(frozen, predict(frozen, bfs_batches["tree"])[1])
    assert s["hint/reach_h"] < 1.0 and s["score"] < 1.0


def test_bfs_pointer_is_decoded_by_a_fixed_rule_not_learned(bfs_batches):
    """BFS's pi is not learned and every place that describes the model says so: the registry's description, the
    model's `fixed_outputs` (DFS, with no output, has none). The rule has no parameters: two tables that give the same
    reach trajectory give the same pi, and no loss on pi can move the table (its gradient is exactly 0) while the
    model's own loss has no output term."""
    entry = get_processor("graphfsa")
    assert "fixed rule" in entry.description and "not learned" in entry.description
    model = bfs_model(bfs_table())
    assert model.fixed_outputs == {"pi": PARENT_RULE} and "not learned" in PARENT_RULE
    assert FSAModel(ModelConfig(algorithm="dfs", processor="graphfsa"), rngs=nnx.Rngs(0)).fixed_outputs == {}

    batch = bfs_batches["er"]
    sharper = bfs_model(bfs_table() * 3.0)  # another table, the same hard automaton
    pi, pi_sharper = (np.asarray(predict(m, batch)[0].outputs["pi"]) for m in (model, sharper))
    np.testing.assert_array_equal(pi, pi_sharper)

    graphdef, params = nnx.split(model)
    weights = jnp.asarray(np.random.default_rng(0).normal(size=pi.shape), jnp.float32)

    def pointer_objective(p):
        return jnp.sum(nnx.merge(graphdef, p)(batch, train=True).outputs["pi"] * weights)

    grad = np.asarray(jax.jit(jax.grad(pointer_objective))(params)["fsa"]["table"])
    np.testing.assert_array_equal(grad, 0.0)
    m = nnx.merge(graphdef, params)
    _, parts = m.loss(m(batch, train=True), batch)
    assert set(parts) == {"hint/reach_h"}


# ---------------------------------------------------------------------------------------------------------------
# 4. The Distance task


def test_hop_distances_match_networkx_and_a_hand_example():
    """`hop_distances` on a hand-drawn directed graph and on random graphs against networkx (-1: unreachable)."""
    s, r = np.array([0, 1, 2, 0, 4, 5]), np.array([1, 2, 3, 3, 5, 4])  # 0->1->2->3, 0->3, 4<->5
    np.testing.assert_array_equal(hop_distances(6, s, r, 0), [0, 1, 2, 1, -1, -1])
    rng = np.random.default_rng(0)
    for trial in range(5):
        n = 15
        g = nx.gnp_random_graph(n, 0.12, seed=trial, directed=True)
        snd, rcv = np.array(list(g.edges), int).T
        root = int(rng.integers(n))
        want = np.full(n, -1)
        for v, d in nx.single_source_shortest_path_length(g, root).items():
            want[v] = d
        np.testing.assert_array_equal(hop_distances(n, snd, rcv, root), want)


def distance_truth(batch):
    """(parity target, mask) of a distance batch recomputed with networkx from its edges and root states."""
    N = batch.graph.num_nodes
    start_NxS = np.asarray(batch.start_NxS)
    roots = np.flatnonzero((start_NxS.sum(-1) > 0) & (np.argmax(start_NxS, -1) == ROOT))
    g = nx.DiGraph()
    g.add_nodes_from(range(N))
    g.add_edges_from((u, v) for u, v in zip(np.asarray(batch.graph.senders), np.asarray(batch.graph.receivers))
                     if u != v)
    target, mask = np.zeros(N, int), np.zeros(N, bool)
    for root in roots:
        for v, d in nx.single_source_shortest_path_length(g, int(root)).items():
            target[v], mask[v] = d % 2, True
    return target, mask


@pytest.mark.parametrize("family", ["tree", "sparse_er"])
def test_distance_automaton_is_exact(family):
    """The hand-written parity automaton scores 1.0 at n up to 60; the batch's targets and mask agree with networkx
    (nodes not connected to the root are masked out, and sparse_er has some)."""
    fsa = make_fsa(len(STATE_NAMES), 1, distance_automaton())
    rng = np.random.default_rng(1)
    for n in (10, 60):
        sizes = [n] * 6
        b = distance_batch(rng, sizes, family, sum(sizes) + 1, 12 * (sum(sizes) + 1))
        target, mask = distance_truth(b)
        np.testing.assert_array_equal(np.asarray(b.mask_N), mask)
        np.testing.assert_array_equal(np.asarray(b.target_N)[mask], target[mask])
        if family == "sparse_er":
            assert (~mask[:sum(sizes)]).any()
        correct, total = accuracy(fsa, b, n + 1)
        assert total == mask.sum() and correct == total, (family, n)


def test_distance_automaton_table_by_hand():
    """Rows of the hand-written table read off by hand: the root turns even, an unreached node flips the parity
    its finished neighbours agree on and waits otherwise, finished states stay."""
    nxt = np.argmax(distance_automaton(), -1)

    def x(**counts):
        return sum(counts.get(name, 0) * 2 ** c for c, name in enumerate(STATE_NAMES))

    assert (nxt[:, ROOT] == EVEN).all() and (nxt[:, EVEN] == EVEN).all() and (nxt[:, ODD] == ODD).all()
    assert nxt[x(even=1), UNREACHED] == ODD and nxt[x(odd=1, unreached=1), UNREACHED] == EVEN
    assert nxt[x(even=1, odd=1), UNREACHED] == UNREACHED and nxt[x(root=1), UNREACHED] == UNREACHED


# ---------------------------------------------------------------------------------------------------------------
# 5. The absorbing penalty


def test_absorbing_penalty():
    """0 when the final states put (almost) all their mass on themselves, positive otherwise, and equal to
    sum_{x, f} (1 - P[x, f, f]) recomputed in NumPy."""
    rng = np.random.default_rng(3)
    S = len(STATE_NAMES)
    logits = rng.normal(size=(2 ** S, S, S)).astype(np.float32)
    fsa = make_fsa(S, 1, logits)
    P = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    want = sum(1.0 - P[x, f, f] for x in range(2 ** S) for f in FINALS)
    got = float(fsa.absorbing_penalty(FINALS))
    assert got > 1.0
    np.testing.assert_allclose(got, want, rtol=1e-5)
    for f in FINALS:
        logits[:, f, f] = 20.0
    assert abs(float(make_fsa(S, 1, logits).absorbing_penalty(FINALS))) < 1e-3
    logits[:, EVEN, ODD] = 20.0  # even now splits its mass with odd
    assert float(make_fsa(S, 1, logits).absorbing_penalty(FINALS)) > 1.0


# ---------------------------------------------------------------------------------------------------------------
# 6. describe and usage


def test_describe_lists_the_changing_transitions():
    """Without usage the hand BFS table reads as its two state-changing rules and no identity transition."""
    text = make_fsa(2, 1, bfs_table()).describe(["unreached", "reached"])
    lines = text.splitlines()
    assert lines[1:] == ["  unreached + neighbours [reached:1] -> reached",
                         "  unreached + neighbours [unreached:1, reached:1] -> reached"]
    assert "transitions not listed keep the state" in lines[0]


def test_describe_with_usage_counts_live_nodes_and_steps(bfs_batches):
    """FSAModel.describe shows how often each transition was taken: the counts sum to live nodes x steps, and the
    unreached -> reached ones to the nodes BFS reaches besides the sources."""
    batch = bfs_batches["tree"]
    model = bfs_model(bfs_table())
    text = model.describe(batch)
    assert "(Nx): times taken on the data" in text.splitlines()[0]
    counts = [(line, int(m.group(1))) for line in text.splitlines()[1:] for m in [re.search(r"\((\d+)x\)$", line)]]
    assert all(c > 0 for _, c in counts)
    n_node = np.asarray(batch.graph.n_node)
    lengths = np.asarray(batch.lengths)
    assert sum(c for _, c in counts) == int(np.sum(n_node * np.maximum(lengths - 1, 0)))
    reach = np.asarray(batch.hints["reach_h"])
    node_graph = np.asarray(batch.node_graph)
    final = reach[lengths[node_graph] - 1, np.arange(len(node_graph))] * (lengths[node_graph] > 0)
    newly = int(final.sum() - (lengths > 0).sum())
    assert sum(c for line, c in counts if line.lstrip().startswith("unreached") and "-> reached" in line) == newly
    assert all("-> unreached" not in line for line, _ in counts if line.lstrip().startswith("reached"))


def test_usage_sums_to_weighted_real_nodes():
    """`usage` of one-hot states counts each real node once at its (character, state) (padding nodes hold no
    state), weighted by `weight_N`."""
    rng = np.random.default_rng(4)
    graph, senders, receivers, n_real = random_graph(rng)
    S, k = 3, 2
    fsa = make_fsa(S, k)
    states = random_states(rng, graph.num_nodes, n_real, S, hard=True)
    weight = rng.integers(1, 4, size=graph.num_nodes).astype(np.float32)
    used = np.asarray(jax.jit(lambda s, w: fsa.usage(s, graph, w))(states, weight))
    x = brute_counts(states, senders, receivers, k, hard=True) @ ((k + 1) ** np.arange(S))
    want = np.zeros(((k + 1) ** S, S))
    for v in range(n_real):
        want[x[v], np.argmax(states[v])] += weight[v]
    np.testing.assert_array_equal(used, want)


# ---------------------------------------------------------------------------------------------------------------
# 7. Errors


def test_unsupported_algorithms_and_bad_sizes_raise():
    """Algorithms without a finite node hint, fewer than 2 states, a too-large table and fewer states than the
    hint's classes are ValueErrors that say what is wrong."""
    with pytest.raises(ValueError, match=r"bellman_ford.*unbounded real distance"):
        ModelConfig(algorithm="bellman_ford", processor="graphfsa")
    with pytest.raises(ValueError, match=r"insertion_sort.*permutation"):
        ModelConfig(algorithm="insertion_sort", processor="graphfsa")
    with pytest.raises(ValueError, match="at least 2 states"):
        GraphFSA(1, 1, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="bound k >= 1"):
        GraphFSA(2, 0, rngs=nnx.Rngs(0))
    assert 4 ** 12 * 12 ** 2 > MAX_TABLE_ENTRIES
    with pytest.raises(ValueError, match=f"over the limit of {MAX_TABLE_ENTRIES}"):
        GraphFSA(12, 3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"dfs needs fsa_states >= 3 .*color.*got 2"):
        FSAModel(ModelConfig(algorithm="dfs", processor="graphfsa", fsa_states=2), rngs=nnx.Rngs(0))
    model = nnx.eval_shape(lambda: FSAModel(ModelConfig(algorithm="dfs", processor="graphfsa"), rngs=nnx.Rngs(0)))
    assert model.fsa.states == 3


# ---------------------------------------------------------------------------------------------------------------
# 8. Training on CLRS trajectories


def run_config(algorithm, steps, *overrides):
    """A short graphfsa run. XLA compiles dominate: with seed 0 the padded training shape grows twice (3 compiles);
    other seeds compile up to 7 times (seeds 1-3 also reach a validation score of 1.0 on BFS by step 20)."""
    return load(None, ["model.processor=graphfsa", f"model.algorithm={algorithm}", "train.learning_rate=0.1",
                       "train.batch_size=8", f"train.steps={steps}", "train.eval_every=20", "train.val_samples=8",
                       "train.val_size=8", "train.sizes=[4, 7, 11]", "train.log_every=20", "train.seed=0",
                       *overrides])


def test_training_learns_bfs_exactly(tmp_path):
    """60 steps of Adam on BFS reach: the automaton becomes exact, so validation (pi through the readout) is 1.0."""
    summary = Trainer(run_config("bfs", 60), tmp_path, progress=False).run()
    assert summary["best_val_score"] == 1.0


def test_training_dfs_scores_colour_hints(tmp_path):
    """DFS has no outputs the automaton predicts: its validation score is the colour hint's accuracy, a number in
    [0, 1]."""
    config = run_config("dfs", 5, "train.sizes=[5]", "train.val_size=5", "train.eval_every=5")
    summary = Trainer(config, tmp_path, progress=False).run()
    assert 0.0 <= summary["best_val_score"] <= 1.0
    records = [json.loads(line) for line in (tmp_path / METRICS_FILE).read_text().splitlines()]
    val = [r for r in records if "val_score" in r]
    assert val and all(r["val_score"] == r["val/hint/color"] for r in val)
    assert not any(k.startswith("val/output/") for r in val for k in r)


def test_gradient_reaches_the_table_but_not_through_neighbours(bfs_batches):
    """The loss gradient wrt the table is finite and nonzero; a node's next state has zero Jacobian wrt every other
    node's state (counts are rounded, as in Diff-FSA), and small neighbour perturbations leave characters alone."""
    model = build_model(run_config("bfs", 1))
    batch = bfs_batches["er"]
    graphdef, params = nnx.split(model)

    def loss(p):
        m = nnx.merge(graphdef, p)
        return m.loss(m(batch, train=True), batch)[0]

    grad = np.asarray(jax.jit(jax.grad(loss))(params)["fsa"]["table"][...])
    assert np.isfinite(grad).all() and np.abs(grad).max() > 0

    rng = np.random.default_rng(6)
    graph, _, _, n_real = random_graph(rng, n_node=(5, 4), pad_nodes=1)
    S = 3
    fsa = make_fsa(S, 2, seed=1)
    soft = jnp.asarray(random_states(rng, graph.num_nodes, n_real, S, hard=False))
    J = np.array(jax.jit(jax.jacobian(lambda s: fsa(s, graph)))(soft))  # [N, S, N, S]
    own = np.einsum("vsvt->vst", J)
    assert np.abs(own[:n_real]).max() > 0
    for v in range(graph.num_nodes):
        J[v, :, v, :] = 0.0
    np.testing.assert_array_equal(J, 0.0)

    hard = random_states(rng, graph.num_nodes, n_real, S, hard=True)
    chars = run(fsa, "characters", hard, graph)
    u = 0
    moved = hard.copy()
    moved[u] = 0.9 * hard[u] + 0.1 * np.roll(hard[u], 1)  # below every rounding threshold
    np.testing.assert_array_equal(run(fsa, "characters", moved, graph), chars)
    moved[u] = 0.3 * hard[u] + 0.7 * np.roll(hard[u], 1)  # across them (for every out-neighbour of u here)
    changed = run(fsa, "characters", moved, graph) != chars
    receivers_of_u = {int(r) for s_, r in zip(np.asarray(graph.senders), np.asarray(graph.receivers))
                      if s_ == u and r != u}
    assert receivers_of_u and set(np.flatnonzero(changed).tolist()) == receivers_of_u


# ---------------------------------------------------------------------------------------------------------------
# 9. Learning the Distance task


def test_train_distance_learns_parity():
    """80 Diff-FSA steps on trees and sparse ER graphs of n = 4..10 give a hard automaton that is >= 95% right on
    trees of n = 20 (it reaches 1.0 in about 100 steps)."""
    fsa, curve = train_distance(seed=0, steps=80)
    assert curve[-1]["loss"] < curve[0]["loss"]
    acc = evaluate_distance(fsa, [20], ["tree"], graphs=32, seed=0)
    assert acc["tree"][20] >= 0.95, acc
