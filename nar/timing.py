"""Where a training run's wall time goes, summed over every session of the run (a run resumed twice has three).

`Clock` adds up seconds per phase: `data` (waiting for batches, and building the validation set), `compile` (steps
that traced and compiled a new shape), `train` (the other steps), `validation` and `checkpoint`. It is saved beside
each checkpoint, for the checkpoint's step, so a resumed run starts from the time spent up to the step it resumes
from; the work a killed session did after its last checkpoint is done again, and counted once, when it is redone.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

PHASES = ("data", "compile", "train", "validation", "checkpoint")
TIMING_FILE = "timing.json"


class Clock:
    """Seconds per phase (`PHASES`) and the number of sessions; `complete` is False when an earlier session's time
    is unknown (a run resumed from a checkpoint that has no timing record)."""

    def __init__(self, seconds: dict | None = None, sessions: int = 1, complete: bool = True):
        self.seconds = {p: float((seconds or {}).get(p, 0.0)) for p in PHASES}
        self.sessions, self.complete = sessions, complete

    @contextlib.contextmanager
    def __call__(self, phase: str):
        """Time the body as `phase`."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(phase, time.perf_counter() - t0)

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] += seconds

    def to_dict(self) -> dict:
        return {"seconds": dict(self.seconds), "total": sum(self.seconds.values()), "sessions": self.sessions,
                "complete": self.complete}

    @classmethod
    def resume(cls, run: Path, step: int) -> Clock:
        """The clock of a run resumed at `step` (a fresh one at step 0): the time saved with that step's checkpoint,
        one session more."""
        if step == 0:
            return cls()
        try:
            saved = json.loads((run / TIMING_FILE).read_text())
            if saved["step"] == step:
                return cls(saved["seconds"], saved["sessions"] + 1)
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return cls(complete=False)

    def record(self, step: int) -> str:
        """The JSON saved with the checkpoint of `step`."""
        return json.dumps({"step": step, **self.to_dict()}, indent=1)
