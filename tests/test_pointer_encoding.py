"""Where a node pointer's encoding goes: CLRS adds it to the edge i -> p_i (`edge_fts[b, i, p_i]`, sender i, receiver
p_i); `pointer_encoding = "child"` keeps the reverse edge. Checked against the pointer's own definition, on both
message graphs, padding included, and for run folders saved before the option existed."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from nar.config import Config, load_run_config
from nar.data import generate
from nar.data.batch import make_batch
from nar.model.net import Model, ModelConfig, graph_of, reverse_edges
from nar.model.probes import truth_features


@pytest.mark.parametrize(("algorithm", "message_graph"), [("bfs", "input"), ("dfs", "input"), ("dfs", "complete"),
                                                           ("bellman_ford", "input")])
def test_reverse_edges_swaps_sender_and_receiver(algorithm, message_graph):
    """Every edge's reverse is the edge with sender and receiver swapped, on the sparse symmetric input graph (a
    directed DFS graph made symmetric) and the complete graph, with an empty slot and padding edges."""
    tb = generate(algorithm, 4, [5, 9, 1, 7], seed=2).trajectories
    b = make_batch(tb, message_graph, num_graphs=len(tb) + 2)
    graph = jax.tree.map(jnp.asarray, graph_of(b))
    rev = np.asarray(jax.jit(reverse_edges)(graph))
    snd, rcv = np.asarray(graph.senders), np.asarray(graph.receivers)
    assert (snd[rev] == rcv).all() and (rcv[rev] == snd).all()
    real = snd != graph.num_nodes - 1
    assert (rev[rev] == np.arange(len(rev)))[real].all()  # an involution on real edges
    loops = snd == rcv
    assert (rev[loops] == np.flatnonzero(loops)).all()


def pointer_edge_features(pointer_encoding, message_graph, t=2):
    """(edge features the encoder adds for BFS's pointer hint `pi_h` at step t, minus those of a zero pointer;
    senders; receivers; pi_h at t as global node ids per node)."""
    tb = generate("bfs", 3, [6, 8, 5], seed=4).trajectories
    b = make_batch(tb, message_graph, num_graphs=len(tb) + 1)
    graph = jax.tree.map(jnp.asarray, graph_of(b))
    cfg = ModelConfig(algorithm="bfs", processor="mpnn", hidden=4, pointer_encoding=pointer_encoding)
    model = Model(cfg, rngs=nnx.Rngs(0))
    probe = model.hint_probes["pi_h"]
    ptr = truth_features(b.hints["pi_h"][t], *probe, graph)
    reverse = reverse_edges(graph) if model.encoder_reverses else None
    enc = nnx.Dict({"pi_h": model.encoder.layers["pi_h"]})
    model.encoder.layers = enc
    model.encoder.probes = {"pi_h": probe}
    _, with_ptr, _ = model.encoder({"pi_h": ptr}, graph, 4, reverse)
    _, without, _ = model.encoder({"pi_h": jnp.zeros_like(ptr)}, graph, 4, reverse)
    senders, receivers = np.asarray(graph.senders), np.asarray(graph.receivers)
    target = senders[np.asarray(b.hints["pi_h"][t])]  # the stored pointer is the edge target -> node
    return np.asarray(with_ptr.dense() - without.dense()), senders, receivers, target


@pytest.mark.parametrize("message_graph", ["input", "complete"])
def test_clrs_encoding_puts_the_pointer_on_the_edge_from_the_node_to_its_target(message_graph):
    diff, s, r, target = pointer_edge_features("clrs", message_graph)
    flagged = np.abs(diff).sum(-1) > 0
    real = s != len(target) - 1
    want = (target[s] == r) & real  # sender i, receiver p_i
    assert (flagged[real] == want[real]).all()
    assert want.sum() > 0 and (s[want] != r[want]).any()  # some pointer is not a self-pointer at this step


def test_child_encoding_puts_it_on_the_edge_from_the_target_to_the_node():
    diff, s, r, target = pointer_edge_features("child", "input")
    flagged = np.abs(diff).sum(-1) > 0
    real = s != len(target) - 1
    assert (flagged[real] == ((target[r] == s) & real)[real]).all()


def test_run_saved_before_the_option_reads_as_child(tmp_path):
    saved = Config().to_toml()
    assert 'pointer_encoding = "clrs"' in saved  # runs written now keep their encoding
    (tmp_path / "new.toml").write_text(saved)
    assert load_run_config(tmp_path / "new.toml").model.pointer_encoding == "clrs"
    old = "\n".join(line for line in saved.splitlines() if not line.startswith("pointer_encoding"))
    (tmp_path / "old.toml").write_text(old)
    assert load_run_config(tmp_path / "old.toml").model.pointer_encoding == "child"


def test_unknown_pointer_encoding_is_refused():
    with pytest.raises(ValueError, match="pointer_encoding must be one of"):
        ModelConfig(pointer_encoding="parent")
