"""`--compile-cache DIR`: a second run of the same shapes compiles nothing new and trains to the same numbers; a
corrupt cache is detected (JAX warns and compiles afresh), never used; bad folders are refused."""

import json
import os
import subprocess
import sys

import pytest

from nar.compile_cache import use_compile_cache

TINY = ["--algorithm", "bfs", "--steps", "4", "--set", "model.hidden=8", "--set", "train.batch_size=4",
        "--set", "train.eval_every=2", "--set", "train.val_samples=4", "--set", "train.sizes=[5]",
        "--quiet"]


def train(out, cache=None, env_cache=None):
    env = {k: v for k, v in os.environ.items() if k not in ("NAR_COMPILE_CACHE", "JAX_COMPILATION_CACHE_DIR")}
    if env_cache:
        env["NAR_COMPILE_CACHE"] = str(env_cache)
    argv = [sys.executable, "-m", "nar", "train", *TINY, "--out", str(out)]
    done = subprocess.run(argv + (["--compile-cache", str(cache)] if cache else []), env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("steps_per_s", "seconds")} for r in records], done.stderr


def entries(cache):
    return sorted(p.name for p in cache.rglob("*") if p.is_file())


def test_a_second_run_reuses_every_program_and_a_corrupt_cache_is_not_used(tmp_path):
    cache = tmp_path / "cache"
    first, _ = train(tmp_path / "a", cache)
    kept = entries(cache)
    assert kept, "the first run wrote no compiled program"
    second, _ = train(tmp_path / "b", env_cache=cache)  # the environment variable names the same cache
    assert second == first
    assert entries(cache) == kept  # every program came from the cache: none was compiled and written again
    for p in cache.rglob("*"):
        if p.is_file():
            p.write_bytes(p.read_bytes()[: max(1, p.stat().st_size // 3)])  # truncated: unreadable
    third, stderr = train(tmp_path / "c", cache)
    assert third == first
    assert "Error reading persistent compilation cache entry" in stderr


def test_a_file_is_not_a_cache_folder_and_no_setting_means_no_cache(tmp_path, monkeypatch):
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(ValueError, match="compile cache must be a folder, got the file"):
        use_compile_cache(f)
    monkeypatch.delenv("NAR_COMPILE_CACHE", raising=False)
    assert use_compile_cache(None) is None
