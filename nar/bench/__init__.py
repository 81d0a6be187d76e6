"""Benchmarks: data generation (`data`), model speed (`speed`, `speed_suite`), accuracy suites (`suite`), the
report (`report`); `environment()` is what every result file records about where it was measured. The scripts that
time dm-clrs itself live outside the package, in the repository's `benchmarks/` folder (`dmclrs_script`)."""

from __future__ import annotations

import hashlib
import os
import platform
import resource
import subprocess
from pathlib import Path


def peak_rss_bytes() -> int:
    """This process's resident-memory high-water mark (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_memory_bytes() -> int:
    """Peak memory of a measurement: the device allocator's peak on an accelerator, else (the CPU backend keeps no
    statistics) this process's peak resident memory, JAX itself included."""
    import jax

    dev = jax.devices()[0]
    stats = dev.memory_stats() if dev.platform != "cpu" else None
    if stats and "peak_bytes_in_use" in stats:
        return int(stats["peak_bytes_in_use"])
    return peak_rss_bytes()


def _git(*args) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).parent).stdout.strip()


# What a measurement's commit covers: the whole tree but `results/`, which holds measurements, not code. A result
# file a benchmark has just written there (a sibling cell's) leaves the code it runs unchanged, so it does not make
# the tree dirty; any other change does.
CODE_PATHS = ("--", ":(top)", ":(top,exclude)results")


def git_commit() -> str | None:
    """The commit measured (with '+dirty' when the code has uncommitted changes, `CODE_PATHS`), or None outside
    git."""
    try:
        return _git("rev-parse", "HEAD") + ("+dirty" if _git("status", "--porcelain", *CODE_PATHS) else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def repository_root() -> Path | None:
    """The work tree nar runs from, or None when it is not a git checkout (an installed package)."""
    try:
        return Path(_git("rev-parse", "--show-toplevel")).resolve()
    except (OSError, subprocess.CalledProcessError):
        return None


def dirty_diff_hash() -> str | None:
    """SHA-256 of the uncommitted changes (the diff against HEAD, untracked files' names and contents included),
    None on a clean tree: a result measured from a dirty tree names exactly which changes it ran with."""
    try:
        status = _git("status", "--porcelain", *CODE_PATHS)
        if not status:
            return None
        root = repository_root()
        h = hashlib.sha256(_git("diff", "HEAD", "--binary", *CODE_PATHS).encode())
        for name in _git("ls-files", "--others", "--exclude-standard", "--full-name", *CODE_PATHS).splitlines():
            h.update(name.encode() + b"\0" + (root / name).read_bytes())
        return h.hexdigest()
    except (OSError, subprocess.CalledProcessError):
        return None


def dmclrs_script(name: str) -> Path:
    """The path of a dm-clrs timing script in the repository's `benchmarks/` folder, which `--dmclrs-python` runs
    in dm-clrs's own virtualenv. The folder is not installed with nar: outside a source checkout (an installed
    wheel) this raises a FileNotFoundError saying so."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: dm-clrs's timing scripts are in the benchmarks/ folder of nar's "
                                "repository, which is not installed; run from a source checkout (pip install -e .)")
    return path


def environment() -> dict:
    """Device, library versions and commit of a measurement."""
    import flax
    import jax
    import numpy as np
    import optax

    import nar

    dev = jax.devices()[0]
    return {"device": {"platform": dev.platform, "kind": dev.device_kind, "count": jax.device_count(),
                       "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
            "versions": {"nar": nar.__version__, "jax": jax.__version__, "flax": flax.__version__,
                         "optax": optax.__version__, "numpy": np.__version__, "python": platform.python_version()},
            "commit": git_commit(), "dirty_diff_sha256": dirty_diff_hash()}
