"""The `nar` command's conventions: --version, help on every option, choices from the registries, and exit codes
(0 success, 2 usage or config error, 1 runtime failure) as `nar --help` documents them."""

import argparse
import importlib
import subprocess
import sys
from importlib.metadata import version

import pytest

from nar import cli
from nar.cli import main
from nar.processors import PROCESSORS
from nar.specs import SPECS


def _subparsers(parser: argparse.ArgumentParser):
    """Every parser under `parser` (itself included), by name."""
    found = {parser.prog: parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found.update(_subparsers(sub))
    return found


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"nar {version('nar')}"


def test_every_option_of_every_subcommand_has_help():
    parsers = _subparsers(cli._parser())
    assert {"nar train", "nar eval", "nar config show"} <= set(parsers)
    for name, parser in parsers.items():
        for action in parser._actions:
            if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                assert action.help, f"{name}: {action.option_strings or action.dest} has no help"
    assert "exit status: 0 success; 1 a runtime failure" in parsers["nar"].format_help()


@pytest.mark.parametrize("module", sorted(cli.BENCHES.values()) + ["nar.data.suites"])
def test_bench_and_generate_options_have_help(module, monkeypatch):
    """The subcommands with parsers of their own: capture each parser as its main() builds it."""
    seen = []

    def capture(self, argv=None):
        seen.append(self)
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(SystemExit):
        importlib.import_module(module).main([])
    for action in seen[0]._actions:
        assert action.help, f"{module}: {action.option_strings or action.dest} has no help"


def test_choices_come_from_the_registries(capsys):
    train = _subparsers(cli._parser())["nar train"]
    choices = {a.dest: a.choices for a in train._actions}
    assert list(choices["algorithm"]) == list(SPECS) and list(choices["processor"]) == list(PROCESSORS)
    assert tuple(choices["message_graph"]) == ("complete", "input")
    with pytest.raises(SystemExit) as e:
        main(["train", "--processor", "nope", "--out", "x"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nope'" in err and "'mpnn'" in err and "'graphfsa'" in err


def test_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train"])  # --out is required
    assert e.value.code == 2 and "--out" in capsys.readouterr().err
    assert main(["bench", "nope"]) == 2


def test_config_error_exits_2(tmp_path, capsys):
    assert main(["train", "--config", "bfs/mpnn", "--set", "train.learning_rate=-1", "--out", str(tmp_path / "r"),
                 "--quiet"]) == 2
    assert "nar train: error: train.learning_rate" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "r")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_runtime_failure_exits_1_with_one_line(tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("the device fell over")

    monkeypatch.setattr(importlib.import_module("nar.train"), "Trainer", broken)
    assert main(["train", "--config", "bfs/mpnn", "--out", str(tmp_path / "r"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err == "nar train: error: RuntimeError: the device fell over\n"


def test_memory_refusal_stays_2(tmp_path, monkeypatch, capsys):
    """docs/failure_modes.md: a plan that does not fit exits with code 2."""
    def refuse(*args, **kwargs):
        raise MemoryError("the plan needs 9 GiB, 1 GiB fit")

    monkeypatch.setattr(importlib.import_module("nar.train"), "Trainer", refuse)
    assert main(["train", "--config", "bfs/mpnn", "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert "9 GiB" in capsys.readouterr().err


def test_bench_run_help_from_another_directory(tmp_path):
    done = subprocess.run([sys.executable, "-m", "nar", "bench", "run", "quick", "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "quick" in done.stdout and "--algorithms" in done.stdout
