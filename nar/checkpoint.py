"""Orbax checkpoints of a training run: parameters, optimiser state, best-validation parameters and score,
the step (which is the data position: batch s is a pure function of (seed, s)) and the RNG key.

Saves are atomic (Orbax writes to a temporary folder and renames); the newest `keep` checkpoints are kept.
In a multi-process run every process calls `save` and `restore` with the same global arrays; Orbax writes each
replicated array once. `restore` places the state with the template's shardings, so a checkpoint written on one
device count restores on another (parameters are replicated, never split).
"""

from __future__ import annotations

from pathlib import Path

import jax
import orbax.checkpoint as ocp


class Checkpointer:
    """The checkpoints of one run in `directory` (Orbax), the newest `keep` kept."""

    def __init__(self, directory: str | Path, keep: int = 2):
        self.directory = Path(directory).absolute()
        self._manager = ocp.CheckpointManager(self.directory, options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=False))

    def latest_step(self) -> int | None:
        """The step of the newest checkpoint, or None when there is none."""
        return self._manager.latest_step()

    def save(self, step: int, state: dict) -> None:
        """Write `state` (a pytree of arrays) as the checkpoint of `step`, waiting until it is on disk."""
        self._manager.save(step, args=ocp.args.StandardSave(state), force=True)
        self._manager.wait_until_finished()

    def restore(self, template: dict, step: int | None = None) -> dict:
        """The state at `step` (default: the latest), with the structure and dtypes of `template`."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def close(self) -> None:
        """Release Orbax's resources (threads, file handles)."""
        self._manager.close()
