"""Data-parallel and multi-process training and evaluation (`nar.distributed`), with one device as the truth.

Simulated CPU devices need a fresh process (JAX fixes the count when it starts its backend), so the multi-device
runs are `nar train` / `nar eval` subprocesses sharing one persistent compilation cache; a module fixture starts
them all (bfs, a 16-wide PGN, batches of 5 graphs of 4-5 nodes: 5 graphs on 4 devices is the odd case) and the
tests read their files. The grouped loss itself is checked in this process, on one device, against the undivided
batch.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from nar import distributed
from nar.cli import main
from nar.config import load
from nar.data.batch import GrowingPad
from nar.model.losses import training_loss
from nar.train import METRICS_FILE, build_model, initial_pad, train_batch, train_groups

ROOT = Path(__file__).resolve().parents[1]
SETS = ["model.hidden=16", "model.message_graph=complete", "train.sizes=[4, 5]", "train.batch_size=5",
        "train.pad_lookahead=4", "train.val_size=4", "train.val_samples=8", "train.eval_every=100",
        "train.checkpoint_every=2", "train.log_every=1", "train.seed=2", "eval.batch_size=2"]
STEPS, SPLIT = 6, 4  # the multi-process run stops at SPLIT; a one-device run resumes it to STEPS
RTOL = 2e-5


def _train_cmd(out: Path, steps: int, *extra: str) -> list[str]:
    sets = [a for s in SETS for a in ("--set", s)]
    return [sys.executable, "-m", "nar.cli", "train", "--algorithm", "bfs", "--processor", "pgn", "--steps",
            str(steps), "--out", str(out), "--quiet", *sets, *extra]


def _eval_cmd(run: Path, devices: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "nar.cli", "eval", str(run), "--sizes", "5", "--samples", "7", "--json",
            "--cpu-devices", str(devices), *extra]


def _run_all(cmds: list[list[str]], env: dict) -> list[str]:
    """Run commands concurrently; their stdout, or a failure showing the stderr of the first that failed."""
    procs = [subprocess.Popen(c, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in cmds]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err), c in zip(procs, outs, cmds):
        assert p.returncode == 0, f"{' '.join(c)} failed:\n{err[-3000:]}"
    return [o for o, _ in outs]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, (run / METRICS_FILE).read_text().splitlines())
            if "loss" in r}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("distributed")
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(tmp / "cache"), "JAX_PLATFORMS": "cpu"}
    one, four, multi = tmp / "one", tmp / "four", tmp / "multi"
    port = _free_port()
    multi_cmds = [_train_cmd(multi, SPLIT, "--cpu-devices", "2", "--num-processes", "2", "--process-id", str(i),
                             "--coordinator", f"127.0.0.1:{port}") for i in range(2)]
    _run_all([_train_cmd(one, STEPS, "--cpu-devices", "1"), _train_cmd(four, SPLIT, "--cpu-devices", "4"),
              *multi_cmds], env)
    port = _free_port()
    multi_eval = [_eval_cmd(one, 2, "--num-processes", "2", "--process-id", str(i), "--coordinator",
                            f"127.0.0.1:{port}") for i in range(2)]
    resumed, eval_1, eval_3, eval_p0, eval_p1 = _run_all(
        [_train_cmd(multi, STEPS, "--resume", "--cpu-devices", "1"), _eval_cmd(one, 1), _eval_cmd(one, 3),
         *multi_eval], env)
    assert eval_p1 == ""  # process 0 alone prints
    summaries = {name: json.loads((tmp / name / "summary.json").read_text()) for name in ("one", "four")}
    return {"one": one, "four": four, "multi": multi, "summaries": summaries, "resumed": json.loads(resumed),
            "eval": (json.loads(eval_1), json.loads(eval_3), json.loads(eval_p0))}


def test_four_devices_follow_the_one_device_loss_curve(runs):
    one, four = _losses(runs["one"]), _losses(runs["four"])
    assert sorted(four) == list(range(1, SPLIT + 1))
    np.testing.assert_allclose([four[s] for s in four], [one[s] for s in four], rtol=RTOL)


def test_two_processes_train_together_like_one(runs):
    multi, four = _losses(runs["multi"]), _losses(runs["four"])
    # Process 0 alone writes the log; steps 1..SPLIT come from the two-process run.
    np.testing.assert_allclose([multi[s] for s in range(1, SPLIT + 1)], [four[s] for s in range(1, SPLIT + 1)],
                               rtol=RTOL)


def test_checkpoint_of_two_processes_resumes_on_one_device(runs):
    assert runs["resumed"]["resumed_from"] == SPLIT
    multi, one = _losses(runs["multi"]), _losses(runs["one"])
    assert sorted(multi) == list(range(1, STEPS + 1))
    np.testing.assert_allclose([multi[s] for s in range(SPLIT + 1, STEPS + 1)],
                               [one[s] for s in range(SPLIT + 1, STEPS + 1)], rtol=RTOL)


def test_one_compile_per_padded_shape_on_four_devices(runs):
    """The 4-device run compiles once per distinct group shape along its run (computed here on the host)."""
    cfg = load(None, SETS + [f"train.steps={SPLIT}"])
    pad = GrowingPad(initial_pad(cfg, 4))
    shapes = {train_groups(cfg, s, 4, pad, [])[0] for s in range(SPLIT)}
    assert runs["summaries"]["four"]["compiles"] == len(shapes)
    assert runs["summaries"]["four"]["eval_compiles"] == 1


def test_sharded_evaluation_equals_one_device(runs):
    """7 test graphs in batches of 2 on 3 devices (two rounds, the last with two masked groups), and on two
    processes of 2 devices each (one round of 4 groups, the last masked): the one-device scores."""
    one, *sharded = (r["results"]["5"] for r in runs["eval"])
    scored = [k for k in one if k == "score" or "/" in k]
    assert len(scored) > 2
    for other in sharded:
        assert one["graphs"] == other["graphs"] == 7 and one["data_hash"] == other["data_hash"]
        for k in scored:
            assert other[k] == pytest.approx(one[k], rel=1e-6), k


# ---------------------------------------------------------------------------------------------------------------
# In this process (one device)


def test_group_ranges_split_evenly_and_cover_every_sample():
    for num, groups in [(5, 4), (3, 4), (8, 4), (7, 1), (0, 2)]:
        ranges = distributed.group_ranges(num, groups)
        assert len(ranges) == groups
        assert [i for r in ranges for i in r] == list(range(num))
        sizes = [len(r) for r in ranges]
        assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


@pytest.mark.parametrize("batch_size", [5, 3])
def test_groups_hold_the_undivided_batch(batch_size):
    """The real graphs of the groups, in order, are the undivided batch's graphs with the same data (random `pos`
    included); a group left without graphs is masked (no sample counts)."""
    cfg = load(None, SETS + [f"train.batch_size={batch_size}"])
    whole = train_batch(cfg, 3)
    shape, groups = train_groups(cfg, 3, 4)
    assert sorted(groups) == [0, 1, 2, 3]
    assert {b.pad_sizes for b in groups.values()} == {shape}
    real = [b for b in groups.values() if b.lengths.any()]
    assert len(real) == min(batch_size, 4)
    n_whole = int((whole.lengths > 0).sum())
    assert sum(int((b.lengths > 0).sum()) for b in real) == n_whole == batch_size
    for name in ("pos", "s"):
        got = np.concatenate([b.inputs[name][:int(b.graph.n_node[b.lengths > 0].sum())] for b in real])
        np.testing.assert_array_equal(got, whole.inputs[name][:int(whole.graph.n_node[:n_whole].sum())])
    got = np.concatenate([b.lengths[b.lengths > 0] for b in real])
    np.testing.assert_array_equal(got, whole.lengths[:n_whole])


@pytest.mark.parametrize("processor,penalty", [("g_forgetnet", "closed_loss"), ("graphfsa", "none")])
def test_grouped_loss_and_gradient_equal_the_undivided_batch(processor, penalty):
    """Loss, parts, statistics (G-ForgetNet's gate, the closed-gate penalty) and gradients of 4 stacked groups
    (one masked: 3 graphs) pooled over the global batch equal those of the undivided batch."""
    extra = [f"model.processor={processor}", "train.batch_size=3", f"train.gate_penalty={penalty}"]
    cfg = load(None, SETS + extra)
    model = build_model(cfg)
    graphdef, state = nnx.split(model)
    params = nnx.to_pure_dict(state)
    whole = train_batch(cfg, 1)
    _, groups = train_groups(cfg, 1, 4)
    stacked = jax.tree.map(lambda *x: np.stack(x), *groups.values())
    key = jax.random.key(0)

    @jax.jit
    def both(p):
        def f(q, batch):
            loss, parts, stats = training_loss(nnx.merge(graphdef, q), batch, key, penalty, 0.5)
            return loss, (parts, stats)

        return [jax.value_and_grad(f, has_aux=True)(p, b) for b in (whole, stacked)]

    (a, grad_a), (b, grad_b) = both(params)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    if penalty != "none":
        assert "gate" in a[1][1] and "gate_penalty" in a[1][1]
    for x, y in zip(jax.tree.leaves((a, grad_a)), jax.tree.leaves((b, grad_b))):
        np.testing.assert_allclose(np.asarray(y), np.asarray(x), rtol=1e-4, atol=1e-6)


def test_bad_device_and_process_settings_are_clear_errors(monkeypatch, capsys):
    jax.devices()  # the backend is up: only its own count is accepted now
    with pytest.raises(ValueError, match="positive integer, got 0"):
        distributed.set_cpu_devices(0)
    with pytest.raises(ValueError, match="already started with 1"):
        distributed.set_cpu_devices(3)
    distributed.set_cpu_devices(1)
    with pytest.raises(ValueError, match="process id must be in 0..1.*got 2"):
        distributed.initialize(2, 2, "127.0.0.1:1234")
    with pytest.raises(ValueError, match="number of processes must be positive, got 0"):
        distributed.initialize(0, 0, "127.0.0.1:1234")
    with pytest.raises(ValueError, match="HOST:PORT.*'localhost'"):
        distributed.initialize(2, 0, "localhost")
    with pytest.raises(ValueError, match="needs the number of processes"):
        distributed.initialize(None, None, "127.0.0.1:1234")
    monkeypatch.setenv("JAX_PROCESS_ID", "one")
    with pytest.raises(ValueError, match="JAX_PROCESS_ID must be an integer, got 'one'"):
        distributed.initialize()
    monkeypatch.delenv("JAX_PROCESS_ID")
    assert distributed.initialize() is False  # nothing asked for: a single process
    for flags, message in ((["--cpu-devices", "0"], "positive integer, got 0"),
                           (["--num-processes", "2", "--process-id", "5", "--coordinator", "127.0.0.1:9"],
                            "process id must be in 0..1")):
        assert main(["train", "--out", "unused", *flags]) == 2
        assert message in capsys.readouterr().err
