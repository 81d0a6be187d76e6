"""Configs by name, shipped as package data (`nar/configs/`): each ALGORITHM/PROCESSOR composes to exactly the config
its old file under configs/ gave (so finished benchmark cells stay finished), suites resolve by name from any
directory, and a wheel installed elsewhere finds them all.

tests/fixtures/configs_before_names.json holds the keys of the 44 files configs/<algorithm>_<processor>.toml as
they were when they were replaced by names, read once with tomllib."""

import argparse
import json
import os
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

from nar import cli
from nar.bench import suite as bench
from nar.cli import main
from nar.config import compose, from_dict, load
from nar.processors import PROCESSORS
from nar.specs import SPECS

ROOT = Path(__file__).resolve().parents[1]
BEFORE = json.loads((ROOT / "tests" / "fixtures" / "configs_before_names.json").read_text())


def _old(algorithm: str, processor: str) -> dict:
    """The config the pair had before names: its file, else CLRS's defaults (what `nar bench run` used)."""
    data = BEFORE.get(f"{algorithm}_{processor}", {"model": {"algorithm": algorithm, "processor": processor}})
    return from_dict(data).to_dict()


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_a_name_composes_to_its_old_file(name):
    algorithm, processor = BEFORE[name]["model"]["algorithm"], BEFORE[name]["model"]["processor"]
    assert f"{algorithm}_{processor}" == name
    assert compose(algorithm, processor).to_dict() == _old(algorithm, processor)
    assert load(f"{algorithm}/{processor}") == compose(algorithm, processor)


# Processors registered after configs got names: no old file or default to compare with.
NEWER = {"dnar"}


def test_pairs_without_an_old_file_keep_the_defaults_and_refusals_stay_refusals():
    for algorithm in SPECS:
        for processor in set(PROCESSORS) - NEWER:
            try:
                old = _old(algorithm, processor)
            except ValueError:  # GraphFSA on Bellman-Ford or a sort
                with pytest.raises(ValueError, match="graphfsa cannot represent"):
                    compose(algorithm, processor)
                continue
            assert compose(algorithm, processor).to_dict() == old, (algorithm, processor)


def test_shipped_files_are_short_commented_deltas():
    files = sorted((ROOT / "nar" / "configs").rglob("*.toml"))
    assert {f.relative_to(ROOT / "nar" / "configs").parts[0] for f in files} == {
        "default.toml", "algorithms", "processors", "bench"}
    for f in files:
        text = f.read_text()
        assert text.startswith("# "), f  # says what it changes and why
        assert len(text.splitlines()) <= 40 and max(map(len, text.splitlines())) <= 120, f
        tomllib.loads(text)


def test_unknown_names_list_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="unknown algorithm 'nope'; known: bfs, dfs"):
        load("nope/mpnn")
    with pytest.raises(ValueError, match="unknown processor 'nope'; known: mpnn, pgn"):
        load("bfs/nope")
    with pytest.raises(ValueError, match="ALGORITHM/PROCESSOR"):
        load("bfs/mpnn/x")
    assert load("dfs") == load("dfs/mpnn")
    path = tmp_path / "c.toml"  # a path still works where a name does
    path.write_text(load("dfs/pgn").to_toml())
    assert load(path) == load(str(path)) == load("dfs/pgn")


def test_suites_by_name_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert bench.known_suites() == ["equal_budget", "full", "quick"]
    quick = bench.load_suite("quick")
    assert (quick.name, quick.path, quick.overrides["model"]) == ("quick", "quick", {"hidden": 32})
    assert bench.load_suite("full").seeds == (1, 2, 3)
    cell = bench.cell_config(quick, "bfs", "mpnn", 42)
    assert cell == load("bfs/mpnn", ["model.hidden=32", "train.steps=50", "train.batch_size=8", "train.eval_every=25",
                                     "train.val_samples=16", "train.checkpoint_every=25", "train.log_every=5",
                                     "eval.sizes=[16, 64]", "eval.samples=8"])
    with pytest.raises(ValueError, match="suites shipped with nar: equal_budget, full, quick"):
        bench.load_suite("configs/bench/quick.toml")  # the path before names
    with pytest.raises(ValueError, match="suites shipped with nar: equal_budget, full, quick"):
        bench.load_suite("quik")
    relic = bench.load_suite("equal_budget", sets=["train.causal_reg=hint_relic"])  # a variant of the suite
    assert bench.cell_config(relic, "heapsort", "mpnn", 2) == load("heapsort/mpnn", [
        "model.hidden=32", "train.steps=300", "train.causal_reg=hint_relic", "eval.sizes=[16, 64]", "eval.samples=128",
        "train.seed=2"])


def test_config_show_prints_the_resolved_config(capsys):
    assert main(["config", "show", "bfs/triplet_gmpnn", "--set", "model.hidden=64"]) == 0
    shown = tomllib.loads(capsys.readouterr().out)
    assert from_dict(shown) == load("bfs/triplet_gmpnn", ["model.hidden=64"])
    assert main(["config", "show", "bfs/mpnn"]) == 0
    assert from_dict(tomllib.loads(capsys.readouterr().out)) == compose("bfs", "mpnn")
    assert main(["config", "show", "bfs/nope"]) == 2
    assert "unknown processor 'nope'" in capsys.readouterr().err


def test_train_by_name_and_by_flags_resolve_alike(tmp_path):
    runs = []
    for i, argv in enumerate((["--config", "bfs/pgn"], ["--algorithm", "bfs", "--processor", "pgn"])):
        out = tmp_path / str(i)
        assert main(["train", *argv, "--steps", "1", "--set", "model.hidden=8", "--set", "train.batch_size=2",
                     "--set", "train.sizes=[4]", "--set", "train.val_samples=2", "--set", "train.val_size=4",
                     "--out", str(out), "--quiet"]) == 0
        runs.append(load(out / "config.toml"))  # the run keeps the resolved config
    assert runs[0] == runs[1] == load("bfs/pgn", ["model.hidden=8", "train.batch_size=2", "train.sizes=[4]",
                                                  "train.val_samples=2", "train.val_size=4", "train.steps=1"])


# ---------------------------------------------------------------------------------------------------------------
# The package as a wheel, installed away from the source tree


def _train_options() -> list[tuple[str, str]]:
    """(option, help text as printed) for every option of `nar train`, read off the parser in this process."""
    sub = next(a for a in cli._parser()._actions if isinstance(a, argparse._SubParsersAction))
    train = sub.choices["train"]
    return [(a.option_strings[0], train._get_formatter()._expand_help(a)) for a in train._actions if a.option_strings]


def test_wheel_installs_and_runs_by_name_from_another_directory(tmp_path):
    """A non-editable install: the wheel built from a copy of the sources, installed by pip into a fresh venv whose
    only other path is the dependencies (this venv's site-packages, minus its editable nar; offline, so --no-deps),
    then run through its `nar` console script from a directory holding no configs."""
    src = tmp_path / "src"
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes((ROOT / name).read_bytes())
    subprocess.run(["cp", "-r", str(ROOT / "nar"), str(src / "nar")], check=True)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "-w", str(wheels), str(src)], check=True, capture_output=True, timeout=300)
    wheel = next(wheels.glob("nar-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "nar/configs/default.toml" in names and "nar/configs/bench/quick.toml" in names
    assert "nar/configs/processors/triplet_gmpnn.toml" in names and "nar/configs/algorithms/bfs.toml" in names

    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], check=True, capture_output=True, timeout=300)
    site = next(env_dir.glob("lib/python*/site-packages"))
    deps = next(Path(p) for p in sys.path if p.endswith("site-packages") and (Path(p) / "jax").is_dir())
    (site / "deps.pth").write_text(f"{deps}\n")  # a .pth line adds the folder, never runs its editable finder
    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    def nar(*argv: str) -> str:
        done = subprocess.run([str(env_dir / "bin" / "nar"), *argv], cwd=run_dir, env=env, capture_output=True,
                              text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        return done.stdout

    where = subprocess.run([str(python), "-c", "import nar; print(nar.__file__)"], cwd=run_dir, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(site), where
    assert nar("--version").strip() == "nar 0.1.0"
    assert from_dict(tomllib.loads(nar("config", "show", "bfs/mpnn"))) == compose("bfs", "mpnn")
    assert "--algorithms" in nar("bench", "run", "quick", "--help")
    train_help = "".join(nar("train", "--help").split())  # argparse wraps help at any width: compare unwrapped
    undocumented = [o for o, text in _train_options() if o not in train_help or "".join(text.split()) not in train_help]
    assert len(_train_options()) >= 10 and not undocumented, undocumented
    summary = json.loads(nar("train", "--config", "bfs/mpnn", "--steps", "2", "--set", "model.hidden=8",
                             "--set", "train.batch_size=2", "--set", "train.sizes=[4]", "--set",
                             "train.val_samples=2", "--set", "train.val_size=4", "--out", "run", "--quiet"))
    assert summary["steps"] == 2
    assert load(run_dir / "run" / "config.toml") == load("bfs/mpnn", [
        "model.hidden=8", "train.batch_size=2", "train.sizes=[4]", "train.val_samples=2", "train.val_size=4",
        "train.steps=2"])
