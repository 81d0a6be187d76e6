"""Training: one jitted step (forward over all hint steps with `lax.scan`, backward, Adam), online CLRS data,
validation with best-parameter selection, JSON-lines metrics and resumable Orbax checkpoints.

Batch s is a pure function of (seed, s), and step s's RNG key is fold_in(key, s), so a run restarted from a
checkpoint replays exactly what an uninterrupted run does: same parameters, bit for bit, on CPU.

Failures stop a run without losing or corrupting it: a step whose loss, gradients or new parameters are not finite
changes nothing and raises `NonFiniteError`; SIGINT and SIGTERM finish the current step, save a checkpoint and exit
with 128 + the signal; a resumed run or `load_run` falls back to the newest checkpoint that passes its checksum
(`nar.checkpoint`); every metrics record is strict JSON (non-finite values written as null).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import signal
import sys
import threading
import time
from dataclasses import astuple, fields
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from nar.checkpoint import Checkpointer, nonfinite, write_atomic
from nar.config import Config, load
from nar.data import clrs_train
from nar.data.batch import Batch, GrowingPad, PadSizes, cover, make_batch, pad_sizes_for
from nar.distributed import (
    barrier,
    data_mesh,
    group_ranges,
    is_main_process,
    local_groups,
    masked,
    replicate,
    shard_groups,
)
from nar.evaluate import Evaluator, batches, hint_probe_count
from nar.grokfast import with_clip
from nar.model.fsa import FSAModel
from nar.model.losses import training_loss
from nar.model.memory import check_fits, check_training_fits
from nar.model.net import Model
from nar.processors import get_processor
from nar.timing import TIMING_FILE, Clock
from nar.trajectory import TrajectoryBatch

CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
# Keys that may change when a run is resumed (extending a run, or logging differently).
RESUMABLE_CHANGES = {"train.steps", "train.log_every", "eval.sizes", "eval.samples", "eval.graph", "eval.degree",
                     "eval.max_edges_per_batch", "eval.batch_size", "eval.seed"}


class NonFiniteError(FloatingPointError, ValueError):
    """A NaN or an infinity in training (a diverged run) or in a run's saved parameters. A ValueError too, so the
    `nar` command prints it as an error message."""


def build_model(config: Config) -> Model | FSAModel:
    """The model of a config, initialised from the config's seed (GraphFSA's own model for an automaton)."""
    cls = FSAModel if get_processor(config.model.processor).automaton else Model
    return cls(config.model, rngs=nnx.Rngs(config.train.seed))


def make_optimizer(config: Config) -> optax.GradientTransformation:
    """CLRS's optimiser: gradients clipped to global norm `grad_clip` (and Grokfast's filter, if `train.grokfast`
    asks for it, in `train.grokfast_order`), then Adam at `learning_rate`."""
    t = config.train
    return optax.chain(*with_clip(t, optax.clip_by_global_norm(t.grad_clip)), optax.scale_by_adam(),
                       optax.scale(-t.learning_rate))


def initial_state(config: Config, params: dict, tx: optax.GradientTransformation) -> dict:
    """Everything a checkpoint holds, at step 0."""
    return {"params": params, "opt_state": tx.init(params), "best_params": params,
            "best_score": jnp.asarray(-jnp.inf, jnp.float32), "best_step": jnp.asarray(0, jnp.int32),
            "step": jnp.asarray(0, jnp.int32), "key": jax.random.key_data(jax.random.key(config.train.seed)),
            "pad": jnp.zeros((pad_groups(config), len(fields(PadSizes))), jnp.int32)}


def pad_groups(config: Config) -> int:
    """How many padded shapes a run keeps: one per training size when each batch has one size (a batch of 4-node
    graphs is not padded to the 16-node batches' shape), else one."""
    t = config.train
    return len(t.sizes) if t.size_mix == "per_batch" else 1


def pad_group(config: Config, step: int) -> int:
    """The padded shape (of `pad_groups`) that training batch `step` uses."""
    return step % pad_groups(config)


def train_trajectories(config: Config, step: int) -> TrajectoryBatch:
    """The samples of training batch `step`: CLRS's online distribution, p drawn per graph. Under "per_batch"
    (CLRS's protocol) batch `step` is drawn at size sizes[step % K] from that size's own stream (batch step // K of
    it); under "per_sample" the sizes are cycled over the samples of every batch."""
    t = config.train
    if t.size_mix == "per_sample":
        return clrs_train(config.model.algorithm, t.batch_size, t.seed, t.sizes,
                          start=step * t.batch_size).trajectories
    k, j = step % len(t.sizes), step // len(t.sizes)
    return clrs_train(config.model.algorithm, t.batch_size, size_seed(t.seed, t.sizes[k]), t.sizes[k],
                      start=j * t.batch_size).trajectories


def size_seed(seed: int, size: int) -> int:
    """The seed of one training size's stream: independent streams per size, as dm-clrs seeds one sampler per
    size (so batch j at size 4 and at size 16 do not share their densities and sources)."""
    return int(np.random.SeedSequence([seed, size]).generate_state(1)[0])


def _group_needs(config: Config, tb: TrajectoryBatch, ranges: list[range]) -> list[PadSizes]:
    """The bucket of each non-empty group of a step's samples, with room for the largest group's graphs."""
    kind, triplets, slots = config.model.graph_kind, config.model.triplets, max(len(r) for r in ranges)
    return [pad_sizes_for(tb.select(r), kind, slots, triplets) for r in ranges if len(r)]


def initial_pads(config: Config, groups: int = 1) -> list[PadSizes | None]:
    """The padded shapes (one per `pad_group`, of each of `groups` data-parallel groups) a fresh run starts at: the
    cover of the first `train.pad_lookahead` batches' buckets in each pad group. Growing from the first batch alone
    compiles once per growth (4-6 times in a short CLRS run, about 10 s each on a small CPU); looking ahead
    compiles once per pad group and rarely grows again."""
    t = config.train
    if t.pad_lookahead == 0:
        return [None] * pad_groups(config)
    ranges = group_ranges(t.batch_size, groups)
    needs: list[list[PadSizes]] = [[] for _ in range(pad_groups(config))]
    for s in range(min(t.pad_lookahead, t.steps)):
        needs[pad_group(config, s)] += _group_needs(config, train_trajectories(config, s), ranges)
    return [cover(n) if n else None for n in needs]


def initial_pad(config: Config, groups: int = 1) -> PadSizes | None:
    """The padded shape a fresh run starts at for batch 0's pad group (see `initial_pads`)."""
    return initial_pads(config, groups)[0]


def train_groups(config: Config, step: int, groups: int, pad: GrowingPad | None = None,
                 which: list[int] | None = None) -> tuple[PadSizes, dict[int, Batch]]:
    """Training batch `step` split into `groups` data-parallel groups of one padded shape (host arrays): that
    shape and {group: Batch} for the groups in `which` (default: all). Every graph gets the same `pos` draws as in
    the undivided batch, so any number of groups trains on the same data. With `pad`, the padded shape only grows
    along the run (few compiles)."""
    t, tb = config.train, train_trajectories(config, step)
    ranges = group_ranges(t.batch_size, groups)
    grown = cover(_group_needs(config, tb, ranges))
    shape = grown if pad is None else pad(grown)
    kind = config.model.graph_kind
    check_fits(shape, config.model.hidden, True, kind, triplet_features=config.model.triplet_features,
               hint_probes=hint_probe_count(config.model), processor=config.model.processor)
    out = {}
    for g in range(groups) if which is None else which:
        r = ranges[g] if len(ranges[g]) else range(1)  # no graphs left for this group: a masked copy of the first
        rng = None
        if t.random_pos:  # the undivided batch's stream, from this group's first node on
            rng = np.random.default_rng([t.seed, step])
            rng.random(int(tb.n_node[:r.start].sum()))
        batch = make_batch(tb.select(r), kind, shape, num_graphs=shape.graphs - 1, random_pos=rng,
                           triplets=config.model.triplets)
        out[g] = batch if len(ranges[g]) else masked(batch)
    return shape, out


def train_batch(config: Config, step: int, pad: GrowingPad | None = None) -> Batch:
    """Training batch `step` (host arrays), undivided. With `pad`, the padded shape only grows along the run (few
    compiles)."""
    return train_groups(config, step, 1, pad)[1][0]


def validation_set(config: Config) -> TrajectoryBatch:
    """CLRS's validation: the training distribution at n = val_size, a seed of its own."""
    t = config.train
    return clrs_train(config.model.algorithm, t.val_samples, t.seed + 1, t.val_size).trajectories


def validation_batches(config: Config) -> list[Batch]:
    """The validation set (`validation_set`) as padded batches."""
    t, tb = config.train, validation_set(config)
    rng = np.random.default_rng([t.seed, -1 % 2**32]) if t.random_pos else None
    return batches(tb, config.model, t.batch_size, config.eval.max_edges_per_batch, random_pos=rng)


class _Prefetch:
    """Builds `build(s)` for s = start, start+1, ... in a background thread, a few ahead of the device."""

    def __init__(self, build, start: int, stop: int, depth: int = 3):
        self._q: queue.Queue = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, args=(build, start, stop), daemon=True)
        self._thread.start()

    def _work(self, build, start, stop):
        try:
            for s in range(start, stop):
                if not self._put((s, build(s))):
                    return
        except Exception as e:  # surfaced in the training thread
            self._put((None, e))

    def _put(self, item) -> bool:
        """Queue an item unless the consumer has stopped; False when it has."""
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self):
        s, item = self._q.get()
        if s is None:
            raise item
        return s, item

    def close(self):
        self._stop.set()
        self._thread.join()


class Progress:
    """A one-line progress bar on stderr (a line per update when stderr is not a terminal)."""

    def __init__(self, total: int, enabled: bool = True):
        self.total, self.enabled = total, enabled
        self.tty = sys.stderr.isatty()
        self._last = 0.0

    def update(self, step: int, text: str, force: bool = False):
        """Show `step` of the total and `text` (at most every 0.5 s on a terminal, 10 s in a log)."""
        if not self.enabled or (not force and time.time() - self._last < (0.5 if self.tty else 10.0)):
            return
        self._last = time.time()
        width = 24
        done = int(width * step / self.total)
        line = f"[{'#' * done}{'.' * (width - done)}] {step}/{self.total} {text}"
        sys.stderr.write(("\r" + line + "\033[K") if self.tty else line + "\n")
        sys.stderr.flush()

    def close(self):
        """End the bar's line."""
        if self.enabled and self.tty:
            sys.stderr.write("\n")


def config_diff(a: dict, b: dict) -> list[str]:
    """The 'section.key' names whose values differ between two config dicts (`Config.to_dict`)."""
    keys = {(s, k) for d in (a, b) for s in d for k in d[s]}
    return sorted(f"{s}.{k}" for s, k in keys if a.get(s, {}).get(k) != b.get(s, {}).get(k))


class Trainer:
    """A training run in `out_dir`: `run()` trains (or resumes) and returns a summary dict.

    Data parallel over `mesh` (default: every device of every process, `nar.distributed.data_mesh`): each step's
    graphs are split into one group per device, parameters replicated, the loss pooled over the global batch.
    With several processes every one runs a Trainer on the same directory; process 0 writes the files.
    `on_step(step, loss)` is called after every step (tests use it to interrupt a run).
    """

    def __init__(self, config: Config, out_dir: str | Path, *, resume: bool = False, progress: bool = True,
                 mesh=None):
        check_training_fits(config)  # before any file, data or parameter: refuse what cannot fit
        self.config, self.out = config, Path(out_dir)
        self.mesh = data_mesh() if mesh is None else mesh
        self.main = is_main_process()
        self.progress = progress and self.main
        ckpt_dir = self.out / CHECKPOINTS
        config_path = self.out / CONFIG_FILE
        if resume:
            if not config_path.is_file():
                raise FileNotFoundError(f"cannot resume: {config_path} does not exist (no run in {self.out})")
            saved = load(config_path).to_dict()
            changed = [k for k in config_diff(saved, config.to_dict()) if k not in RESUMABLE_CHANGES]
            if changed:
                raise ValueError(f"cannot resume {self.out}: the config differs from the saved run in "
                                 f"{', '.join(changed)}")
        elif config_path.exists() or (ckpt_dir.exists() and any(ckpt_dir.iterdir())):
            raise FileExistsError(f"{self.out} already holds a run; pass resume=True (--resume) to continue it "
                                  f"or choose another directory")
        barrier("nar-train-checked")  # every process has looked before process 0 writes
        self.model = build_model(config)
        self.graphdef, params = nnx.split(self.model)
        self.params = nnx.to_pure_dict(params)
        self.tx = make_optimizer(config)
        self.compiles = 0
        self._step = jax.jit(self._train_step)
        self.evaluator = Evaluator(self.model, config.eval.closed_gate, mesh=self.mesh)
        self.checkpointer = Checkpointer(ckpt_dir)
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
            write_atomic(config_path, config.to_toml())

    def _train_step(self, params, opt_state, batch, key, penalty_weight):
        self.compiles += 1  # runs only while tracing: one per padded shape

        def loss_fn(p):
            m = nnx.merge(self.graphdef, p)
            loss, parts, stats = training_loss(m, batch, key, self.config.train.gate_penalty, penalty_weight)
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

    def run(self, on_step=None) -> dict:
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
            _truncate_metrics(metrics_path, start)
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
        build = lambda s: train_groups(self.config, s, groups, pads[pad_group(self.config, s)], mine)  # noqa: E731
        prefetch = _Prefetch(build, start, cfg.steps) if start < cfg.steps else None
        try:
            with open(metrics_path, "a") as log, _deferred_signals() as received:
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
                        _write(log, {"step": done, "loss": loss, "steps_per_s": rate, "compiles": self.compiles,
                                     **{f"loss/{k}": float(v) for k, v in parts.items()},
                                     **{k: float(v) for k, v in stats.items()}})
                        bar.update(done, f"loss {loss:.4f} "
                                         f"{_progress_text(clock, session_start, rate, done - start, cfg.steps - done)}"
                                         f" best val {float(best['best_score']):.4f}")
                    if done % cfg.eval_every == 0 or done == cfg.steps:
                        with clock("validation"):
                            res = self.evaluator(params, val)
                        if np.float32(res["score"]) > np.float32(best["best_score"]):  # as stored
                            best = {"best_params": params, "best_score": jnp.asarray(res["score"], jnp.float32),
                                    "best_step": jnp.asarray(done, jnp.int32)}
                        _write(log, {"step": done, "val_score": res["score"],
                                     "best_val_score": float(best["best_score"]),
                                     **{f"val/{k}": v for k, v in res.items() if "/" in k}})
                    signum = _agreed_signal(received)
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
        summary = _strict({"steps": cfg.steps, "resumed_from": start, "best_val_score": float(best["best_score"]),
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


def _progress_text(clock: Clock, session_start: dict, rate: float | None, steps_done: int, steps_left: int) -> str:
    """The progress line's speed part: training steps/s, the time spent apart from steps, and the time left at this
    session's pace (every phase but compiling; `session_start`: the clock's seconds when this session began)."""
    s = clock.seconds
    spent = sum(s.values())
    apart = f"compile {s['compile']:.0f}s, val {s['validation']:.0f}s, ckpt {s['checkpoint']:.0f}s"
    pace = sum(s[p] - session_start[p] for p in s if p != "compile") / max(steps_done, 1)
    eta = time.strftime("%H:%M:%S", time.gmtime(pace * steps_left)) if steps_done else "?"
    speed = f"{rate:.1f} steps/s" if rate else "compiling"
    return f"{speed} ({apart}; {spent:.0f}s in all) ETA {eta}"


# What `Trainer.train_step`'s status codes say went non-finite.
STEP_FAULTS = {1: "the loss is", 2: "the gradients are", 3: "the updated parameters are"}


def _step_status(loss, grads, params):
    """0 for a sound step, else the first of loss (1), gradients (2) and new parameters (3) that is not finite: one
    fused reduction per tree, inside the jitted step."""
    def finite(tree):
        return jnp.all(jnp.stack([jnp.isfinite(x).all() for x in jax.tree.leaves(tree)]))

    return jnp.select([~jnp.isfinite(loss), ~finite(grads), ~finite(params)], [1, 2, 3], 0).astype(jnp.int32)


@contextlib.contextmanager
def _deferred_signals():
    """Record SIGINT and SIGTERM in the yielded list instead of acting on them, so a run ends at a step boundary
    with a checkpoint; a second signal gets the previous handler (Ctrl-C twice stops at once). Only the main thread
    can handle signals: elsewhere nothing changes. The previous handlers are back afterwards."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    # getsignal gives None for a handler not set from Python; the default is the closest to restore then.
    previous = {s: signal.getsignal(s) or signal.SIG_DFL for s in (signal.SIGINT, signal.SIGTERM)}

    def record(signum, frame):
        received.append(signum)
        signal.signal(signum, previous[signum])

    for s in previous:
        signal.signal(s, record)
    try:
        yield received
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _agreed_signal(received: list[int]) -> int:
    """The first signal any process of the run has received, 0 for none: saving is collective, so every process
    must stop at the same step."""
    signum = received[0] if received else 0
    if jax.process_count() == 1:
        return signum
    from jax.experimental import multihost_utils

    return int(np.max(multihost_utils.process_allgather(np.int32(signum))))


def _strict(record: dict) -> dict:
    """`record` with its non-finite floats (a NaN score, the -inf best score before any validation) as None, so
    that it is valid JSON (null)."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}


def _write(log, record: dict) -> None:
    log.write(json.dumps(_strict(record), allow_nan=False) + "\n")
    log.flush()  # readable while the run goes on (`tail -f metrics.jsonl`)


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop records after `step` (written by a run that was killed after its last checkpoint)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a half-written last line of a killed run
            continue
        if record["step"] <= step:
            keep.append(line)
    write_atomic(path, "".join(line + "\n" for line in keep))


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
    config = load(out / CONFIG_FILE)
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
