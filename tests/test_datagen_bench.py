"""`python -m nar.bench.data` flags for single-process measurements (--one-process, --repeats, --algorithms)."""

import json

import pytest

from nar.bench import data


def test_one_process_times_only_the_single_process_pipeline(tmp_path):
    out = tmp_path / "bench.json"
    # n = 5 is not a benchmark size: 64 samples per timing and no dm-clrs figure, so this stays quick.
    assert data.main(["--one-process", "--repeats", "2", "--sizes", "5", "--algorithms", "dfs,heapsort",
                      "--dmclrs-json", str(tmp_path / "none.json"), "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["results"]
    assert [(r["algorithm"], r["n"]) for r in rows] == [("dfs", 5), ("heapsort", 5)]
    for r in rows:
        assert r["traj_per_s"] is None and r["workers"] == 1
        assert r["traj_per_s_1_core"] > 0 and r["samples"] == 64
        assert r["dmclrs_traj_per_s"] is None and r["speedup"] is None


@pytest.mark.parametrize("argv, message", [
    (["--algorithms", "dfs,quick_sort"], "unknown algorithms ['quick_sort']"),
    (["--repeats", "0"], "--repeats must be at least 1"),
])
def test_bad_flags_are_refused_before_any_timing(argv, message, capsys):
    with pytest.raises(SystemExit):
        data.main(argv)
    assert message in capsys.readouterr().err
