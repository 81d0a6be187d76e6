"""`nar bench run` (nar.bench.suite) and `nar bench suite-speed`'s time limit (nar.bench.speed_suite), on a tiny
suite: bfs and Bellman-Ford with PGN and GraphFSA, one seed, a 16-wide model trained 6 steps on batches of four
graphs of 4 or 5 nodes, tested at n = 5 and 8 on four graphs each.

The suite is run once for the whole module (`finished`) and its results and run folders are shared, read-only:
tests that need to change something copy them first. Every check compares the suite's output with a truth
computed independently (the run's own checkpoint, metrics.jsonl, the test and validation sets drawn again, the
cell config layered by hand on its config name ALGORITHM/PROCESSOR).

As in tests/test_train.py, JAX's persistent compilation cache lives in a temporary directory while this module
runs, and (as in tests/test_forget.py) XLA runs with most optimisations off: compiles dominate the cost of such
tiny runs. The `--jobs` workers are separate processes; they get the same two settings through the environment,
so they compile (or load) the same executables and their results are comparable bit for bit.
"""

import json
import math
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import jax
import numpy as np
import pytest

from nar.bench import speed_suite
from nar.bench import suite as bench
from nar.checkpoint import Checkpointer
from nar.cli import main
from nar.config import load
from nar.data.graphs import erdos_renyi
from nar.evaluate import evaluate_sizes
from nar.evaluate import test_set as eval_test_set
from nar.timing import TIMING_FILE
from nar.train import (
    CHECKPOINTS,
    CONFIG_FILE,
    METRICS_FILE,
    Trainer,
    load_run,
    train_trajectories,
    validation_set,
)

STEPS = 6
EVAL_SIZES = (5, 8)
SUITE = f"""\
name = "tiny"
algorithms = ["bfs", "bellman_ford"]
processors = ["pgn", "graphfsa"]
seeds = [0]

[model]
hidden = 16

[train]
steps = {STEPS}
learning_rate = 0.03
batch_size = 4
sizes = [4, 5]
val_samples = 4
val_size = 4
eval_every = 2
checkpoint_every = 2
log_every = 1

[eval]
sizes = [5, 8]
samples = 4
"""
# The same budget as `section.key=value` overrides, to build each cell's config by hand (seed added per cell).
BUDGET = ["model.hidden=16", f"train.steps={STEPS}", "train.learning_rate=0.03", "train.batch_size=4",
          "train.sizes=[4, 5]",
          "train.val_samples=4", "train.val_size=4", "train.eval_every=2", "train.checkpoint_every=2",
          "train.log_every=1", "eval.sizes=[5, 8]", "eval.samples=4"]
DONE = ["bfs_pgn_s0", "bfs_graphfsa_s0", "bellman_ford_pgn_s0"]
UNSUPPORTED = "bellman_ford_graphfsa_s0"
# Result fields that legitimately differ between two runs of one cell.
VOLATILE_SCORE_KEYS = {"data_seconds", "eval_seconds"}


@pytest.fixture(scope="module", autouse=True)
def fast_jax(tmp_path_factory):
    """Persistent compilation cache in a temporary directory (every compile stored: min time 0) and XLA with
    most optimisations off, in this process and, through the environment, in the `--jobs` workers."""
    cache = tmp_path_factory.mktemp("jax_cache")
    settings = {"jax_compilation_cache_dir": str(cache), "jax_persistent_cache_min_compile_time_secs": 0.0,
                "jax_disable_most_optimizations": True}
    old = {k: jax.config.values[k] for k in settings}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in settings.items():
            jax.config.update(k, v)
            mp.setenv(k.upper(), str(v).lower() if isinstance(v, bool) else str(v))
        mp.setenv("JAX_PLATFORMS", "cpu")
        yield
    for k, v in old.items():
        jax.config.update(k, v)


def write_suite(folder: Path, text: str = SUITE, name: str = "tiny.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The tiny suite, run once in process: (suite, its file, results and runs folders, summary, log, results)."""
    root = tmp_path_factory.mktemp("finished")
    path = write_suite(root)
    suite = bench.load_suite(path)
    log: list[str] = []
    summary = bench.run_suite(suite, root / "results", root / "runs", command="pytest tiny", log=log.append)
    results = {c: json.loads((root / "results" / f"{c}.json").read_text()) for c in summary["done"]}
    return SimpleNamespace(suite=suite, path=path, results_dir=root / "results", runs_dir=root / "runs",
                           summary=summary, log=log, results=results)


def copy_cell(finished, cell: str, dest: Path, result: bool = True) -> tuple[Path, Path]:
    """A copy of a finished cell's run folder (and result file) under dest: (results dir, runs dir)."""
    results, runs = dest / "results", dest / "runs"
    shutil.copytree(finished.runs_dir / cell, runs / cell)
    results.mkdir(parents=True)
    if result:
        shutil.copy2(finished.results_dir / f"{cell}.json", results / f"{cell}.json")
    return results, runs


def stable_scores(result: dict) -> dict:
    return {n: {k: v for k, v in r.items() if k not in VOLATILE_SCORE_KEYS} for n, r in result["scores"].items()}


def assert_same_outcome(a: dict, b: dict, loss_rtol: float = 0.0):
    """Two results of one cell agree on everything the training and test determine (bitwise: floats compared
    with ==). For runs on different core counts (`loss_rtol` > 0) the loss curve agrees within `loss_rtol`, and the
    validation scores within one validation graph: XLA's CPU reductions split work by thread count, and a last-bit
    difference can flip a near-tie on one graph of a barely trained model."""
    assert stable_scores(a) == stable_scores(b)
    for key in ("best_step", "steps"):
        assert a["training"][key] == b["training"][key], key
    one_graph = 1.0 / a["config"]["train"]["val_samples"] if loss_rtol else 0.0
    assert a["training"]["best_val_score"] == pytest.approx(b["training"]["best_val_score"], rel=0, abs=one_graph)
    loss_a, loss_b = a["training"]["curve"]["loss"], b["training"]["curve"]["loss"]
    assert [s for s, _ in loss_a] == [s for s, _ in loss_b]
    assert [v for _, v in loss_a] == pytest.approx([v for _, v in loss_b], rel=loss_rtol, abs=0)
    val_a, val_b = a["training"]["curve"]["val_score"], b["training"]["curve"]["val_score"]
    assert [s for s, _ in val_a] == [s for s, _ in val_b]
    assert [v for _, v in val_a] == pytest.approx([v for _, v in val_b], rel=0, abs=one_graph)
    assert a["data"] == b["data"]
    assert a["config"] == b["config"]


def read_metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / METRICS_FILE).read_text().splitlines()]


# ---------------------------------------------------------------------------------------------------------------
# End to end


def test_suite_runs_supported_cells_and_lists_the_unsupported(finished):
    assert finished.summary["done"] == DONE
    assert list(finished.summary["unsupported"]) == [UNSUPPORTED]
    assert "graphfsa cannot represent bellman_ford" in finished.summary["unsupported"][UNSUPPORTED]
    assert sorted(p.name for p in finished.results_dir.iterdir()) == sorted(f"{c}.json" for c in DONE)
    assert any(UNSUPPORTED in line and "unsupported" in line for line in finished.log)
    for cell in DONE:  # each cell's closing line shows its scores
        assert any(line.startswith(f"{cell}: n=5:") and "n=8:" in line for line in finished.log), cell


@pytest.mark.parametrize("cell", DONE)
def test_result_file_is_complete(finished, cell):
    r = finished.results[cell]
    algorithm, processor, seed = {"bfs_pgn_s0": ("bfs", "pgn", 0), "bfs_graphfsa_s0": ("bfs", "graphfsa", 0),
                                  "bellman_ford_pgn_s0": ("bellman_ford", "pgn", 0)}[cell]
    assert (r["algorithm"], r["processor"], r["seed"], r["suite"]) == (algorithm, processor, seed, "tiny")
    assert r["sizes"] == list(EVAL_SIZES)
    assert r["families"] == {"5": "er", "8": "er"}
    assert set(r["scores"]) == {"5", "8"}
    for n, s in r["scores"].items():
        assert 0.0 <= s["score"] <= 1.0
        assert s["graphs"] == 4
        assert any(k.startswith("output/") for k in s), n
        assert any(k.startswith("hint/") for k in s), n
    t = r["training"]
    assert t["steps"] == STEPS and t["resumed_from"] == 0
    assert t["best_step"] in (2, 4, 6)
    assert isinstance(t["best_val_score"], float)
    assert set(t["curve"]) >= {"loss", "val_score"}
    wall = r["wall_seconds"]
    assert all(wall[p] > 0 for p in ("compile", "train", "validation", "checkpoint")) and wall["data"] >= 0
    assert set(wall["test"]) == {"5", "8"} and all(v > 0 for v in wall["test"].values())
    assert wall["training"] == pytest.approx(sum(wall[p] for p in ("data", "compile", "train", "validation",
                                                                   "checkpoint")))
    assert wall["total"] == pytest.approx(wall["training"] + sum(wall["test"].values()))
    assert wall["sessions"] == 1 and wall["complete"]
    assert set(r["data"]) == {"validation", "train_batch_0", "test"} and set(r["data"]["test"]) == {"5", "8"}
    assert set(r["device"]) >= {"platform", "kind", "count"} and r["device"]["platform"] == "cpu"
    assert set(r["versions"]) >= {"jax", "flax", "nar"} and r["versions"]["jax"] == jax.__version__
    assert "commit" in r and r["date"].startswith("20")
    assert r["command"] == "pytest tiny"
    assert r["cell_command"] == (f"nar bench run {finished.path} --algorithms {algorithm} --processors {processor} "
                                 f"--seeds {seed} --steps {STEPS} --sizes 5,8")
    assert r["trained_with"]["commit"] == r["commit"]  # trained and tested in one go, by the same code


@pytest.mark.parametrize("cell", DONE)
def test_result_config_is_the_cell_config_with_the_suite_budget(finished, cell):
    r = finished.results[cell]
    expected = load(f"{r['algorithm']}/{r['processor']}", BUDGET + [f"train.seed={r['seed']}"]).to_dict()
    assert r["config"] == expected
    assert load(finished.runs_dir / cell / CONFIG_FILE).to_dict() == expected  # and the run trained with it


@pytest.mark.parametrize("cell", DONE)
def test_scores_and_hashes_match_the_run_evaluated_again(finished, cell):
    """The recorded scores are the best-validation parameters of the run folder evaluated at the eval sizes; the
    recorded hashes are those of the data drawn again."""
    r = finished.results[cell]
    model, params, config = load_run(finished.runs_dir / cell)
    assert (config.eval.sizes, config.eval.samples) == (EVAL_SIZES, 4)
    truth = json.loads(json.dumps({str(n): v for n, v in evaluate_sizes(model, params, config.eval).items()}))
    assert stable_scores(r) == {n: {k: v for k, v in s.items() if k not in VOLATILE_SCORE_KEYS}
                                for n, s in truth.items()}
    for n in EVAL_SIZES:
        assert r["data"]["test"][str(n)] == eval_test_set(r["algorithm"], n, config.eval).content_hash()
    assert r["data"]["validation"] == validation_set(config).content_hash()
    assert r["data"]["train_batch_0"] == train_trajectories(config, 0).content_hash()


@pytest.mark.parametrize("cell", DONE)
def test_training_record_matches_metrics(finished, cell):
    r = finished.results[cell]
    records = read_metrics(finished.runs_dir / cell)
    loss = [[m["step"], m["loss"]] for m in records if "loss" in m]
    val = [[m["step"], m["val_score"]] for m in records if "val_score" in m]
    assert [s for s, _ in loss] == list(range(1, STEPS + 1))
    assert [s for s, _ in val] == [2, 4, 6]
    assert r["training"]["curve"]["loss"] == loss
    assert r["training"]["curve"]["val_score"] == val
    best_step, best = max(val, key=lambda p: (p[1], -p[0]))  # the first of the highest
    assert r["training"]["best_step"] == best_step
    assert r["training"]["best_val_score"] == pytest.approx(best, rel=1e-6)  # stored as float32


def test_some_cell_has_best_parameters_other_than_the_last(finished):
    """Precondition of the re-evaluation test: in some cell the best validation score came before the last step,
    so scores from the last parameters (instead of the best) would be told apart."""
    early = [c for c in DONE if finished.results[c]["training"]["best_step"] < STEPS]
    assert early, {c: finished.results[c]["training"]["best_step"] for c in DONE}
    _, best, _ = load_run(finished.runs_dir / early[0])
    _, last, _ = load_run(finished.runs_dir / early[0], "params")
    assert any(not (a == b).all() for a, b in zip(jax.tree.leaves(best), jax.tree.leaves(last), strict=True))


# ---------------------------------------------------------------------------------------------------------------
# Resumability


def test_finished_cells_are_not_recomputed(finished, monkeypatch):
    files = {c: (finished.results_dir / f"{c}.json").read_bytes() for c in DONE}
    runs = {c: [(p.relative_to(finished.runs_dir), p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else None)
                for p in sorted((finished.runs_dir / c).rglob("*"))] for c in DONE}

    def no_training(*args, **kwargs):
        raise AssertionError("a finished cell was trained again")

    monkeypatch.setattr(bench, "Trainer", no_training)
    log: list[str] = []
    summary = bench.run_suite(bench.load_suite(finished.path), finished.results_dir, finished.runs_dir,
                              log=log.append)
    assert summary["done"] == DONE
    for c in DONE:
        assert any(line.startswith(c) and "not recomputed" in line for line in log), c
        assert (finished.results_dir / f"{c}.json").read_bytes() == files[c]
        assert [(p.relative_to(finished.runs_dir), p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else None)
                for p in sorted((finished.runs_dir / c).rglob("*"))] == runs[c]


class Interrupt(Exception):
    pass


def test_killed_cell_resumes_from_its_checkpoint(finished, tmp_path):
    cell, (algorithm, processor, seed) = "bfs_pgn_s0", ("bfs", "pgn", 0)
    suite = bench.load_suite(finished.path)
    run = tmp_path / "runs" / cell

    def stop(step, loss):
        if step == 5:
            raise Interrupt

    config = load("bfs/pgn", BUDGET + ["train.seed=0"])
    with pytest.raises(Interrupt):
        Trainer(config, run, progress=False).run(on_step=stop)
    ckpt = Checkpointer(run / CHECKPOINTS)
    assert ckpt.latest_step() == 4
    ckpt.close()
    assert max(m["step"] for m in read_metrics(run)) == 4  # interrupted before step 5 was logged
    first = json.loads((run / TIMING_FILE).read_text())

    result = bench.run_cell(suite, algorithm, processor, seed, tmp_path / "results", tmp_path / "runs",
                            log=lambda m: None)
    assert result["training"]["resumed_from"] == 4
    # The cell's wall time sums both sessions: the killed one's, up to its checkpoint, and the resumed one's.
    wall = result["wall_seconds"]
    assert wall["sessions"] == 2 and wall["complete"]
    assert all(wall[p] >= first["seconds"][p] for p in first["seconds"]) and wall["training"] > first["total"]
    assert json.loads((tmp_path / "results" / f"{cell}.json").read_text()) == result
    assert_same_outcome(result, finished.results[cell])  # the uninterrupted run, bit for bit
    assert read_metrics(run)[-1]["step"] == STEPS
    assert [m["step"] for m in read_metrics(run) if "loss" in m] == list(range(1, STEPS + 1))


def test_corrupt_result_is_recomputed_from_the_checkpoint(finished, tmp_path, capsys):
    cell = "bellman_ford_pgn_s0"
    results, runs = copy_cell(finished, cell, tmp_path)
    out = results / f"{cell}.json"
    out.write_bytes(b"\x00\xff garbage {\"format\": 1")
    metrics = (runs / cell / METRICS_FILE).read_bytes()
    result = bench.run_cell(bench.load_suite(finished.path), "bellman_ford", "pgn", 0, results, runs,
                            log=lambda m: None)
    err = capsys.readouterr().err
    assert "warning" in err and str(out) in err and "unreadable" in err
    assert result["training"]["resumed_from"] == STEPS  # evaluated from the last checkpoint, not trained again
    assert result["training"]["compiles"] == 0
    assert (runs / cell / METRICS_FILE).read_bytes() == metrics
    assert json.loads(out.read_text()) == result
    assert_same_outcome(result, finished.results[cell])


@pytest.mark.parametrize("content", ['{"format": 1}', "[1, 2, 3]", '{"format": 999, "scores": {}}'],
                         ids=["no-scores", "not-a-dict", "other-format"])
def test_result_of_another_format_is_recomputed(finished, tmp_path, capsys, content):
    """Valid JSON that is not a result file of this format is not trusted either."""
    cell = "bfs_graphfsa_s0"
    results, runs = copy_cell(finished, cell, tmp_path)
    (results / f"{cell}.json").write_text(content)
    result = bench.run_cell(bench.load_suite(finished.path), "bfs", "graphfsa", 0, results, runs,
                            log=lambda m: None)
    assert "unreadable" in capsys.readouterr().err
    assert result["training"]["resumed_from"] == STEPS
    assert_same_outcome(result, finished.results[cell])


def test_result_for_another_config_is_refused(finished, tmp_path, monkeypatch):
    cell = "bfs_pgn_s0"
    results = tmp_path / "results"
    results.mkdir()
    shutil.copy2(finished.results_dir / f"{cell}.json", results / f"{cell}.json")
    before = (results / f"{cell}.json").read_bytes()
    monkeypatch.setattr(bench, "Trainer", lambda *a, **k: pytest.fail("trained despite a conflicting result"))
    other = write_suite(tmp_path, SUITE.replace(f"steps = {STEPS}", f"steps = {STEPS + 1}"))
    for suite in (bench.load_suite(other), bench.load_suite(finished.path, steps=STEPS + 1)):
        with pytest.raises(ValueError, match=re.escape(f"{results / cell}.json holds a result for another config")):
            bench.run_cell(suite, "bfs", "pgn", 0, results, tmp_path / "runs", log=lambda m: None)
    assert (results / f"{cell}.json").read_bytes() == before
    assert not (tmp_path / "runs").exists()


def test_other_test_sizes_retest_a_finished_cell_without_training(finished, tmp_path, monkeypatch):
    """`--sizes` on a finished cell: tested again from its checkpoint at the new sizes, not trained again; the
    scores at a size tested both times are the same."""
    cell = "bfs_pgn_s0"
    results, runs = copy_cell(finished, cell, tmp_path)
    steps_before = (runs / cell / METRICS_FILE).read_text()
    r = bench.run_cell(bench.load_suite(finished.path, sizes=[8, 6]), "bfs", "pgn", 0, results, runs,
                       log=lambda m: None)
    assert r["sizes"] == [8, 6] and set(r["scores"]) == {"8", "6"}
    assert r["training"]["resumed_from"] == STEPS  # nothing trained
    assert (runs / cell / METRICS_FILE).read_text() == steps_before
    assert stable_scores(r)["8"] == stable_scores(finished.results[cell])["8"]
    assert r["trained_with"] == finished.results[cell]["trained_with"]


def test_results_in_the_repository_need_a_clean_tree(finished, tmp_path, monkeypatch):
    """From a tree with uncommitted changes, results are not written inside the repository (they could not be
    regenerated from any commit) unless allowed; outside it they are."""
    repo = tmp_path / "repo"
    monkeypatch.setattr(bench, "repository_root", lambda: repo.resolve())
    monkeypatch.setattr(bench, "git_commit", lambda: "0123abc+dirty")
    with pytest.raises(ValueError, match="uncommitted changes.*--allow-dirty"):
        bench.run_suite(finished.suite, repo / "results" / "tiny", tmp_path / "runs", log=lambda m: None)
    assert not (tmp_path / "runs").exists()
    bench.check_clean(repo / "results", allow_dirty=True)  # allowed: no error
    bench.check_clean(tmp_path / "elsewhere", allow_dirty=False)  # outside the repository: no error
    monkeypatch.setattr(bench, "git_commit", lambda: "0123abc")
    bench.check_clean(repo / "results", allow_dirty=False)  # a clean tree: no error


def test_dirty_diff_hash_names_the_changes(tmp_path, monkeypatch):
    """A git repository of its own, with git run from a subfolder (as nar runs it, from nar/bench): no hash when
    clean; the hash follows tracked edits and untracked files anywhere in the tree; files under results/ (the
    measurements, a sibling cell's result file among them) leave the tree clean."""
    import subprocess

    import nar.bench

    package = tmp_path / "pkg"
    package.mkdir()

    def git(*args):
        return subprocess.run(["git", *args], cwd=package, capture_output=True, text=True, check=True).stdout.strip()

    git("-C", str(tmp_path), "init", "-q")
    (tmp_path / "a.txt").write_text("one\n")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "old.json").write_text("{}\n")
    git("add", "../a.txt", "../results/old.json")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a")
    monkeypatch.setattr(nar.bench, "_git", git)
    assert nar.bench.dirty_diff_hash() is None and not nar.bench.git_commit().endswith("+dirty")
    (tmp_path / "results" / "suite").mkdir()
    (tmp_path / "results" / "suite" / "cell.json").write_text("{}\n")  # a result just written
    (tmp_path / "results" / "old.json").write_text("{\"new\": 1}\n")  # a result rewritten
    assert nar.bench.dirty_diff_hash() is None and not nar.bench.git_commit().endswith("+dirty")
    (tmp_path / "a.txt").write_text("two\n")
    first = nar.bench.dirty_diff_hash()
    (tmp_path / "a.txt").write_text("three\n")
    second = nar.bench.dirty_diff_hash()
    (tmp_path / "b.txt").write_text("new\n")
    third = nar.bench.dirty_diff_hash()
    assert len({first, second, third}) == 3 and all(len(h) == 64 for h in (first, second, third))
    assert nar.bench.git_commit().endswith("+dirty")


# ---------------------------------------------------------------------------------------------------------------
# Suite files


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.replace('name = "tiny"', 'name = "tiny"\nbudget = 3'), r"unknown keys \['budget'\]"),
    (lambda s: s.replace('"graphfsa"]', '"graphfsa", "gnn9000"]'), r"unknown processor\(s\) \['gnn9000'\]"),
    (lambda s: s.replace('"bellman_ford"]', '"bellman_ford", "dijkstra9"]'),
     r"unknown algorithm\(s\) \['dijkstra9'\]"),
    (lambda s: s.replace("hidden = 16", 'hidden = 16\nalgorithm = "dfs"'), "set algorithms with the top-level"),
    (lambda s: s.replace("steps = 6", "steps = 6\nseed = 3"), "set seeds with the top-level"),
    (lambda s: s.replace("steps = 6", "stepz = 1"), r"unknown config key train\.stepz"),
    (lambda s: s.replace("steps = 6", "steps = 0"), r"train\.steps must be an integer >= 1, got 0"),
    (lambda s: s.replace("seeds = [0]\n", ""), "lacks 'seeds'"),
    (lambda s: s.replace("seeds = [0]", "seeds = []"), "at least one seed"),
    (lambda s: s + "\n[oops\n", "not valid TOML"),
], ids=["unknown-top-level-key", "unknown-processor", "unknown-algorithm", "algorithm-in-section",
        "seed-in-section", "unknown-config-key", "bad-config-value", "no-seeds", "empty-seeds", "bad-toml"])
def test_bad_suite_file_is_refused(tmp_path, edit, message):
    text = edit(SUITE)
    assert text != SUITE  # precondition: the edit applied
    with pytest.raises(ValueError, match=message):
        bench.load_suite(write_suite(tmp_path, text))


def test_missing_suite_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match=f"suite file {tmp_path / 'nope.toml'} does not exist"):
        bench.load_suite(tmp_path / "nope.toml")


def test_narrowing_a_suite(tmp_path):
    path = write_suite(tmp_path)
    suite = bench.load_suite(path, algorithms=["bfs"], processors=["graphfsa"], seeds=[3, 4], steps=9)
    assert suite.cells() == [("bfs", "graphfsa", 3), ("bfs", "graphfsa", 4)]
    assert suite.overrides["train"]["steps"] == 9
    assert bench.cell_config(suite, "bfs", "graphfsa", 4).train.seed == 4
    with pytest.raises(ValueError, match="unknown processor"):
        bench.load_suite(path, processors=["nope"])
    with pytest.raises(ValueError, match="graphfsa cannot represent bellman_ford"):
        bench.cell_config(suite, "bellman_ford", "graphfsa", 0)


def test_set_and_sizes_lay_keys_over_every_cell(tmp_path):
    path = write_suite(tmp_path)
    suite = bench.load_suite(path, sizes=[6, 9], sets=["train.size_mix=per_sample", "model.hidden=8"])
    for cell in suite.cells()[:2]:
        cfg = bench.cell_config(suite, *cell)
        assert (cfg.train.size_mix, cfg.model.hidden, cfg.eval.sizes) == ("per_sample", 8, (6, 9))
    assert bench.cell_config(bench.load_suite(path), "bfs", "pgn", 0).train.size_mix == "per_batch"
    with pytest.raises(ValueError, match="unknown section 'optim'"):
        bench.load_suite(path, sets=["optim.lr=1"])
    with pytest.raises(ValueError, match="set seeds with the top-level list"):
        bench.load_suite(path, sets=["train.seed=3"])
    with pytest.raises(ValueError, match="train.size_mix"):
        bench.load_suite(path, sets=["train.size_mix=sometimes"])


# ---------------------------------------------------------------------------------------------------------------
# The command


def test_cli_runs_a_narrowed_suite(finished, tmp_path, capsys):
    cell = "bfs_pgn_s0"
    results, runs = copy_cell(finished, cell, tmp_path, result=False)  # trained already: tested from its checkpoint
    argv = ["bench", "run", str(finished.path), "--algorithms", "bfs", "--processors", "pgn",
            "--results", str(results), "--runs", str(runs)]
    assert main(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert json.loads(out[-1]) == {"suite": "tiny", "cells": 1, "unsupported": []}
    assert sorted(p.name for p in results.iterdir()) == [f"{cell}.json"]
    result = json.loads((results / f"{cell}.json").read_text())
    assert result["command"] == "nar " + " ".join(argv)
    assert result["training"]["resumed_from"] == STEPS
    assert_same_outcome(result, finished.results[cell])


def test_cli_bad_suite_exits_2(tmp_path, capsys):
    assert main(["bench", "run", str(tmp_path / "nope.toml"), "--results", str(tmp_path / "r"),
                 "--runs", str(tmp_path / "u")]) == 2
    assert "nar bench run: error: suite file" in capsys.readouterr().err
    path = write_suite(tmp_path)
    assert main(["bench", "run", str(path), "--processors", "pgn,nope", "--results", str(tmp_path / "r")]) == 2
    assert "unknown processor(s) ['nope']" in capsys.readouterr().err
    assert main(["bench", "run", str(write_suite(tmp_path, SUITE.replace("steps = 6", "stepz = 1"), "b.toml")),
                 "--results", str(tmp_path / "r")]) == 2
    assert "train.stepz" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_jobs_run_cells_in_worker_processes(finished, tmp_path):
    """Two cells at once, each `nar bench run` in a process of its own: same results as in process. The suite
    file names two seeds and is narrowed to one: the workers must run only the cells they are given."""
    path = write_suite(tmp_path, SUITE.replace("seeds = [0]", "seeds = [0, 1]"))
    suite = bench.load_suite(path, algorithms=["bfs"], seeds=[0])
    log: list[str] = []
    summary = bench.run_suite(suite, tmp_path / "results", tmp_path / "runs", command="pytest jobs",
                              log=log.append, jobs=2)
    cells = ["bfs_pgn_s0", "bfs_graphfsa_s0"]
    assert summary == {"done": cells, "unsupported": {}}
    for cell in cells:
        assert any(line.startswith("[") and f"{cell} started" in line for line in log), cell
        assert any(line.startswith(f"{cell}: n=5:") for line in log), cell  # the worker's closing line
        assert (tmp_path / "runs" / f"{cell}.log").is_file()
        result = json.loads((tmp_path / "results" / f"{cell}.json").read_text())
        assert result["command"] == "pytest jobs"
        assert result["training"]["resumed_from"] == 0
        # A worker is pinned to its share of the cores, and XLA's CPU reductions may split work by thread count:
        # the losses may differ in the last float bits (seen once under heavy load), nothing more.
        assert_same_outcome(result, finished.results[cell], loss_rtol=1e-5)
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == sorted(f"{c}.json" for c in cells)


def test_compile_cache_reaches_the_workers(tmp_path, capsys):
    """`--compile-cache DIR`: a `--jobs` worker (one cell, so one worker) keeps its compiled programs in DIR (its
    default comes from the parent through the environment); a file is refused before any cell runs."""
    import subprocess
    import sys

    path, cache = write_suite(tmp_path), tmp_path / "cache"
    argv = ["bench", "run", str(path), "--algorithms", "bfs", "--processors", "pgn", "--seeds", "0", "--jobs", "2",
            "--results", str(tmp_path / "results"), "--runs", str(tmp_path / "runs")]
    done = subprocess.run([sys.executable, "-m", "nar", *argv, "--compile-cache", str(cache)], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["bfs_pgn_s0.json"]
    assert any(p.is_file() for p in cache.rglob("*")), "the workers wrote no compiled program"
    (tmp_path / "file").write_text("")
    assert main([*argv, "--compile-cache", str(tmp_path / "file")]) == 2
    assert "compile cache must be a folder, got the file" in capsys.readouterr().err


def test_failed_worker_is_reported(tmp_path):
    """A worker that fails (here: a suite file gone by the time it starts) fails the suite, naming the cell."""
    path = write_suite(tmp_path)
    suite = bench.load_suite(path, algorithms=["bfs"], processors=["pgn"])
    path.unlink()
    with pytest.raises(RuntimeError, match="1 cell\\(s\\) failed: bfs_pgn_s0"):
        bench.run_suite(suite, tmp_path / "results", tmp_path / "runs", log=lambda m: None, jobs=2)
    assert "does not exist" in (tmp_path / "runs" / "bfs_pgn_s0.log").read_text()


# ---------------------------------------------------------------------------------------------------------------
# suite-speed's time limit


def test_speed_row_that_does_not_finish_is_skipped():
    row = speed_suite.measure("bfs", "pgn", 16, steps=1, timeout=0.01)
    assert (row["algorithm"], row["processor"], row["num_nodes"]) == ("bfs", "pgn", 16)
    for mode in ("train", "eval"):
        assert row[f"{mode}_skipped"].startswith("did not finish within"), row
        assert mode not in row
    assert row["peak_memory_bytes"] == 0


def test_suite_speed_measures_the_machine_once(tmp_path):
    """suite-speed writes the machine's matmul rate beside the rows (not read as a row) and keeps it on a rerun."""
    from nar.bench import report

    out = tmp_path / "results" / report.SPEED_DIR
    argv = ["--processors", "pgn", "--sizes", "16", "--timeout", "0.01", "--out", str(out)]
    assert speed_suite.main(argv) == 0
    machine = report.load_machine(tmp_path / "results")
    assert machine["matmul_gflops_per_s"] > 0 and machine["command"].startswith("nar bench suite-speed")
    assert [r["processor"] for r in report.load_speed(tmp_path / "results")] == ["pgn"]
    before = (out / report.MACHINE_FILE).read_bytes()
    assert speed_suite.main(argv) == 0
    assert (out / report.MACHINE_FILE).read_bytes() == before
    # --force measures the row again and keeps dm-clrs's figures for the same work (the same graphs: p = 0.5 at
    # n = 16), and drops figures measured on other graphs.
    row_path = out / "bfs_pgn_n16.json"
    same = {"eval_graphs_per_s": 1.5, "p": 0.5}
    row_path.write_text(json.dumps({**json.loads(row_path.read_text()), "dm_clrs": same}))
    assert speed_suite.main(argv + ["--force"]) == 0
    assert json.loads(row_path.read_text())["dm_clrs"] == same
    row_path.write_text(json.dumps({**json.loads(row_path.read_text()), "dm_clrs": {**same, "p": 0.2}}))
    assert speed_suite.main(argv + ["--force"]) == 0
    assert "dm_clrs" not in json.loads(row_path.read_text())
    # Sparse rows: dm-clrs draws each ordered pair with p and keeps an undirected edge only when both directions came
    # up, so BFS (undirected) needs p = sqrt(5 / 1023) for nar's mean degree of 5; DFS (directed) takes p itself.
    assert speed_suite.er_density(1024, "bfs") == pytest.approx(math.sqrt(5 / 1023))
    assert speed_suite.er_density(1024, "dfs") == pytest.approx(5 / 1023)
    assert speed_suite.er_density(64, "bfs") == speed_suite.er_density(64, "dfs") == 0.5
    assert speed_suite.er_density(64, "dfs", "sparse_er") == pytest.approx(5 / 63)


def test_suite_speed_rows_off_their_default_graph_have_their_own_file(tmp_path):
    """`--graph sparse_er` at n = 16 (default er) writes bfs_pgn_n16_sparse_er.json, recording that graph, beside
    the default row; `--modes eval` measures prediction only."""
    argv = ["--processors", "pgn", "--sizes", "16", "--timeout", "0.01", "--out", str(tmp_path)]
    assert speed_suite.main(argv + ["--graph", "sparse_er", "--modes", "eval"]) == 0
    row = json.loads((tmp_path / "bfs_pgn_n16_sparse_er.json").read_text())
    assert row["graph"] == "sparse_er" and "eval_skipped" in row and "train_skipped" not in row
    assert not (tmp_path / "bfs_pgn_n16.json").exists()
    assert speed_suite.main(argv + ["--graph", "er"]) == 0  # er is n = 16's default: the plain name
    assert json.loads((tmp_path / "bfs_pgn_n16.json").read_text())["graph"] == "er"
    assert speed_suite.main(argv + ["--modes", "predict"]) == 2


def test_dmclrs_density_gives_nar_mean_degree_on_clrs_undirected_sampler():
    """CLRS's undirected ER (nar's `erdos_renyi`, equal in distribution to dm-clrs's sampler) at the p the speed
    suite gives dm-clrs has the mean degree of nar's sparse rows (5)."""
    rng, n = np.random.default_rng(0), 256
    p = speed_suite.er_density(n, "bfs")
    graphs = [erdos_renyi(rng, n, p=p) for _ in range(8)]
    degrees = [np.sum(g.senders != g.receivers) / n for g in graphs]  # an undirected edge is listed both ways
    assert np.mean(degrees) == pytest.approx(speed_suite.SPARSE_DEGREE, rel=0.1)
