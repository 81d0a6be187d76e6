"""`nar bench scale --quick` end to end: both sweeps in child processes, one JSON file with every field."""

from __future__ import annotations

import json

import pytest

from nar.bench import scale


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("scale") / "scale.json"
    # The device sweep runs BFS; the size sweep runs Bellman-Ford only here (the weighted case), one child per point.
    assert scale.main(["--quick", "--sizes", "64,512", "--devices", "1,2", "--algorithms", "bellman_ford",
                       "--out", str(out)]) == 0
    return json.loads(out.read_text())


def test_header(result):
    assert result["command"].startswith("nar bench scale --quick --sizes 64,512 --devices 1,2 --algorithms "
                                        "bellman_ford --out ")
    env = result["environment"]
    assert {"device", "versions", "commit"} <= set(env) and env["versions"]["jax"]
    assert result["settings"]["hidden"] == scale.QUICK["hidden"]


def test_device_sweep(result):
    rows = result["devices"]
    assert [r["devices"] for r in rows] == [1, 2]
    for r in rows:
        assert "skipped" not in r, r
        assert r["device_count"] == r["devices"]  # the child saw the simulated count it was given
        assert r["train_steps_per_s"] > 0 and r["eval_graphs_per_s"] > 0 and r["peak_rss_bytes"] > 0
        assert r["eval_graphs"] == scale.QUICK["device_eval_graphs"]


def test_size_sweep(result):
    rows = result["sizes"]
    assert [(r["algorithm"], r["num_nodes"]) for r in rows] == [("bellman_ford", 64), ("bellman_ford", 512)]
    for r in rows:
        assert "skipped" not in r, r
        assert r["graphs"] == 2 and r["graphs_per_s"] > 0 and 0 <= r["score"] <= 1
        assert r["padded"]["nodes"] >= 2 * r["num_nodes"]  # both graphs in one batch
        assert r["peak_rss_bytes"] >= r["rss_before_data_bytes"] > 0
        assert r["xla"]["temp_bytes"] > 0 and r["estimate_bytes"] > 0
    small, large = rows
    assert large["xla_total_bytes"] > 4 * small["xla_total_bytes"]  # 8x the nodes and edges
    assert large["estimate_bytes"] > 4 * small["estimate_bytes"]


def test_bad_input_is_refused(capsys):
    assert scale.main(["--algorithms", "insertion_sort", "--out", "/dev/null"]) == 2
    assert "sort 'insertion_sort'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        scale.main(["--sizes", "0,4"])
