"""Training fails loudly and loses nothing: a non-finite step stops the run at that step without touching the
parameters, SIGINT and SIGTERM end it with a checkpoint of the current step (exit 130 / 143) from which a resumed
run continues bit for bit, a resume cannot rewrite a longer run's records, and every record is strict JSON.

Runs are test_train's tiny configuration for 12 steps (checkpoints every 5, so 7 and 9 are steps between two);
the truth is an uninterrupted run, compared bit for bit.
"""

import importlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from test_train import BASE, assert_trees_equal, compilation_cache, stable  # noqa: F401 (a fixture)

from nar.checkpoint import Checkpointer, nonfinite
from nar.cli import main
from nar.config import TrainConfig, load
from nar.distributed import replicate, shard_groups
from nar.model.losses import training_loss
from nar.train import (
    CHECKPOINTS,
    CONFIG_FILE,
    METRICS_FILE,
    NonFiniteError,
    Trainer,
    build_model,
    initial_state,
    load_run,
    make_optimizer,
    train_groups,
)

ROOT = Path(__file__).resolve().parents[1]
train_module = importlib.import_module("nar.train")  # `nar.train` the attribute is the function train()
STEPS = 12
SETTINGS = ["train.checkpoint_every=5", "train.eval_every=4"]


def config(*overrides: str):
    return load(None, BASE + SETTINGS + [f"train.steps={STEPS}", *overrides])


def strict_json(line: str) -> dict:
    """A JSON line, refusing the NaN and Infinity that Python's json writes by default."""
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(line, parse_constant=refuse)


def read_metrics(run: Path) -> list[dict]:
    return [strict_json(line) for line in (run / METRICS_FILE).read_text().splitlines()]


def latest_state(run: Path) -> tuple[int | None, dict | None]:
    ckpt = Checkpointer(run / CHECKPOINTS)
    step = ckpt.latest_step()
    cfg = load(run / CONFIG_FILE)
    params = nnx.to_pure_dict(nnx.split(build_model(cfg))[1])
    state = None if step is None else ckpt.restore(initial_state(cfg, params, make_optimizer(cfg)))
    ckpt.close()
    return step, state


class Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run."""
    out = tmp_path_factory.mktemp("reference") / "run"
    trainer = Trainer(config(), out, progress=False)
    trainer.run()
    return SimpleNamespace(out=out, trainer=trainer, records=read_metrics(out))


# ---------------------------------------------------------------------------------------------------------------
# Non-finite values


@jax.custom_vjp
def poison(x, code):
    """x, except NaN when code == 1; its gradient NaN when code == 2 (exactly x and its gradient when 0)."""
    return jnp.where(code == 1, jnp.nan, x)


poison.defvjp(lambda x, code: (poison(x, code), code),
              lambda code, g: (jnp.where(code == 2, jnp.nan, g), jnp.zeros_like(code)))


@pytest.fixture
def poisoned(monkeypatch):
    """{batch index: code}: training whose loss (1: the loss and its first part) or gradients (2) are NaN at those
    steps. The code travels into the jitted step as the gate-penalty weight, unused by these runs."""
    codes = {}

    def loss(model, batch, key, gate_penalty, weight, causal=None):
        total, parts, stats = training_loss(model, batch, key, gate_penalty, 0.0, causal)
        first = next(iter(parts))
        return poison(total, weight), {**parts, first: poison(parts[first], weight)}, stats

    monkeypatch.setattr(train_module, "training_loss", loss)
    monkeypatch.setattr(TrainConfig, "penalty_weight", lambda self, step: float(codes.get(step, 0)))
    return codes


@pytest.mark.parametrize("what, code, step, checkpoint", [("loss is", 1, 7, 5), ("gradients are", 2, 3, None)])
def test_a_nonfinite_step_stops_the_run_at_that_step(reference, poisoned, tmp_path, what, code, step, checkpoint):
    poisoned[step - 1] = code
    with pytest.raises(FloatingPointError) as e:
        Trainer(config(), tmp_path, progress=False).run()
    assert isinstance(e.value, NonFiniteError) and isinstance(e.value, ValueError)  # the CLI prints ValueErrors
    assert f"stopped at step {step}: the {what} not finite" in str(e.value)
    if code == 1:
        assert re.search(r"not finite \(loss/\S+ = nan\)", str(e.value))
    # Steps before it were trained as in an uninterrupted run, and nothing after it was recorded.
    assert stable(read_metrics(tmp_path)) == stable([r for r in reference.records if r["step"] < step])
    latest, state = latest_state(tmp_path)
    assert latest == checkpoint
    if state is not None:
        assert nonfinite({k: state[k] for k in ("params", "best_params", "opt_state")}) == []


def test_a_nonfinite_step_changes_nothing(poisoned, tmp_path):
    cfg = config()
    trainer = Trainer(cfg, tmp_path, progress=False)
    state = replicate(trainer.mesh, initial_state(cfg, trainer.params, trainer.tx))
    params, opt = state["params"], state["opt_state"]
    # The first step's inputs as the run lays them out (the same compiled step).
    batch = shard_groups(trainer.mesh, train_groups(cfg, 0, 1)[1])
    key = jax.random.fold_in(jax.random.wrap_key_data(state["key"]), 0)
    for code in (1, 2):
        new_params, new_opt, *_, status = trainer.train_step(params, opt, batch, key, code)
        assert int(status) == code
        assert_trees_equal(new_params, params)
        assert_trees_equal(new_opt, opt)
    new_params, *_, status = trainer.train_step(params, opt, batch, key, 0)
    assert int(status) == 0
    assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(new_params), jax.tree.leaves(params)))


def test_nonfinite_parameters_are_not_evaluated(reference, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(reference.out, run)
    _, state = latest_state(run)
    bias = np.array(state["params"]["processor"]["mlp1"]["bias"])
    bias[0] = np.nan
    state["params"]["processor"]["mlp1"]["bias"], state["step"] = bias, np.int32(16)
    ckpt = Checkpointer(run / CHECKPOINTS)
    ckpt.save(16, state)  # as a run saved before non-finite steps were caught
    ckpt.close()
    with pytest.raises(NonFiniteError, match=r"the params of .* \(checkpoint of step 16\) are not finite in "
                                             r"processor\.mlp1\.bias; they cannot be evaluated"):
        load_run(run, "params")
    assert_trees_equal(load_run(run)[1], reference.trainer.best_params)  # the best ones are finite
    assert main(["eval", str(run), "--last", "--sizes", "5", "--samples", "2"]) == 2
    captured = capsys.readouterr()
    assert "nar eval: error: the params of" in captured.err and captured.out == ""


# ---------------------------------------------------------------------------------------------------------------
# Signals


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_checkpoints_the_current_step_and_the_run_resumes_bitwise(reference, tmp_path, signum):
    def outside(*_):  # the handler around the run: reached only when the run's own is not in place
        raise Interrupt

    def send(step, loss):
        if step == 7:
            os.kill(os.getpid(), signum)

    previous = signal.signal(signum, outside)
    try:
        with pytest.raises(SystemExit) as e:
            Trainer(config(), tmp_path, progress=False).run(on_step=send)
        assert signal.getsignal(signum) is outside  # restored
    finally:
        signal.signal(signum, previous)
    assert e.value.code == 128 + signum  # 130 for SIGINT, 143 for SIGTERM
    assert latest_state(tmp_path)[0] == 7  # between the checkpoints at 5 and 10
    assert stable(read_metrics(tmp_path)) == stable([r for r in reference.records if r["step"] <= 7])

    # Killed in step 9 (no checkpoint): step 8's records are left behind, and the next resume drops them.
    def kill(step, loss):
        if step == 9:
            raise Interrupt

    with pytest.raises(Interrupt):
        Trainer(config(), tmp_path, resume=True, progress=False).run(on_step=kill)
    assert max(r["step"] for r in read_metrics(tmp_path)) == 8
    resumed = Trainer(config(), tmp_path, resume=True, progress=False)
    assert resumed.run()["resumed_from"] == 7
    assert_trees_equal(resumed.params, reference.trainer.params)
    assert_trees_equal(resumed.best_params, reference.trainer.best_params)
    assert stable(read_metrics(tmp_path)) == stable(reference.records)


def test_a_second_signal_acts_at_once(tmp_path):
    def outside(*_):
        raise Interrupt

    def send_twice(step, loss):
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, outside)
    try:
        with pytest.raises(Interrupt):
            Trainer(config(), tmp_path, progress=False).run(on_step=send_twice)
        assert signal.getsignal(signal.SIGTERM) is outside
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert latest_state(tmp_path)[0] is None


def test_a_run_outside_the_main_thread_leaves_signals_alone(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    outcome = []
    worker = threading.Thread(target=lambda: outcome.append(
        Trainer(config("train.steps=2"), tmp_path, progress=False).run()))
    worker.start()
    worker.join()
    assert outcome and outcome[0]["steps"] == 2
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_stops_the_command_with_a_checkpoint_then_resume_is_bitwise(tmp_path):
    run, every = tmp_path / "run", 1000  # no regular checkpoint before the signal
    sets = [a for item in BASE + SETTINGS + [f"train.checkpoint_every={every}"] for a in ("--set", item)]
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": jax.config.jax_compilation_cache_dir, "JAX_PLATFORMS": "cpu"}
    command = [sys.executable, "-m", "nar.cli", "train", "--algorithm", "bfs", *sets, "--quiet"]
    proc = subprocess.Popen(command + ["--steps", "5000", "--out", str(run)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not ((run / METRICS_FILE).exists() and (run / METRICS_FILE).read_text().strip()):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM" in err and "--resume" in err
    stopped = max(r["step"] for r in read_metrics(run))
    assert latest_state(run)[0] == stopped and 0 < stopped < every

    # The resumed command against the same command run without interruption, both in child processes of the same
    # environment (an in-process run may differ in the last bit: its process compiled under other tests' settings).
    steps, ref = stopped + 3, tmp_path / "ref"
    for extra in (["--out", str(run), "--resume"], ["--out", str(ref)]):
        subprocess.run(command + ["--steps", str(steps), *extra], cwd=ROOT, env=env, check=True, timeout=300,
                       capture_output=True)
    assert json.loads((run / "summary.json").read_text())["resumed_from"] == stopped
    for which in ("params", "best_params"):
        assert_trees_equal(load_run(run, which)[1], load_run(ref, which)[1])
    assert stable(read_metrics(run)) == stable(read_metrics(ref))


# ---------------------------------------------------------------------------------------------------------------
# Records


def test_resume_with_fewer_steps_than_done_is_refused(reference, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(reference.out, run)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match=rf"train\.steps=10: the run is already at step {STEPS} "):
        Trainer(config("train.steps=10"), run, resume=True, progress=False)
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_records_are_strict_json_when_a_score_is_nan(tmp_path):
    """One-node validation graphs have no hint step to score: the pi_h hint score is NaN, written as null."""
    trainer = Trainer(config("train.val_size=1", "train.steps=4"), tmp_path, progress=False)
    summary = trainer.run()
    records = read_metrics(tmp_path)  # strict: a bare NaN would fail here
    assert [(r["step"], r["val/hint/pi_h"]) for r in records if "val_score" in r] == [(4, None)]
    assert strict_json((tmp_path / "summary.json").read_text()) == summary
