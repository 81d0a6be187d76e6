"""Evaluation on stored datasets: same scores as drawing the data, clear errors on bad or mismatched data."""

import pytest
from flax import nnx

import nar
from nar.data import generate
from nar.data.store import CorruptDatasetError, save
from nar.evaluate import Evaluator, batches, evaluate_dataset

CFG = nar.load_config(None, ["model.algorithm=bfs", "model.processor=pgn", "model.hidden=8"])


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    model = nar.build_model(CFG)
    params = nnx.to_pure_dict(nnx.split(model)[1])
    ds = generate("bfs", 6, 10, seed=5)
    path = save(ds, tmp_path_factory.mktemp("data") / "bfs")
    return model, params, ds, path


def test_stored_dataset_scores_equal_in_memory_scores(setup):
    model, params, ds, path = setup
    ev = Evaluator(model)
    got = evaluate_dataset(model, params, path, CFG.eval, ev)
    want = ev(params, batches(ds.trajectories, model.config, 32, 1 << 20))
    assert list(got) == [10]
    for key, value in want.items():
        assert got[10][key] == pytest.approx(value)
    assert 0.0 <= got[10]["score"] <= 1.0 and got[10]["graphs"] == 6


def test_dataset_of_another_algorithm_is_refused(setup, tmp_path):
    model, params, _, _ = setup
    path = save(generate("dfs", 2, 6, seed=0), tmp_path / "dfs")
    with pytest.raises(ValueError, match="holds dfs trajectories but the model was trained on bfs"):
        evaluate_dataset(model, params, path, CFG.eval)


def test_corrupt_dataset_is_detected(setup, tmp_path):
    model, params, ds, _ = setup
    path = save(ds, tmp_path / "bfs")
    victim = sorted(p for p in path.iterdir() if p.suffix == ".npy")[0]
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(CorruptDatasetError, match=victim.name):
        evaluate_dataset(model, params, path, CFG.eval)


def test_cli_eval_on_data_reports_errors(tmp_path, capsys):
    from nar.cli import main

    assert main(["eval", str(tmp_path / "missing")]) == 2
    assert "is not a run directory" in capsys.readouterr().err


def test_sort_test_sets_beyond_64_are_uniform_keys_not_a_graph_family():
    """'auto' means sparse ER beyond n = 64 for graph algorithms; a sort has no graph: keys at every size, the
    output a sorting permutation of them (checked against numpy's argsort)."""
    import numpy as np

    from nar.evaluate import test_set as draw_test_set

    cfg = nar.EvalConfig(sizes=(80,), samples=3)
    assert cfg.family(80) == "sparse_er"
    tb = draw_test_set("insertion_sort", 80, cfg)
    assert len(tb) == 3 and tb.n_node.tolist() == [80] * 3
    for i in range(3):
        t = tb.trajectory(i)
        key = t.inputs["key"]
        assert np.all((0 <= key) & (key < 1))
        order = np.argsort(key, kind="stable")
        pred = t.outputs["pred"]  # each element's predecessor in sorted order (the first points to itself)
        assert pred[order[0]] == order[0] and np.array_equal(pred[order[1:]], order[:-1])
