"""Faults of a multi-process run end it with a message instead of a hang or a crash: a process that never joins
(start-up gives up after --init-timeout, naming it and the coordinator), a process killed mid-run (the survivor ends
once JAX's heartbeat timeout, made small here, notices), a coordinator port already taken.

The runs are `nar train` subprocesses, 2 processes on localhost with one CPU device each, under a hard time limit:
a regression shows as a failed assertion, never as a stuck test.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import pytest
from test_distributed import SETS, _free_port

from nar import distributed
from nar.distributed import INIT_TIMEOUT_EXIT
from nar.train import METRICS_FILE

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 90  # seconds: the hard limit on any subprocess of these tests
HEARTBEAT = 5  # seconds without a heartbeat before the coordination service declares a process dead


def _train(out: Path, process_id: int, port: int, *extra: str) -> list[str]:
    sets = [a for s in SETS for a in ("--set", s)]
    return [sys.executable, "-m", "nar.cli", "train", "--algorithm", "bfs", "--processor", "pgn", "--steps",
            "100000", "--out", str(out), "--quiet", *sets, "--cpu-devices", "1", "--num-processes", "2",
            "--process-id", str(process_id), "--coordinator", f"127.0.0.1:{port}", *extra]


@pytest.fixture
def start(tmp_path):
    """Start a command in the background (stderr captured); every process still running at the end is killed."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "cache"),
           "NAR_HEARTBEAT_TIMEOUT": str(HEARTBEAT)}
    procs = []

    def run(cmd):
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      text=True))
        return procs[-1]

    yield run
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.communicate()


def _finish(proc, timeout: float) -> tuple[int, str, float]:
    """Exit status, stderr and seconds taken of a process that must end within `timeout` seconds."""
    t = time.monotonic()
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after {timeout} s: a hang")
    return proc.returncode, err, time.monotonic() - t


def test_a_process_that_never_joins_ends_start_up_with_its_id_and_the_coordinator(start, tmp_path):
    """Process 0 of 2 alone names process 1; process 1 of 2 alone (another run) names process 0, as nothing
    listens at its coordinator. Both give up after --init-timeout 3 with the start-up failure status."""
    ports = _free_port(), _free_port()
    alone = [start(_train(tmp_path / f"run{i}", i, ports[i], "--init-timeout", "3")) for i in (0, 1)]
    for i, proc in enumerate(alone):
        status, err, _ = _finish(proc, LIMIT)
        assert status == INIT_TIMEOUT_EXIT, err[-2000:]
        assert f"process {i} of 2 gave up after 3 s" in err and f"coordinator 127.0.0.1:{ports[i]}" in err, err
        assert f"not joined: process {1 - i}" in err, err


def test_a_peer_killed_mid_run_ends_the_survivor(start, tmp_path):
    """Once process 0 has logged training steps, process 1 is killed (SIGKILL: no goodbye); process 0 exits
    non-zero, telling of the lost heartbeats, a bounded time after (JAX's heartbeat timeout, plus slack)."""
    out, port = tmp_path / "run", _free_port()
    procs = [start(_train(out, i, port)) for i in (0, 1)]
    deadline = time.monotonic() + 3 * LIMIT  # start-up and two compilations: minutes on a loaded 2-core machine
    while not ((out / METRICS_FILE).exists() and (out / METRICS_FILE).read_text().count('"loss"') >= 2):
        ended = [p for p in procs if p.poll() is not None]
        assert not ended, ended[0].communicate()[1][-2000:]
        assert time.monotonic() < deadline, "the run logged no training steps"
        time.sleep(0.2)
    procs[1].send_signal(signal.SIGKILL)
    status, err, took = _finish(procs[0], LIMIT)
    assert status != 0 and "heartbeat" in err, err[-2000:]
    assert took < 6 * HEARTBEAT, took


def test_the_missing_processes_named_on_larger_runs():
    """Process 0 knows only that some of the others are missing; another process that cannot reach the
    coordinator knows process 0 is."""
    port = _free_port()
    assert "not joined: one or more of processes 1..3. " in distributed._join_failure(4, 0, f"127.0.0.1:{port}", 5)
    assert "not joined: process 0 (nothing listens" in distributed._join_failure(4, 2, f"127.0.0.1:{port}", 5)


def test_a_coordinator_port_in_use_is_a_clear_error():
    jax.devices()  # the backend is up: had the check missed, initialize would refuse with another message
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ValueError, match="cannot host the coordinator .* the port is in use"):
            distributed.initialize(2, 0, f"127.0.0.1:{taken.getsockname()[1]}")
