"""`make bench-data`: trajectories per second of nar's generator next to dm-clrs's samplers.

Times `nar.data.generate` (sampling + executing + packing, the whole pipeline) per algorithm at n = 16, 64 and
1,024 on CLRS's default distributions, with every core (the worker pool warmed up first) and with one. dm-clrs's
figures are the anchors measured on this machine type (../shared/reference/README.md: `build_sampler(algo,
num_samples=200, length=n)`), or fresh ones from `--dmclrs-python`, a throwaway virtualenv holding dm-clrs (see
`benchmarks/dmclrs_samplers.py`, in a source checkout); nar itself never depends on dm-clrs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

import nar
from nar.bench import dmclrs_script, git_commit
from nar.bench.child import run_child
from nar.data import generate
from nar.specs import GRAPH_ALGORITHMS, SORTING_ALGORITHMS

# dm-clrs 2.0.3 sampler throughput (trajectories/s) on the 2-core reference machine, n=16 and n=64.
DMCLRS_ANCHOR = {
    "bfs": {16: 2539, 64: 381}, "dfs": {16: 804, 64: 76}, "bellman_ford": {16: 1967, 64: 169},
    "insertion_sort": {16: 3612, 64: 678}, "bubble_sort": {16: 742, 64: 18.5}, "heapsort": {16: 669, 64: 67},
    "quicksort": {16: 1140, 64: 84},
}
# Samples per timing: enough for about a second of work at the expected speed.
_SAMPLES = {16: 16384, 64: 2048, 1024: 16}
_SKIP = {("bubble_sort", 1024): "one trajectory holds 523,777 steps x 1,024 nodes (2 GiB of hints)"}


def _time(algorithm: str, n: int, num: int, workers: int, repeats: int = 3) -> float:
    """Best-of-`repeats` wall seconds for generating `num` samples."""
    best = float("inf")
    for r in range(repeats):
        t0 = time.perf_counter()
        generate(algorithm, num, n, seed=r, workers=workers)
        best = min(best, time.perf_counter() - t0)
    return best


def _dmclrs(python: str, algorithms, sizes) -> dict:
    script = dmclrs_script("dmclrs_samplers.py")
    out = run_child([python, script, ",".join(algorithms), ",".join(map(str, sizes))])
    return {(r["algorithm"], r["n"]): r["traj_per_s"] for r in json.loads(out)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench_out/bench_data.json")
    parser.add_argument("--sizes", default="16,64,1024")
    parser.add_argument("--algorithms", default=",".join(GRAPH_ALGORITHMS + SORTING_ALGORITHMS))
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--one-process", action="store_true",
                        help="time only the single-process pipeline (no worker pool): traj_per_s is then null")
    parser.add_argument("--repeats", type=int, default=1,
                        help="single-process timings per point, best kept (all-core timings keep best of 3)")
    parser.add_argument("--dmclrs-python", help="python of a virtualenv with dm-clrs, to measure it afresh")
    parser.add_argument("--dmclrs-json", default="results/dmclrs_samplers.json",
                        help="dm-clrs figures measured earlier on this machine (rows of algorithm, n, traj_per_s)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    algorithms = args.algorithms.split(",")
    unknown = [a for a in algorithms if a not in GRAPH_ALGORITHMS + SORTING_ALGORITHMS]
    if unknown or args.repeats < 1:
        parser.error(f"unknown algorithms {unknown}" if unknown else "--repeats must be at least 1")
    if args.dmclrs_python:
        try:
            fresh = _dmclrs(args.dmclrs_python, algorithms, sizes)
        except FileNotFoundError as e:
            print(f"nar.bench.data: error: {e}", file=sys.stderr)
            return 2
    elif Path(args.dmclrs_json).exists():
        rows = json.loads(Path(args.dmclrs_json).read_text())["rows"]
        fresh = {(r["algorithm"], r["n"]): r["traj_per_s"] for r in rows}
    else:
        fresh = {}
    if not args.one_process:
        generate("bfs", 1024, 16, workers=args.workers)  # start the worker pool once
    rows = []
    for algorithm in algorithms:
        for n in sizes:
            row = {"algorithm": algorithm, "n": n}
            if (algorithm, n) in _SKIP:
                rows.append(row | {"skipped": _SKIP[(algorithm, n)]})
                continue
            num = _SAMPLES.get(n, 64)
            if algorithm == "bubble_sort" and n >= 64:
                num //= 4
            all_cores = None if args.one_process else num / _time(algorithm, n, num, args.workers)
            one_core = num / _time(algorithm, n, num, 1, repeats=args.repeats)
            ref = fresh.get((algorithm, n), DMCLRS_ANCHOR.get(algorithm, {}).get(n))
            row |= {"samples": num, "traj_per_s": all_cores and round(all_cores, 1),
                    "workers": 1 if args.one_process else args.workers,
                    "traj_per_s_1_core": round(one_core, 1), "dmclrs_traj_per_s": ref,
                    "dmclrs_source": "measured" if (algorithm, n) in fresh else ("anchor" if ref else None),
                    # Like for like: nar in one process against dm-clrs's sampler, which runs in one process.
                    "speedup": round(one_core / ref, 1) if ref else None,
                    "dmclrs_anchor_traj_per_s": DMCLRS_ANCHOR.get(algorithm, {}).get(n),
                    "speedup_vs_anchor": (round(one_core / DMCLRS_ANCHOR[algorithm][n], 1)
                                          if n in DMCLRS_ANCHOR.get(algorithm, {}) else None)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    report = {
        "benchmark": "data generation, trajectories/s (sample + execute + pack)",
        "command": "python -m nar.bench.data " + " ".join(argv if argv is not None else sys.argv[1:]),
        "nar_version": nar.__version__, "git_commit": git_commit(), "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor()},
        "date": time.strftime("%Y-%m-%d"), "results": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"\n| algorithm | n | nar traj/s ({args.workers} workers) | nar 1 core | dm-clrs here (1 process) | "
          f"speed-up, 1 process each | dm-clrs anchor | vs anchor, 1 process each |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "skipped" in r:
            print(f"| {r['algorithm']} | {r['n']} | skipped: {r['skipped']} | | | | | |")
        else:
            ref = f"{r['dmclrs_traj_per_s']:,}" if r["dmclrs_traj_per_s"] else "-"
            up = f"{r['speedup']}x" if r["speedup"] else "-"
            anchor = r["dmclrs_anchor_traj_per_s"]
            vs = f"{r['speedup_vs_anchor']}x" if anchor else "-"
            every = f"{r['traj_per_s']:,.0f}" if r["traj_per_s"] else "-"
            print(f"| {r['algorithm']} | {r['n']} | {every} | {r['traj_per_s_1_core']:,.0f} | "
                  f"{ref} | {up} | {f'{anchor:,}' if anchor else '-'} | {vs} |")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
