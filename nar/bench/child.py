"""Child processes of the benchmarks, started one way everywhere.

A measurement that needs a process of its own (a clean peak memory, its own simulated device count, a time limit)
or another Python (dm-clrs's virtualenv) runs through `run_child`, which returns the child's stdout or raises a
`ChildError` naming the command and why it failed. `child_env` is the environment such a child gets; `nar bench run
--jobs` uses it for the workers it starts without waiting. A simulated CPU device count is passed as
JAX_NUM_CPU_DEVICES (JAX's public `jax_num_cpu_devices` option, as `nar.distributed.set_cpu_devices` sets it), which
takes precedence over any --xla_force_host_platform_device_count in XLA_FLAGS.
"""

from __future__ import annotations

import os
import shlex
import subprocess


class ChildError(RuntimeError):
    """A child process that exited non-zero or ran past its time limit. `reason` is the short why: its last line
    of output, "exit N" when it printed nothing (`silent`), or "did not finish within T s"; `returncode` is None
    after a timeout."""

    def __init__(self, argv: list[str], reason: str, returncode: int | None = None, silent: bool = False):
        self.argv, self.reason, self.returncode, self.silent = argv, reason, returncode, silent
        super().__init__(f"the child process `{shlex.join(argv)}` failed: {reason}")


def child_env(overrides: dict[str, str] | None = None, cpu_devices: int | None = None) -> dict[str, str]:
    """This process's environment with `overrides` set and, given `cpu_devices`, that many simulated CPU devices
    (JAX_NUM_CPU_DEVICES) for a child that starts JAX."""
    env = {**os.environ, **(overrides or {})}
    if cpu_devices is not None:
        if not isinstance(cpu_devices, int) or isinstance(cpu_devices, bool) or cpu_devices < 1:
            raise ValueError(f"the number of CPU devices must be a positive integer, got {cpu_devices!r}")
        env["JAX_NUM_CPU_DEVICES"] = str(cpu_devices)
    return env


def run_child(argv: list[str], *, env: dict[str, str] | None = None, cpu_devices: int | None = None,
              timeout: float | None = None) -> str:
    """Run `argv` to its end with `child_env(env, cpu_devices)` and return its stdout (text). Raises ChildError
    when it exits non-zero (with its last line of stderr, else of stdout) or runs past `timeout` seconds (it is
    killed then)."""
    argv = [str(a) for a in argv]
    try:
        run = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=child_env(env, cpu_devices))
    except subprocess.TimeoutExpired:
        raise ChildError(argv, f"did not finish within {timeout:.0f} s") from None
    if run.returncode:
        lines = (run.stderr or run.stdout).strip().splitlines()
        raise ChildError(argv, lines[-1] if lines else f"exit {run.returncode}", run.returncode, not lines)
    return run.stdout
