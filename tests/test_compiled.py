"""Neural compilation (`nar.compiled`) and the trained-vs-compiled comparison (`nar.compare`).

The truth is nar's executors (themselves checked against CLRS and networkx in test_algorithms.py): a compiled model
must reproduce every hint and output of their trajectories, on CLRS's test graphs, on sparse graphs up to n = 4,096,
and on tie-heavy integer weights, directed graphs and self-loop weights."""

import json

import numpy as np
import pytest

from nar.algorithms import GraphBatch, run_batch
from nar.cli import main
from nar.compare import _cka, compare_run
from nar.compiled import compile_model, save_compiled
from nar.config import EvalConfig
from nar.evaluate import Evaluator, batches, evaluate_sizes
from nar.train import load_run

HINTS = {"bfs": ("pi_h", "reach_h"), "bellman_ford": ("pi_h", "msk")}


def assert_exact(res: dict, algorithm: str):
    """Every output and hint right on every node and graph; Bellman-Ford's scalar hint d without error."""
    assert res["score"] == 1.0 and res["exact"] == 1.0, res
    for hint in HINTS[algorithm]:
        assert res[f"hint/{hint}"] == 1.0, (hint, res)
    if algorithm == "bellman_ford":
        assert res["hint/d"] < 1e-10, res


@pytest.mark.parametrize("algorithm", ["bfs", "bellman_ford"])
def test_exact_on_clrs30_test_split(algorithm):
    # n = 64 with seed 3 on CLRS's ER graphs is CLRS30's test split; the complete message graph is CLRS's.
    model, params, config = compile_model(algorithm)
    results = evaluate_sizes(model, params, EvalConfig(sizes=(16, 64), samples=32, seed=3))
    for n in (16, 64):
        assert results[n]["family"] == "er" and results[n]["graphs"] == 32
        assert_exact(results[n], algorithm)


@pytest.mark.parametrize("algorithm", ["bfs", "bellman_ford"])
def test_exact_on_sparse_graphs_up_to_4096(algorithm):
    model, params, _ = compile_model(algorithm, message_graph="input")
    for sizes, samples in (((256, 1024), 8), ((4096,), 2)):
        results = evaluate_sizes(model, params, EvalConfig(sizes=sizes, samples=samples))
        for n in sizes:
            assert results[n]["family"] == "sparse_er"
            assert_exact(results[n], algorithm)


def tie_heavy_graphs(directed: bool, seed: int = 0):
    """Integer weights 1..3 (many equal path lengths: CLRS keeps the old parent on ties), self-loop weights on
    every other graph, sizes 4..23."""
    rng = np.random.default_rng(seed)
    graphs, sources = [], []
    for g in range(40):
        n = int(rng.integers(4, 24))
        A = rng.integers(1, 4, (n, n)).astype(np.float32) * (rng.random((n, n)) < 0.3)
        if not directed:
            A = np.triu(A, 1)
            A = A + A.T
        np.fill_diagonal(A, rng.integers(1, 3, n) if g % 2 else 0)
        graphs.append(A)
        sources.append(int(rng.integers(0, n)))
    return GraphBatch.from_dense(graphs), sources


@pytest.mark.parametrize("directed", [False, True])
@pytest.mark.parametrize("message_graph", ["complete", "input"])
@pytest.mark.parametrize("algorithm", ["bfs", "bellman_ford"])
def test_exact_on_ties_directed_graphs_and_self_loops(algorithm, message_graph, directed):
    graphs, sources = tie_heavy_graphs(directed)
    tb = run_batch(algorithm, graphs=graphs, sources=sources)
    model, params, config = compile_model(algorithm, message_graph=message_graph)
    assert_exact(Evaluator(model)(params, batches(tb, config.model, 16, 1 << 20)), algorithm)


@pytest.mark.parametrize("processor", ["pgn", "pgn_mask", "gmpnn", "triplet_gmpnn"])
def test_every_mpnn_family_processor_runs_the_program(processor):
    for algorithm in ("bfs", "bellman_ford"):
        model, params, _ = compile_model(algorithm, processor)
        results = evaluate_sizes(model, params, EvalConfig(sizes=(12,), samples=8))
        assert_exact(results[12], algorithm)


def test_the_check_detects_a_wrong_program():
    # Without the "keep my pointer" channel, nodes that are not newly reached lose their pointer: the pointer hint
    # must score below 1, while reach_h (a path the channel does not feed) stays exact.
    model, params, _ = compile_model("bfs")
    params["hint_decoder"]["layers"]["pi_h"]["out"]["kernel"] = params["hint_decoder"]["layers"]["pi_h"]["out"][
        "kernel"].at[1, 0].set(0.0)
    res = evaluate_sizes(model, params, EvalConfig(sizes=(16,), samples=16))[16]
    assert res["hint/pi_h"] < 0.9 and res["hint/reach_h"] == 1.0


def test_refusals_name_the_problem():
    with pytest.raises(ValueError, match="dfs.*stack and counters"):
        compile_model("dfs")
    with pytest.raises(ValueError, match="MPNN-family.*tropical"):
        compile_model("bfs", "tropical")


def test_cka_is_one_up_to_rotation_and_scale_and_low_for_unrelated_states():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 6))
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    assert _cka(a, 3.0 * a @ q) == pytest.approx(1.0)
    assert _cka(a, rng.normal(size=(400, 5))) < 0.1


def test_saved_compiled_run_through_the_cli(tmp_path, capsys):
    run = tmp_path / "bf"
    assert main(["compile", "bellman_ford", "--message-graph", "input", "--out", str(run)]) == 0
    assert main(["eval", str(run), "--sizes", "16,256", "--samples", "4", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    for n in ("16", "256"):
        assert_exact(results[n], "bellman_ford")
    # The compiled model against itself: every hint agrees and the states are the same at every step.
    plot = tmp_path / "cmp.png"
    assert main(["compare", str(run), "--compiled", "--sizes", "16", "--samples", "6", "--plot", str(plot),
                 "--json"]) == 0
    steps = json.loads(capsys.readouterr().out)["16"]["steps"]
    assert plot.stat().st_size > 0 and len(steps) >= 2
    for row in steps:
        assert row["agree/pi_h"] == 1.0 and row["agree/msk"] == 1.0 and row["error/d"] == 0.0
        assert row["cka"] == pytest.approx(1.0, abs=1e-6)


def test_compare_sees_a_different_model(tmp_path):
    # A compiled BFS whose keep channel is cut, saved as a run: its pointer hints drift from the compiled model's
    # after the first step (step 1 only has the source reached), reach_h never does.
    run = save_compiled(tmp_path / "bfs", "bfs")
    model, params, config = load_run(run)
    params["hint_decoder"]["layers"]["pi_h"]["out"]["kernel"] = params["hint_decoder"]["layers"]["pi_h"]["out"][
        "kernel"].at[1, 0].set(0.0)
    steps = compare_run(model, params, config, sizes=(16,), samples=8)[16]["steps"]
    assert all(r["agree/reach_h"] == 1.0 for r in steps)
    assert min(r["agree/pi_h"] for r in steps) < 0.9
