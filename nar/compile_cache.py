"""A persistent cache of compiled XLA programs, shared by runs (`--compile-cache DIR` or `NAR_COMPILE_CACHE`).

A run compiles its training step once per padded shape and its evaluation once per size: on 2 CPU cores that is
minutes per run, often more than a short run's training (docs/benchmarks.md, "Compilation cache"). Runs of the same
shapes (other seeds, regulariser weights, resumed runs, evaluations of one config) compile the same programs. JAX's
own persistent cache keeps them on disk, keyed by the program, the compile options, the backend and JAX's version,
so a different program never reads another's entry. An entry that cannot be read (a truncated or corrupt file) is
reported by JAX as a warning and compiled afresh, never executed.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

ENV = "NAR_COMPILE_CACHE"


def use_compile_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Keep every compiled program in the folder `path` (default: $NAR_COMPILE_CACHE; neither: no cache, None).

    Call it before the process's first compilation: JAX fixes its cache when it first compiles. Every program is
    kept, however quick its compilation (JAX keeps only those over a second by default)."""
    path = path if path is not None else os.environ.get(ENV) or None
    if path is None:
        return None
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"compile cache must be a folder, got the file {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder
