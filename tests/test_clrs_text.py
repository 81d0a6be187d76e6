"""CLRS-Text export: `nar.clrs_text` against question/answer strings dm-clrs 2.0.3 itself wrote
(tests/fixtures/clrs_text/, made by benchmarks/clrs_text_fixtures.py in a throwaway virtualenv), character for
character, with and without hints and with dm-clrs's truncation; hand-worked strings; large sizes; bad input; and
the `nar generate --format clrs-text` export."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

import nar
from nar.clrs_text import clrs_text, format_trajectory, write_jsonl
from nar.data import generate, suites
from nar.data.store import load

FIXTURES = Path(__file__).parent / "fixtures" / "clrs_text"
ALGORITHMS = ("bfs", "dfs", "bellman_ford", "insertion_sort", "bubble_sort", "heapsort", "quicksort")


def _cases(algorithm: str) -> list[dict]:
    return json.loads((FIXTURES / f"{algorithm}.json").read_text())["cases"]


def _assert_same(got: tuple[str, str], want: list[str], where: str) -> None:
    for part, g, w in zip(("question", "answer"), got, want):
        if g != w:
            k = next((i for i, (a, b) in enumerate(zip(g, w)) if a != b), min(len(g), len(w)))
            raise AssertionError(f"{where}: {part} differs at character {k}: nar {g[k - 40:k + 40]!r}, "
                                 f"dm-clrs {w[k - 40:k + 40]!r}")


def test_fixtures_cover_every_algorithm_size_and_mode():
    for algorithm in ALGORITHMS:
        cases = _cases(algorithm)
        assert {c["n"] for c in cases} == {4, 5, 8, 12, 16}
        assert all(set(c["text"]) == {"None", "3"} and set(c["text"]["3"]) == {"plain", "hints"} for c in cases)
    assert sum(p.stat().st_size for p in FIXTURES.glob("*.json")) < 500_000


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_matches_dm_clrs_character_for_character(algorithm):
    """Raw inputs of dm-clrs's sampler; `truncate_decimals=3` must cut them as dm-clrs's sampler did."""
    for case in _cases(algorithm):
        for decimals, texts in case["text"].items():
            for mode, want in texts.items():
                got = clrs_text(algorithm, use_hints=mode == "hints",
                                truncate_decimals=None if decimals == "None" else int(decimals), **case["inputs"])
                _assert_same(got, want, f"{algorithm} n={case['n']} seed={case['seed']}#{case['index']} "
                                        f"decimals={decimals} {mode}")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_stored_trajectory_formats_as_dm_clrs(algorithm):
    """A nar trajectory (float32 inputs, as datasets store them) of the truncated inputs prints dm-clrs's
    truncated strings: its floats print in the short form dm-clrs's float64 values have."""
    for case in _cases(algorithm):
        inputs = {k: np.asarray(v) for k, v in case["inputs"].items()}
        cut = {k: np.trunc(v * 1000) / 1000 if v.dtype.kind == "f" else v for k, v in inputs.items()}
        trajectory = nar.execute(algorithm, **cut)
        for mode, want in case["text"]["3"].items():
            _assert_same(format_trajectory(trajectory, use_hints=mode == "hints"), want,
                         f"{algorithm} n={case['n']} {mode}")


def test_hand_worked_bfs_and_insertion_sort():
    # BFS on the path 0-1-2 from 0: pi_h is [0 1 2], [0 0 2], [0 0 1]; the trace keeps only the middle step.
    A = [[0, 1, 0], [1, 0, 1], [0, 1, 0]]
    assert clrs_text("bfs", A=A, s=0) == ("bfs:\ns: 0, A: [[0 1 0], [1 0 1], [0 1 0]]\npi:\n", "[0 0 1]\n\n")
    assert clrs_text("bfs", use_hints=True, A=A, s=0) == (
        "bfs:\ns: 0, A: [[0 1 0], [1 0 1], [0 1 0]], initial_trace: [0 1 2]\ntrace | pi:\n",
        "[0 0 2] | [0 0 1]\n\n")
    # A float matrix prints floats; an isolated source has one hint step, so the trace is empty.
    assert clrs_text("bfs", use_hints=True, A=np.eye(2), s=1)[1] == " | [0 1]\n\n"
    assert "A: [[1.0 0.0], [0.0 1.0]]" in clrs_text("bfs", A=np.eye(2), s=1)[0]
    # Insertion sort of (0.3, 0.1, 0.2): arrays (0.3 0.1 0.2), (0.1 0.3 0.2), (0.1 0.2 0.3); outputs are keys.
    assert clrs_text("insertion_sort", use_hints=True, key=[0.3, 0.1, 0.2]) == (
        "insertion_sort:\nkey: [0.3 0.1 0.2], initial_trace: [0.3 0.1 0.2]\ntrace | pred:\n",
        "[0.1 0.3 0.2] | [0.1 0.2 0.3]\n\n")


def test_truncation_cuts_floats_toward_zero_before_running():
    q, a = clrs_text("insertion_sort", truncate_decimals=2, key=[0.5489, 0.5411, -0.129])
    # 0.5489 and 0.5411 both become 0.54: the sort runs on the cut keys (a tie keeps input order).
    assert q == "insertion_sort:\nkey: [0.54 0.54 -0.12]\npred:\n" and a == "[-0.12 0.54 0.54]\n\n"
    # Integer inputs are left alone (dm-clrs truncates float arrays only).
    assert clrs_text("dfs", truncate_decimals=1, A=[[0, 1], [0, 0]])[0] == "dfs:\nA: [[0 1], [0 0]]\npi:\n"
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="truncate_decimals"):
            clrs_text("heapsort", truncate_decimals=bad, key=[0.2, 0.1])


def test_one_key_and_a_sort_without_hint_steps():
    # dm-clrs's formatter fails on one key (its chain has no tail); nar prints the key.
    assert clrs_text("heapsort", use_hints=True, key=[0.5]) == (
        "heapsort:\nkey: [0.5], initial_trace: [0.5]\ntrace | pred:\n", " | [0.5]\n\n")
    assert clrs_text("quicksort", use_hints=True, key=[0.5]) == ("quicksort:\nkey: [0.5]\npred:\n", "[0.5]\n\n")


def test_large_bfs_is_fast_and_complete():
    rng = np.random.default_rng(0)
    n = 1000
    A = np.triu(rng.random((n, n)) < 0.004, 1).astype(np.int64)
    A = A | A.T
    t0 = time.perf_counter()
    question, answer = clrs_text("bfs", use_hints=True, A=A, s=0)
    seconds = time.perf_counter() - t0
    trajectory = nar.execute("bfs", A=A, s=0)
    pi = "[" + " ".join(map(str, trajectory.outputs["pi"].tolist())) + "]"
    trace, final = answer.split(" | ")
    assert final == pi + "\n\n" and trace.count("[") == trajectory.length - 2
    assert question.count("], [") == n - 1 and question.endswith("initial_trace: [" + " ".join(map(str, range(n)))
                                                                  + "]\ntrace | pi:\n")
    assert seconds < 10, f"BFS n={n} export took {seconds:.1f} s"


def test_bad_input_is_a_clear_value_error():
    with pytest.raises(ValueError, match="unknown algorithm 'dijkstra'"):
        clrs_text("dijkstra", A=np.zeros((3, 3)), s=0)
    with pytest.raises(ValueError, match="A must be square"):
        clrs_text("bfs", A=np.zeros((3, 4)), s=0)
    with pytest.raises(ValueError, match="missing \\['s'\\]"):
        clrs_text("bellman_ford", A=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="key must be a 1-D array"):
        clrs_text("quicksort", key=[[0.1, 0.2]])


def test_write_jsonl_holds_one_record_per_sample(tmp_path):
    dataset = generate("bellman_ford", 4, 6, seed=0)
    path = write_jsonl(dataset.trajectories, tmp_path / "bf.jsonl", use_hints=True, truncate_decimals=3)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["algo_name"] for r in rows] == ["bellman_ford"] * 4 and [r["length"] for r in rows] == [6] * 4
    for row, trajectory in zip(rows, dataset):
        assert (row["question"], row["answer"]) == format_trajectory(trajectory, True, 3)
        assert row["question"].startswith("bellman_ford:\ns: ") and row["question"].endswith("\ntrace | pi:\n")


def test_generate_command_writes_clrs_text_next_to_the_dataset(tmp_path, monkeypatch, capsys):
    tiny = [suites.Split("bfs", "test", 3, 6, 0), suites.Split("insertion_sort", "test", 2, 5, 0)]
    monkeypatch.setitem(suites.SUITES, "tiny", lambda: tiny)
    assert suites.main(["tiny", "--cache", str(tmp_path), "--workers", "1", "--format", "clrs-text"]) == 0
    for split, count in ((tiny[0], 3), (tiny[1], 2)):
        folder = tmp_path / "tiny" / split.folder
        rows = [json.loads(line) for line in folder.with_name("test.clrs-text.jsonl").read_text().splitlines()]
        stored = load(folder)
        assert len(rows) == count and [(r["question"], r["answer"]) for r in rows] == [
            format_trajectory(t) for t in stored]
    assert "CLRS-Text" in capsys.readouterr().out
    for argv, message in ((["--hints"], "apply to --format clrs-text"),
                          (["--format", "clrs-text", "--decimals", "0"], "positive integer")):
        with pytest.raises(SystemExit):
            suites.main(["tiny", "--cache", str(tmp_path), *argv])
        assert message in capsys.readouterr().err
