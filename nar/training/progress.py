"""The training progress line on stderr: a bar, the loss, training speed, time spent apart from steps, an ETA."""

from __future__ import annotations

import sys
import time

from nar.timing import Clock


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


def progress_text(clock: Clock, session_start: dict, rate: float | None, steps_done: int, steps_left: int) -> str:
    """The progress line's speed part: training steps/s, the time spent apart from steps, and the time left at this
    session's pace (every phase but compiling; `session_start`: the clock's seconds when this session began)."""
    s = clock.seconds
    spent = sum(s.values())
    apart = f"compile {s['compile']:.0f}s, val {s['validation']:.0f}s, ckpt {s['checkpoint']:.0f}s"
    pace = sum(s[p] - session_start[p] for p in s if p != "compile") / max(steps_done, 1)
    eta = time.strftime("%H:%M:%S", time.gmtime(pace * steps_left)) if steps_done else "?"
    speed = f"{rate:.1f} steps/s" if rate else "compiling"
    return f"{speed} ({apart}; {spent:.0f}s in all) ETA {eta}"
