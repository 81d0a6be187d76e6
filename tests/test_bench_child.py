"""`nar.bench.child`: the one way benchmarks start child processes (output, environment, device count, failures
and time limits), checked against what a real child process prints."""

import shlex
import sys
import time

import pytest

from nar.bench.child import ChildError, child_env, run_child

PY = sys.executable


def test_stdout_comes_back_and_overrides_reach_the_child():
    code = "import os; print(os.environ['NAR_CHILD_TEST'], os.environ.get('PATH') is not None)"
    assert run_child([PY, "-c", code], env={"NAR_CHILD_TEST": "seven"}) == "seven True\n"


def test_the_device_count_wins_over_xla_flags():
    """JAX_NUM_CPU_DEVICES (jax_num_cpu_devices) takes precedence over an inherited XLA device-count flag."""
    code = "import jax; print(jax.device_count(), jax.devices()[0].platform)"
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=1", "JAX_PLATFORMS": "cpu"}
    assert run_child([PY, "-c", code], env=env, cpu_devices=3).split() == ["3", "cpu"]


def test_a_failure_names_the_command_and_its_last_line():
    argv = [PY, "-c", "import sys; print('some output'); sys.exit('bad input: x')"]
    with pytest.raises(ChildError) as info:
        run_child(argv)
    e = info.value
    assert (e.reason, e.returncode, e.silent) == ("bad input: x", 1, False)  # stderr's last line, not stdout's
    assert shlex.join(argv) in str(e) and "bad input: x" in str(e)


def test_a_silent_failure_gives_its_exit_status():
    with pytest.raises(ChildError) as info:
        run_child([PY, "-c", "import sys; sys.exit(3)"])
    assert (info.value.reason, info.value.returncode, info.value.silent) == ("exit 3", 3, True)


def test_a_child_past_its_time_limit_is_stopped():
    t0 = time.perf_counter()
    with pytest.raises(ChildError) as info:
        run_child([PY, "-c", "import time; time.sleep(60)"], timeout=1)
    assert time.perf_counter() - t0 < 30
    assert (info.value.reason, info.value.returncode) == ("did not finish within 1 s", None)


@pytest.mark.parametrize("count", [0, -2, True, 2.0, "4"])
def test_a_bad_device_count_is_refused(count):
    with pytest.raises(ValueError, match="number of CPU devices must be a positive integer"):
        child_env(cpu_devices=count)
