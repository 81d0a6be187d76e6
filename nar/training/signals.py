"""Stopping a run cleanly: SIGINT and SIGTERM are recorded, not acted on, so the training loop ends at a step
boundary with a checkpoint; with several processes every one stops at the same step."""

from __future__ import annotations

import contextlib
import signal
import threading

import jax
import numpy as np


@contextlib.contextmanager
def deferred_signals():
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


def agreed_signal(received: list[int]) -> int:
    """The first signal any process of the run has received, 0 for none: saving is collective, so every process
    must stop at the same step."""
    signum = received[0] if received else 0
    if jax.process_count() == 1:
        return signum
    from jax.experimental import multihost_utils

    return int(np.max(multihost_utils.process_allgather(np.int32(signum))))
