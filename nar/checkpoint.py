"""Orbax checkpoints of a training run: parameters, optimiser state, best-validation parameters and score,
the step (which is the data position: batch s is a pure function of (seed, s)) and the RNG key.

Saves are atomic (Orbax writes to a temporary folder and renames); the newest `keep` checkpoints are kept.
In a multi-process run every process calls `save` and `restore` with the same global arrays; Orbax writes each
replicated array once. `restore` places the state with the template's shardings, so a checkpoint written on one
device count restores on another (parameters are replicated, never split).

Checkpoints are verified: once Orbax has written step s, `s/nar_sha256.json` records a SHA-256 over every array
(its path in the tree, dtype, shape and bytes), and `restore` recomputes it. Orbax alone restores flipped bytes in
its array files without complaint. `restore_intact` falls back to the newest checkpoint that passes, warning about
each one it skips.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

CHECKSUM_FILE = "nar_sha256.json"


class CorruptCheckpointError(ValueError):
    """A checkpoint whose files cannot be read, or whose arrays differ from the checksum recorded at its save."""


def write_atomic(path: Path, text: str) -> None:
    """Write `path` through a temporary file and a rename: a killed write leaves the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def tree_path(keys) -> str:
    """A leaf's path as 'opt_state.1.mu.processor.mlp1.kernel', alike for dicts, sequences and named tuples (Orbax's
    metadata stores optax's named-tuple states as lists of dicts)."""
    return ".".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in keys)


def host_array(x) -> np.ndarray:
    """A leaf's value on this host: every leaf of a run's state is replicated, so any local copy is the whole."""
    return np.asarray(x.addressable_data(0) if isinstance(x, jax.Array) else x)


def nonfinite(tree) -> list[str]:
    """The paths of the leaves of `tree` that hold a NaN or an infinity."""
    return [tree_path(k) for k, x in jax.tree_util.tree_flatten_with_path(tree)[0]
            if not np.isfinite(host_array(x)).all()]


def checksum(state) -> str:
    """SHA-256 over every leaf of `state` in tree order: its path, dtype, shape and bytes."""
    h = hashlib.sha256()
    for keys, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        a = host_array(leaf)
        h.update(f"{tree_path(keys)}:{a.dtype.str}:{a.shape};".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _mismatch(saved, template) -> list[str]:
    """How a checkpoint's arrays (Orbax's metadata tree) differ from `template`'s: entries missing on either side
    and entries of another shape or dtype."""
    def entries(tree):
        leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
        return {tree_path(k): (tuple(x.shape), np.dtype(x.dtype)) for k, x in leaves}

    have, want = entries(saved), entries(template)
    out = [f"{p} is not in the checkpoint" for p in want if p not in have]
    out += [f"{p} is in the checkpoint but not in the run's model" for p in have if p not in want]
    out += [f"{p} is {have[p][1]}{list(have[p][0])} in the checkpoint, {want[p][1]}{list(want[p][0])} for the config"
            for p in want if p in have and have[p] != want[p]]
    return out


def _first_line(e: Exception) -> str:
    """An exception as one short line (TensorStore's messages carry a page of JSON)."""
    return f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"


class Checkpointer:
    """The checkpoints of one run in `directory` (Orbax), the newest `keep` kept."""

    def __init__(self, directory: str | Path, keep: int = 2):
        self.directory = Path(directory).absolute()
        self._manager = ocp.CheckpointManager(
            self.directory, item_handlers=ocp.StandardCheckpointHandler(),  # its metadata, before a save too
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False))

    def latest_step(self) -> int | None:
        """The step of the newest checkpoint, or None when there is none."""
        return self._manager.latest_step()

    def save(self, step: int, state: dict) -> None:
        """Write `state` (a pytree of arrays) as the checkpoint of `step`, waiting until it is on disk, then its
        checksum (process 0)."""
        self._manager.save(step, args=ocp.args.StandardSave(state), force=True)
        self._manager.wait_until_finished()
        if jax.process_index() == 0:
            write_atomic(self.directory / str(step) / CHECKSUM_FILE, json.dumps({"sha256": checksum(state)}))

    def restore(self, template: dict, step: int | None = None) -> dict:
        """The state at `step` (default: the latest), with the structure and dtypes of `template`, verified against
        its checksum. Raises CorruptCheckpointError when it cannot be read or differs from its checksum, and
        ValueError naming the entries when its arrays do not fit `template` (a checkpoint of another config)."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        where = f"the checkpoint of step {step} in {self.directory}"
        try:
            saved = self._manager.item_metadata(step).tree
        except Exception as e:
            raise CorruptCheckpointError(f"{where} is unreadable ({_first_line(e)})") from e
        if diff := _mismatch(saved, template):
            more = f" (and {len(diff) - 3} more)" if len(diff) > 3 else ""
            raise ValueError(f"{where} does not match the run's config: {'; '.join(diff[:3])}{more}")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        try:
            state = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
            sidecar = self.directory / str(step) / CHECKSUM_FILE
            recorded = json.loads(sidecar.read_text())["sha256"] if sidecar.exists() else None
        except Exception as e:
            raise CorruptCheckpointError(f"{where} is unreadable ({_first_line(e)})") from e
        if recorded is None:
            warnings.warn(f"{where} has no checksum ({CHECKSUM_FILE}, written since checkpoints are verified): "
                          "restored unverified", stacklevel=2)
        elif checksum(state) != recorded:
            raise CorruptCheckpointError(f"{where} is corrupt: its arrays differ from the checksum recorded when "
                                         "it was saved")
        return state

    def restore_intact(self, template: dict) -> dict:
        """The newest checkpoint that `restore` verifies, warning (on stderr) about each newer one it skips.
        Raises CorruptCheckpointError naming the directory when none is intact, FileNotFoundError when there is
        none; a checkpoint that does not fit `template` raises at once (older ones would not fit either)."""
        steps = sorted(self._manager.all_steps(), reverse=True)
        if not steps:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        for step in steps:
            try:
                return self.restore(template, step)
            except CorruptCheckpointError as e:
                warnings.warn(f"skipping {e}", stacklevel=2)
        raise CorruptCheckpointError(f"no intact checkpoint in {self.directory}: all of steps "
                                     f"{', '.join(map(str, steps))} are corrupt (see the warnings above)")

    def delete_after(self, step: int) -> None:
        """Delete the checkpoints newer than `step` (corrupt ones `restore_intact` skipped; a resumed run writes
        its own)."""
        for s in self._manager.all_steps():
            if s > step:
                self._manager.delete(s)

    def close(self) -> None:
        """Release Orbax's resources (threads, file handles)."""
        self._manager.close()
