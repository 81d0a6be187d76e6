"""Training: one jitted step (forward over all hint steps with `lax.scan`, backward, Adam), online CLRS data,
validation with best-parameter selection, JSON-lines metrics and resumable Orbax checkpoints.

Batch s is a pure function of (seed, s), and step s's RNG key is fold_in(key, s), so a run restarted from a
checkpoint replays exactly what an uninterrupted run does: same parameters, bit for bit, on CPU.

Failures stop a run without losing or corrupting it: a step whose loss, gradients or new parameters are not finite
changes nothing and raises `NonFiniteError`; SIGINT and SIGTERM finish the current step, save a checkpoint and exit
with 128 + the signal; a resumed run or `load_run` falls back to the newest checkpoint that passes its checksum
(`nar.checkpoint`); every metrics record is strict JSON (non-finite values written as null).

Here: the model, the jitted step and the training loop (`Trainer`), `train` and `load_run`. The parts they use live
in `nar.training`: batches and padded shapes (`data`), the optimiser (`optimizer`), the run directory's files
(`run_dir`), the progress line (`progress`) and signal handling (`signals`).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import astuple, fields
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from nar.checkpoint import Checkpointer, nonfinite, write_atomic
from nar.config import Config, load_run_config
from nar.data.batch import GrowingPad, PadSizes
from nar.distributed import barrier, data_mesh, is_main_process, local_groups, replicate, shard_groups
from nar.evaluate import Evaluator
from nar.model.classes import model_class
from nar.model.discrete import DiscreteModel
from nar.model.fsa import FSAModel
from nar.model.losses import training_loss
from nar.model.memory import check_training_fits
from nar.model.net import Model
from nar.model.relic import HintRelic
from nar.timing import TIMING_FILE, Clock
from nar.training.causal import causal_groups, check_causal
from nar.training.data import (
    Prefetch,
    initial_pad,
    initial_pads,
    pad_group,
    pad_groups,
    train_batch,
    train_groups,
    train_trajectories,
    validation_batches,
    validation_set,
)
from nar.training.optimizer import make_optimizer
from nar.training.progress import Progress, progress_text
from nar.training.run_dir import (
    CHECKPOINTS,
    CONFIG_FILE,
    METRICS_FILE,
    append_record,
    check_run_dir,
    config_diff,
    strict,
    truncate_metrics,
)
from nar.training.signals import agreed_signal, deferred_signals

# Training's public names, importable from here (several are defined in `nar.training`).
__all__ = ["CHECKPOINTS", "CONFIG_FILE", "METRICS_FILE", "STEP_FAULTS", "NonFiniteError", "Trainer", "build_model",
           "config_diff", "initial_pad", "initial_state", "load_run", "make_optimizer", "train", "train_batch",
           "train_groups", "train_trajectories", "validation_batches", "validation_set"]


class NonFiniteError(FloatingPointError, ValueError):
    """A NaN or an infinity in training (a diverged run) or in a run's saved parameters. A ValueError too, so the
    `nar` command prints it as an error message."""


def build_model(config: Config) -> Model | FSAModel | DiscreteModel:
    """The model of a config, initialised from the config's seed (GraphFSA's own model for an automaton, the
    discrete model for a discrete step)."""
    return model_class(config.model)(config.model, rngs=nnx.Rngs(config.train.seed))


def initial_state(config: Config, params: dict, tx: optax.GradientTransformation) -> dict:
    """Everything a checkpoint holds, at step 0."""
    return {"params": params, "opt_state": tx.init(params), "best_params": params,
            "best_score": jnp.asarray(-jnp.inf, jnp.float32), "best_step": jnp.asarray(0, jnp.int32),
            "step": jnp.asarray(0, jnp.int32), "key": jax.random.key_data(jax.random.key(config.train.seed)),
            "pad": jnp.zeros((pad_groups(config), len(fields(PadSizes))), jnp.int32)}


class Trainer:
    """A training run in `out_dir`: `run()` trains (or resumes) and returns a summary dict.

    Data parallel over `mesh` (default: every device of every process, `nar.distributed.data_mesh`): each step's
    graphs are split into one group per device, parameters replicated, the loss pooled over the global batch.
    With several processes every one runs a Trainer on the same directory; process 0 writes the files.
    `on_step(step, loss)` is called after every step (tests use it to interrupt a run), `on_validation(step,
    params)` after every validation, inside its clock (`nar bench time-to-accuracy` scores other sizes there).
    """

    def __init__(self, config: Config, out_dir: str | Path, *, resume: bool = False, progress: bool = True,
                 mesh=None):
        check_training_fits(config)  # before any file, data or parameter: refuse what cannot fit
        self.config, self.out = config, Path(out_dir)
        self.mesh = data_mesh() if mesh is None else mesh
        check_causal(config, self.mesh.size)
        self.main = is_main_process()
        self.progress = progress and self.main
        check_run_dir(config, self.out, resume)
        barrier("nar-train-checked")  # every process has looked before process 0 writes
        self.model = build_model(config)
        self.graphdef, params = nnx.split(self.model)
        self.params = nnx.to_pure_dict(params)
        self.tx = make_optimizer(config)
        self.compiles = 0
        self._step = jax.jit(self._train_step)
        self.evaluator = Evaluator(self.model, config.eval.closed_gate, mesh=self.mesh)
        self.checkpointer = Checkpointer(self.out / CHECKPOINTS)
        self._state = replicate(self.mesh, initial_state(config, self.params, self.tx))
        if resume and self.checkpointer.latest_step() is not None:
            # The newest intact checkpoint, onto this mesh (whatever device count wrote it), checked before
            # anything is written.
            self._state = self.checkpointer.restore_intact(self._state)
            step = int(self._state["step"])
            if step > config.train.steps:
                raise ValueError(f"cannot resume {self.out} with train.steps={config.train.steps}: the run is "
                                 f"already at step {step} (set train.steps >= {step})")
            self.checkpointer.delete_after(step)  # corrupt ones that were skipped
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            write_atomic(self.out / CONFIG_FILE, config.to_toml())

    def _train_step(self, params, opt_state, batch, key, penalty_weight):
        self.compiles += 1  # runs only while tracing: one per padded shape

        def loss_fn(p):
            m = nnx.merge(self.graphdef, p)
            loss, parts, stats = training_loss(m, batch, key, self.config.train.gate_penalty, penalty_weight,
                                               HintRelic.of(self.config.train))
            return loss, (parts, stats)

        (loss, (parts, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, new_opt_state = self.tx.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        status = _step_status(loss, grads, new_params)
        # A step that went non-finite changes nothing: no NaN reaches the parameters, the best ones or a checkpoint.
        params, opt_state = jax.tree.map(lambda new, old: jnp.where(status == 0, new, old),
                                         (new_params, new_opt_state), (params, opt_state))
        return params, opt_state, loss, parts, stats, status

    def train_step(self, params, opt_state, batch, key, penalty_weight=0.0):
        """One jitted optimisation step: (params, opt_state, loss, loss parts, processor statistics, status). `batch`
        is one Batch or data-parallel groups stacked on a leading axis (`nar.distributed.shard_groups`). `status` is
        0, or the code (`STEP_FAULTS`) of what went non-finite, and then params and opt_state come back unchanged."""
        return self._step(params, opt_state, batch, key, np.float32(penalty_weight))

    def run(self, on_step=None, on_validation=None) -> dict:
        """Train, or resume, up to `train.steps`; returns the summary dict also written to summary.json.

        Raises NonFiniteError at the first step whose loss, gradients or new parameters are not finite (the step
        changed nothing). From the main thread, SIGINT and SIGTERM end the run after the current step, with a
        checkpoint of that step, as SystemExit(128 + signal): 130 and 143; a second signal acts at once."""
        cfg = self.config.train
        mesh, groups = self.mesh, self.mesh.size
        state = self._state
        start = int(state["step"])
        metrics_path = self.out / METRICS_FILE if self.main else Path(os.devnull)
        if self.main:
            truncate_metrics(metrics_path, start)
        key = jax.random.wrap_key_data(state["key"])
        clock = self.clock = Clock.resume(self.out, start)
        session_start = dict(clock.seconds)
        with clock("data"):
            val = self.evaluator.place(validation_batches(self.config))
        params, opt_state = state["params"], state["opt_state"]
        best = {k: state[k] for k in ("best_params", "best_score", "best_step")}
        bar = Progress(cfg.steps, self.progress)
        t_start = time.perf_counter()
        timed = 0  # training steps (not compiling) since the last log line, and their seconds
        train_log = clock.seconds["train"]
        # The padded shape only grows; a resumed run continues from the shape its checkpoint was trained at.
        saved = np.asarray(state["pad"])
        with clock("data"):
            start_pads = initial_pads(self.config, groups) if not saved[:, 0].all() else [None] * len(saved)
        pads = [GrowingPad(PadSizes(*map(int, row)) if row[0] else first) for row, first in zip(saved, start_pads)]
        shapes = [tuple(map(int, row)) for row in saved]  # per pad group, the shape of its latest trained batch
        mine = local_groups(mesh)
        groups_of = train_groups if cfg.causal_reg == "none" else causal_groups  # Hint-ReLIC: with augmented twins
        build = lambda s: groups_of(self.config, s, groups, pads[pad_group(self.config, s)], mine)  # noqa: E731
        prefetch = Prefetch(build, start, cfg.steps) if start < cfg.steps else None
        try:
            with open(metrics_path, "a") as log, deferred_signals() as received:
                for step in range(start, cfg.steps):
                    with clock("data"):
                        s, (shape, local) = prefetch.get()
                    assert s == step
                    t0, compiles = time.perf_counter(), self.compiles
                    batch = shard_groups(mesh, local)
                    shapes[pad_group(self.config, step)] = astuple(shape)
                    params, opt_state, loss, parts, stats, status = self.train_step(
                        params, opt_state, batch, jax.random.fold_in(key, step), cfg.penalty_weight(step))
                    done = step + 1
                    if int(status):  # read every step: one scalar, so that a non-finite step stops the run there
                        raise NonFiniteError(self._nonfinite_message(done, int(status), parts))
                    compiled = self.compiles != compiles
                    clock.add("compile" if compiled else "train", time.perf_counter() - t0)
                    timed += not compiled
                    if on_step is not None:
                        on_step(done, loss)
                    if done % cfg.log_every == 0 or done == cfg.steps:
                        loss = float(loss)
                        # Steps/s of the training steps alone: compiling, data waits, validation and checkpoints
                        # are timed apart (`clock`).
                        rate = timed / (clock.seconds["train"] - train_log) if timed else None
                        timed, train_log = 0, clock.seconds["train"]
                        append_record(log, {"step": done, "loss": loss, "steps_per_s": rate, "compiles": self.compiles,
                                     **{f"loss/{k}": float(v) for k, v in parts.items()},
                                     **{k: float(v) for k, v in stats.items()}})
                        bar.update(done, f"loss {loss:.4f} "
                                         f"{progress_text(clock, session_start, rate, done - start, cfg.steps - done)}"
                                         f" best val {float(best['best_score']):.4f}")
                    if done % cfg.eval_every == 0 or done == cfg.steps:
                        with clock("validation"):
                            res = self.evaluator(params, val)
                        if np.float32(res["score"]) > np.float32(best["best_score"]):  # as stored
                            best = {"best_params": params, "best_score": jnp.asarray(res["score"], jnp.float32),
                                    "best_step": jnp.asarray(done, jnp.int32)}
                        append_record(log, {"step": done, "val_score": res["score"],
                                     "best_val_score": float(best["best_score"]),
                                     **{f"val/{k}": v for k, v in res.items() if "/" in k}})
                        if on_validation is not None:
                            with clock("validation"):
                                on_validation(done, params)
                    signum = agreed_signal(received)
                    if signum or done % cfg.checkpoint_every == 0 or done == cfg.steps:
                        log.flush()
                        with clock("checkpoint"):
                            self.checkpointer.save(done, replicate(mesh, {
                                "params": params, "opt_state": opt_state, **best, "step": np.int32(done),
                                "key": state["key"], "pad": np.asarray(shapes, np.int32)}))
                        if self.main:  # the time up to this checkpoint, which a resumed run starts from
                            write_atomic(self.out / TIMING_FILE, clock.record(done))
                    if signum:
                        print(f"training of {self.out} stopped by {signal.Signals(signum).name} after step {done}, "
                              f"checkpointed; continue it with --resume", file=sys.stderr)
                        raise SystemExit(128 + signum)
        finally:
            if prefetch is not None:
                prefetch.close()
            bar.close()
        self.params, self.best_params = params, best["best_params"]
        summary = strict({"steps": cfg.steps, "resumed_from": start, "best_val_score": float(best["best_score"]),
                           "best_step": int(best["best_step"]), "compiles": self.compiles,
                           "eval_compiles": self.evaluator.compiles, "seconds": time.perf_counter() - t_start})
        summary["timing"] = clock.to_dict()
        if self.main:
            write_atomic(self.out / "summary.json", json.dumps(summary, indent=1, allow_nan=False))
        return summary

    def _nonfinite_message(self, step: int, status: int, parts: dict) -> str:
        """What went non-finite at `step`, naming the loss parts that did."""
        bad = [f"loss/{k} = {float(v)}" for k, v in parts.items() if not np.isfinite(float(v))]
        detail = f" ({', '.join(bad)})" if status == 1 and bad else ""
        return (f"training of {self.out} stopped at step {step}: {STEP_FAULTS[status]} not finite{detail}. The step "
                f"was not applied; the checkpoints (latest: step {self.checkpointer.latest_step()}) hold finite "
                f"parameters. A lower train.learning_rate or train.grad_clip may help.")


# What `Trainer.train_step`'s status codes say went non-finite.
STEP_FAULTS = {1: "the loss is", 2: "the gradients are", 3: "the updated parameters are"}


def _step_status(loss, grads, params):
    """0 for a sound step, else the first of loss (1), gradients (2) and new parameters (3) that is not finite: one
    fused reduction per tree, inside the jitted step."""
    def finite(tree):
        return jnp.all(jnp.stack([jnp.isfinite(x).all() for x in jax.tree.leaves(tree)]))

    return jnp.select([~jnp.isfinite(loss), ~finite(grads), ~finite(params)], [1, 2, 3], 0).astype(jnp.int32)


def train(config: Config, out_dir: str | Path, *, resume: bool = False, progress: bool = True) -> dict:
    """Train (or resume) a run; see `Trainer`."""
    return Trainer(config, out_dir, resume=resume, progress=progress).run()


def load_run(out_dir: str | Path, which: str = "best_params"):
    """(model, params, config) of a run directory: the best-validation parameters by default, from the newest
    checkpoint that passes its checksum (`Checkpointer.restore_intact`). Parameters holding a NaN or an infinity
    raise NonFiniteError instead of being evaluated."""
    out = Path(out_dir)
    if not (out / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{out} is not a run directory: {out / CONFIG_FILE} is missing")
    config = load_run_config(out / CONFIG_FILE)
    model = build_model(config)
    params = nnx.to_pure_dict(nnx.split(model)[1])
    ckpt = Checkpointer(out / CHECKPOINTS)
    try:
        if ckpt.latest_step() is None:
            raise FileNotFoundError(f"{out} holds no checkpoint yet (nothing under {out / CHECKPOINTS})")
        state = ckpt.restore_intact(initial_state(config, params, make_optimizer(config)))
    finally:
        ckpt.close()
    if bad := nonfinite(state[which]):
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise NonFiniteError(f"the {which} of {out} (checkpoint of step {int(state['step'])}) are not finite in "
                             f"{', '.join(bad[:3])}{more}; they cannot be evaluated")
    return model, state[which], config
