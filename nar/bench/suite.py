"""`nar bench run SUITE`: the accuracy benchmark, one cell per (algorithm, processor, seed).

A suite (a name: `quick` or `full`, shipped in `nar/configs/bench/`; or a TOML file) names the algorithms, processors
and seeds and the budget (config keys laid over each cell's own config, the name ALGORITHM/PROCESSOR:
`nar.config.compose`). Each cell trains into `runs/bench/<suite>/<cell>/` and writes one result file,
`results/<suite>/<cell>.json`, holding everything the report needs (scores per size with per-output and per-hint
detail, the training curve, timings, device, versions, commit, data hashes, the command).

Resumable: a cell whose result file exists for the same config is not recomputed; a killed cell resumes its
training from the last checkpoint (`train.checkpoint_every`); an unreadable result file is recomputed, with a
warning, from the run's checkpoint. A combination the processor refuses (GraphFSA on Bellman-Ford or a sort) is
listed as unsupported, not failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from nar.bench import environment, git_commit, repository_root
from nar.bench.child import child_env
from nar.checkpoint import write_atomic
from nar.compile_cache import ENV as COMPILE_CACHE_ENV
from nar.compile_cache import use_compile_cache
from nar.config import CONFIG_DATA, Config, compose, from_dict, is_name, parse_set, read_toml
from nar.evaluate import Evaluator, evaluate_sizes
from nar.model.memory import check_evaluation_fits
from nar.processors import PROCESSORS
from nar.specs import GRAPH_ALGORITHMS, SORTING_ALGORITHMS
from nar.train import METRICS_FILE, Trainer, config_diff, train_trajectories, validation_set

RESULT_FORMAT = 1
SUITES = CONFIG_DATA / "bench"  # the suites shipped with nar, by name
ALL_ALGORITHMS = tuple(GRAPH_ALGORITHMS + SORTING_ALGORITHMS)
AFFINITY_ENV = "NAR_BENCH_CORES"  # a worker's cores, set by its parent (not forked: JAX's threads may be running)
TRAINED_WITH_FILE = "trained_with.json"
CURVE_POINTS = 100  # training-curve points kept per series in a result file


@dataclasses.dataclass(frozen=True)
class Suite:
    """A benchmark: which cells, and the budget laid over each cell's config."""

    name: str
    algorithms: tuple[str, ...]
    processors: tuple[str, ...]
    seeds: tuple[int, ...]
    overrides: dict  # {"model"|"train"|"eval": {key: value}}
    path: str = ""  # as given: a name (what `nar bench run` takes from any directory) or a file
    xla_flags: str = ""  # set in XLA_FLAGS before JAX starts (by `nar bench run`), recorded in every result
    sets: tuple[str, ...] = ()  # `--set` overrides, passed on to `--jobs` workers

    def cells(self) -> list[tuple[str, str, int]]:
        return [(a, p, s) for a in self.algorithms for p in self.processors for s in self.seeds]


def _names(value, known, what: str) -> tuple:
    value = [value] if isinstance(value, (str, int)) else list(value)
    if not value:
        raise ValueError(f"no {what} given")
    if value == ["all"]:
        return tuple(known)
    unknown = [v for v in value if v not in known]
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; known: {', '.join(map(str, known))}")
    return tuple(value)


def known_suites() -> list[str]:
    return sorted(f.name.removesuffix(".toml") for f in SUITES.iterdir() if f.name.endswith(".toml"))


def suite_file(source: str | Path):
    """The file of a suite given by name (`known_suites`) or by path; ValueError naming the known suites when
    there is none (an old path such as configs/bench/quick.toml included)."""
    known = known_suites()
    if is_name(source) and source in known:
        return SUITES / f"{source}.toml"
    if is_name(source) or not Path(source).is_file():
        raise ValueError(f"suite file {source} does not exist; the suites shipped with nar: {', '.join(known)}")
    return Path(source)


def load_suite(source: str | Path, algorithms=None, processors=None, seeds=None, steps: int | None = None,
               sizes=None, sets: list[str] | None = None) -> Suite:
    """A suite (a name or a file), optionally narrowed (`algorithms`, `processors`, `seeds`), with another step
    budget, other test sizes or `section.key=value` overrides laid over its sections (`sets`, e.g.
    train.size_mix=per_sample)."""
    path = suite_file(source)
    data = read_toml(path, "suite file")
    keys = {"name", "algorithms", "processors", "seeds", "xla_flags", "model", "train", "eval"}
    if set(data) - keys:
        raise ValueError(f"suite file {path}: unknown keys {sorted(set(data) - keys)}; valid: {sorted(keys)}")
    for key in ("name", "algorithms", "processors", "seeds"):
        if key not in data:
            raise ValueError(f"suite file {path} lacks {key!r}")
    overrides = {s: dict(data.get(s, {})) for s in ("model", "train", "eval")}
    for section, values in parse_set(sets or []).items():
        if section not in overrides:
            raise ValueError(f"--set: unknown section {section!r}; valid: model, train, eval")
        overrides[section].update(values)
    for section in overrides.values():
        for key in ("algorithm", "processor", "seed"):
            if key in section:
                raise ValueError(f"suite file {path}: set {key}s with the top-level list (or --{key}s), not in a "
                                 f"section or --set")
    if steps is not None:
        overrides["train"]["steps"] = steps
    if sizes is not None:
        overrides["eval"]["sizes"] = list(sizes)
    try:
        from_dict(overrides)  # unknown keys and bad values fail here, before any cell runs
    except ValueError as e:
        raise ValueError(f"suite file {path}: {e}") from None
    seeds = tuple(int(s) for s in (seeds if seeds is not None else data["seeds"]))
    if not seeds:
        raise ValueError("a suite needs at least one seed")
    algorithms = data["algorithms"] if algorithms is None else algorithms
    processors = data["processors"] if processors is None else processors
    return Suite(str(data["name"]), _names(algorithms, ALL_ALGORITHMS, "algorithm(s)"),
                 _names(processors, tuple(PROCESSORS), "processor(s)"), seeds, overrides,
                 str(source), str(data.get("xla_flags", "")), tuple(sets or ()))


def cell_name(algorithm: str, processor: str, seed: int) -> str:
    return f"{algorithm}_{processor}_s{seed}"


def cell_config(suite: Suite, algorithm: str, processor: str, seed: int) -> Config:
    """The cell's own config (the name ALGORITHM/PROCESSOR), the suite's budget on top, then the seed.
    Raises ValueError when the processor cannot run the algorithm."""
    base = compose(algorithm, processor)
    layered = {s: dict(v) for s, v in suite.overrides.items()}
    layered["train"]["seed"] = seed
    return from_dict(layered, base)


def _curve(metrics_path: Path) -> dict:
    """Loss, validation and gate series from metrics.jsonl, thinned to at most CURVE_POINTS points each."""
    series: dict[str, list] = {"loss": [], "val_score": [], "gate": [], "steps_per_s": []}
    if metrics_path.exists():
        for line in metrics_path.read_text().splitlines():
            record = json.loads(line)
            for key in series:
                if record.get(key) is not None:  # steps_per_s is null for a window of compiling steps only
                    series[key].append([record["step"], record[key]])
    out = {}
    for key, points in series.items():
        if points:
            idx = np.unique(np.linspace(0, len(points) - 1, min(len(points), CURVE_POINTS)).round().astype(int))
            out[key] = [points[i] for i in idx]
    return out


def _read_result(path: Path) -> dict | None:
    """A finished cell's result, or None when absent; a corrupt file is reported and treated as absent."""
    if not path.exists():
        return None
    try:
        result = json.loads(path.read_text())
        if not isinstance(result, dict) or result.get("format") != RESULT_FORMAT or "scores" not in result:
            raise ValueError("not a result file of this format")
        return result
    except (ValueError, UnicodeDecodeError) as e:
        print(f"warning: {path} is unreadable ({e}); recomputing the cell", file=sys.stderr)
        return None


def run_cell(suite: Suite, algorithm: str, processor: str, seed: int, results_dir: str | Path,
             runs_dir: str | Path, command: str = "", log=print) -> dict:
    """Train and test one cell (or resume it, or return its finished result); returns the result dict."""
    config = cell_config(suite, algorithm, processor, seed)
    name = cell_name(algorithm, processor, seed)
    out = Path(results_dir) / f"{name}.json"
    run = Path(runs_dir) / name
    done = _read_result(out)
    if done is not None:
        if done.get("config") == config.to_dict():
            log(f"{name}: finished earlier ({out}), not recomputed")
            return done
        changed = config_diff(done.get("config", {}), config.to_dict())
        if not all(k.startswith("eval.") for k in changed):
            raise ValueError(f"{out} holds a result for another config ({', '.join(changed)} differ); delete it or "
                             f"choose another --results folder")
        log(f"{name}: finished earlier with other test settings ({', '.join(changed)}): tested again from its run")
    measured_with = environment()  # at the start: the code this process runs, even if the checkout moves on
    # The environment training started in, kept in the run folder: a cell resumed (or only re-tested) under a
    # later commit still records which commit trained its parameters.
    trained_file = run / TRAINED_WITH_FILE
    if not (run / "config.toml").exists():
        run.mkdir(parents=True, exist_ok=True)
        trained_file.write_text(json.dumps(measured_with, indent=1))
    trained_with = json.loads(trained_file.read_text()) if trained_file.is_file() else None
    trainer = Trainer(config, run, resume=(run / "config.toml").exists(), progress=False)
    summary = trainer.run()
    evaluator = Evaluator(trainer.model, config.eval.closed_gate)
    scores, test_seconds = {}, {}
    for n in config.eval.sizes:
        t0 = time.perf_counter()
        try:
            cfg = dataclasses.replace(config.eval, sizes=(n,))
            check_evaluation_fits(config.model, cfg)  # before the test graphs are drawn
            res = evaluate_sizes(trainer.model, trainer.best_params, cfg, evaluator)[n]
        except MemoryError as e:  # too big for this machine: recorded, not fatal
            res = {"skipped": str(e)}
        scores[str(n)] = res
        test_seconds[str(n)] = time.perf_counter() - t0
    train_hash = train_trajectories(config, 0).content_hash()
    cell_command = (f"nar bench run {suite.path} --algorithms {algorithm} --processors {processor} "
                    f"--seeds {seed} --steps {config.train.steps} --sizes {','.join(map(str, config.eval.sizes))}"
                    + "".join(f" --set {item}" for item in suite.sets))
    result = {
        "format": RESULT_FORMAT, "suite": suite.name, "algorithm": algorithm, "processor": processor, "seed": seed,
        "config": config.to_dict(), "sizes": list(config.eval.sizes),
        "families": {k: v.get("family") for k, v in scores.items()}, "scores": scores,
        # outputs decoded by a fixed rule, not learned (GraphFSA's BFS pi): {output: the rule}
        **({"fixed_outputs": trainer.model.fixed_outputs} if getattr(trainer.model, "fixed_outputs", None) else {}),
        "training": {"steps": summary["steps"], "best_step": summary["best_step"],
                     "best_val_score": summary["best_val_score"], "resumed_from": summary["resumed_from"],
                     "compiles": summary["compiles"], "curve": _curve(run / METRICS_FILE)},
        "wall_seconds": _wall_seconds(summary["timing"], test_seconds),
        "data": {"validation": validation_set(config).content_hash(), "train_batch_0": train_hash,
                 "test": {k: v.get("data_hash") for k, v in scores.items()}},
        **measured_with, "trained_with": trained_with, "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": command or cell_command, "cell_command": cell_command,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, json.dumps(result, indent=1))  # a killed write leaves no half file behind
    shown = " ".join(f"n={k}:{v['score']:.3f}/{v.get('exact', float('nan')):.3f}" if "score" in v
                     else f"n={k}:skipped" for k, v in scores.items())  # node-level score / graph-level exact
    wall = result["wall_seconds"]
    log(f"{name}: {shown} (training {wall['training']:.0f}s, test {sum(test_seconds.values()):.0f}s)")
    return result


def _wall_seconds(timing: dict, test_seconds: dict) -> dict:
    """The cell's wall time: training's phases summed over every session of its run (`nar.timing`), the test of each
    size in this invocation, and their totals."""
    training = timing["total"]
    return {**timing["seconds"], "training": training, "test": test_seconds,
            "total": training + sum(test_seconds.values()), "sessions": timing["sessions"],
            "complete": timing["complete"]}


def check_clean(results_dir: Path, allow_dirty: bool) -> None:
    """Refuse to write results into the repository's own folders from a tree with uncommitted changes: such a
    result could not be regenerated from any commit. `allow_dirty` lets it through; the result then records the
    hash of the changes (`dirty_diff_sha256`)."""
    root = repository_root()
    commit = git_commit() or ""
    if allow_dirty or root is None or not commit.endswith("+dirty"):
        return
    if results_dir.resolve().is_relative_to(root):
        raise ValueError(f"the work tree {root} has uncommitted changes: results written into {results_dir} "
                         f"could not be regenerated from any commit. Commit first, write elsewhere (--results), or "
                         f"pass --allow-dirty (the result then records the hash of the changes)")


def run_suite(suite: Suite, results_dir: str | Path | None = None, runs_dir: str | Path | None = None,
              command: str = "", log=print, jobs: int = 1, allow_dirty: bool = False) -> dict:
    """Every cell of the suite; {'done': [...], 'unsupported': {cell: reason}}. With `jobs` > 1 the cells run
    in that many worker processes, each pinned to its own share of the cores (small models use one core poorly,
    and XLA compiles on one thread), their logs in `<runs_dir>/<cell>.log`. Results are not written into the
    repository from a dirty tree unless `allow_dirty` (`check_clean`)."""
    results_dir = Path(results_dir or Path("results") / suite.name)
    runs_dir = Path(runs_dir or Path("runs") / "bench" / suite.name)
    check_clean(results_dir, allow_dirty)
    todo, unsupported = [], {}
    for algorithm, processor, seed in suite.cells():
        try:
            cell_config(suite, algorithm, processor, seed)
            todo.append((algorithm, processor, seed))
        except ValueError as e:
            unsupported[cell_name(algorithm, processor, seed)] = str(e)
            log(f"{cell_name(algorithm, processor, seed)}: unsupported ({e})")
    if jobs <= 1:
        for i, (algorithm, processor, seed) in enumerate(todo):
            log(f"[{i + 1}/{len(todo)}] {cell_name(algorithm, processor, seed)}")
            run_cell(suite, algorithm, processor, seed, results_dir, runs_dir, command, log)
    else:
        _run_workers(suite, todo, results_dir, runs_dir, command, log, jobs, allow_dirty)
    return {"done": [cell_name(*c) for c in todo], "unsupported": unsupported}


def _run_workers(suite: Suite, todo: list, results_dir: Path, runs_dir: Path, command: str, log, jobs: int,
                 allow_dirty: bool = False):
    """Each cell as `nar bench run` in its own process, at most `jobs` at once; raises if any cell failed."""
    cores = sorted(os.sched_getaffinity(0))
    share = [cores[i::jobs] for i in range(jobs)] if len(cores) >= jobs else [cores] * jobs
    runs_dir.mkdir(parents=True, exist_ok=True)
    pending, running, failed = list(todo), {}, []
    while pending or running:
        while pending and len(running) < jobs:
            algorithm, processor, seed = cell = pending.pop(0)
            slot = next(i for i in range(jobs) if i not in {s for s, _, _ in running.values()})
            name = cell_name(*cell)
            cfg = cell_config(suite, *cell)
            argv = [sys.executable, "-m", "nar.cli", "bench", "run", suite.path, "--algorithms", algorithm,
                    "--processors", processor, "--seeds", str(seed), "--steps", str(cfg.train.steps),
                    "--sizes", ",".join(map(str, cfg.eval.sizes)), "--results", str(results_dir),
                    "--runs", str(runs_dir), "--command", command] + (["--allow-dirty"] if allow_dirty else [])
            argv += [f"--set={item}" for item in suite.sets]
            out = open(runs_dir / f"{name}.log", "w")
            env = child_env({AFFINITY_ENV: ",".join(map(str, share[slot]))})  # applied by the worker's main()
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
            running[name] = (slot, proc, out)
            log(f"[{len(todo) - len(pending)}/{len(todo)}] {name} started (log {out.name})")
        time.sleep(1.0)
        for name, (slot, proc, out) in list(running.items()):
            if proc.poll() is None:
                continue
            out.close()
            del running[name]
            lines = Path(out.name).read_text().strip().splitlines()
            if proc.returncode:
                failed.append(name)
                log(f"{name}: FAILED (exit {proc.returncode}): {lines[-1] if lines else ''}")
            else:
                log(next((line for line in reversed(lines) if line.startswith(name)), f"{name}: done"))
    if failed:
        raise RuntimeError(f"{len(failed)} cell(s) failed: {', '.join(failed)} (logs in {runs_dir})")


def _list(text: str | None):
    return None if text is None else [x.strip() for x in text.replace(" ", ",").split(",") if x.strip()]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="nar bench run", description=__doc__.split("\n\n")[0])
    p.add_argument("suite", help=f"a suite: {' or '.join(known_suites())} (shipped with nar), or a suite file")
    p.add_argument("--algorithms", help="comma-separated subset (default: the suite's)")
    p.add_argument("--processors", help="comma-separated subset (default: the suite's)")
    p.add_argument("--seeds", help="comma-separated seeds (default: the suite's)")
    p.add_argument("--steps", type=int, help="another training budget (a new result, not the suite's)")
    p.add_argument("--sizes", help="comma-separated test sizes (default: the suite's); a finished cell is "
                                   "tested again from its run, not retrained")
    p.add_argument("--allow-dirty", action="store_true",
                   help="write into the repository's results from a tree with uncommitted changes (the result "
                        "records the changes' hash)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a key of every cell's config (repeatable; a new result, not the suite's)")
    p.add_argument("--results", help="result folder (default: results/<suite name>)")
    p.add_argument("--runs", help="run folder (default: runs/bench/<suite name>)")
    p.add_argument("--jobs", type=int, default=1, help="cells run at once, in worker processes (default 1)")
    p.add_argument("--compile-cache", dest="compile_cache", metavar="DIR",
                   help="keep compiled programs in DIR and reuse them in later cells of the same shapes, in the "
                        "--jobs workers too (default: $NAR_COMPILE_CACHE, else none)")
    p.add_argument("--command", help=argparse.SUPPRESS)  # a worker records its parent's command
    args = p.parse_args(argv)
    argv = sys.argv[1:] if argv is None else ["bench", "run", *argv]
    if os.environ.get(AFFINITY_ENV):  # a worker of `--jobs`: pin to its share of the cores
        os.sched_setaffinity(0, {int(c) for c in os.environ[AFFINITY_ENV].split(",")})
    try:
        cache = use_compile_cache(args.compile_cache)  # before any compilation
        if cache is not None:
            os.environ[COMPILE_CACHE_ENV] = str(cache)  # the workers' default, read by this same function
        seeds = _list(args.seeds)
        if seeds is not None and not all(s.lstrip("-").isdigit() for s in seeds):
            raise ValueError(f"--seeds must be comma-separated integers, got {args.seeds!r}")
        sizes = _list(args.sizes)
        if sizes is not None and not all(n.isdigit() for n in sizes):
            raise ValueError(f"--sizes must be comma-separated positive integers, got {args.sizes!r}")
        suite = load_suite(args.suite, _list(args.algorithms), _list(args.processors),
                           None if seeds is None else [int(s) for s in seeds], args.steps,
                           None if sizes is None else [int(n) for n in sizes], args.set)
        if suite.xla_flags and suite.xla_flags not in os.environ.get("XLA_FLAGS", ""):
            # Read when JAX's backend starts, which it has not yet: nothing above computes on a device.
            os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {suite.xla_flags}".strip()
        summary = run_suite(suite, args.results, args.runs, args.command or "nar " + shlex.join(argv),
                            log=lambda m: print(m, file=sys.stderr), jobs=args.jobs, allow_dirty=args.allow_dirty)
    except (ValueError, FileExistsError, MemoryError) as e:  # usage or config: 2 (`nar --help`)
        print(f"nar bench run: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # cells that failed: a runtime failure
        print(f"nar bench run: error: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"suite": suite.name, "cells": len(summary["done"]),
                      "unsupported": sorted(summary["unsupported"])}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
