"""Named, versioned dataset suites and the code that writes them to a cache folder (`nar generate SUITE`).

- `clrs30`: CLRS30's splits for our seven algorithms (train 1,000 at n=16 seed 1, val 32 at n=16 seed 2, test 32
  at n=64 seed 3), replaying dm-clrs's sampler stream, so the arrays equal dm-clrs's CLRS30 data bit for bit.
- `ood-large`: 32-sample test sets on larger graphs. Graph algorithms use the sparse families (sparse ER of
  expected degree 5, Watts-Strogatz, grid, random tree). Sizes stop where one trajectory's hints would outgrow
  a laptop: DFS has 3n steps of 5 node hints, bubble sort n^2/2 steps, heapsort and quicksort about 8n.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from nar.clrs_text import write_jsonl
from nar.data.store import load_or_generate
from nar.specs import GRAPH_ALGORITHMS, SORTING_ALGORITHMS

ALGORITHMS = GRAPH_ALGORITHMS + SORTING_ALGORITHMS


@dataclasses.dataclass(frozen=True)
class Split:
    """One dataset of a suite: where it goes and the `nar.data.generate` arguments that make it."""

    algorithm: str
    name: str
    num_samples: int
    num_nodes: int
    seed: int
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def folder(self) -> str:
        return f"{self.algorithm}/{self.name}"


def _clrs30() -> list[Split]:
    return [Split(a, name, num, n, seed, {"stream": "clrs"})
            for a in ALGORITHMS
            for name, num, n, seed in (("train", 1000, 16, 1), ("val", 32, 16, 2), ("test", 32, 64, 3))]


_OOD_FAMILIES = {"sparse_er": {"degree": 5}, "watts_strogatz": {}, "grid": {}, "tree": {}}
_OOD_SIZES = {
    "bfs": (128, 256, 512, 1024),
    "bellman_ford": (128, 256, 512, 1024),
    "dfs": (128, 256),
    "insertion_sort": (128, 256, 512, 1024),
    "bubble_sort": (128,),
    "heapsort": (128, 256),
    "quicksort": (128, 256),
}


def _ood_large() -> list[Split]:
    splits = []
    for a, sizes in _OOD_SIZES.items():
        for n in sizes:
            if a in SORTING_ALGORITHMS:
                splits.append(Split(a, f"test_n{n}", 32, n, 4))
                continue
            for family, opts in _OOD_FAMILIES.items():
                splits.append(Split(a, f"test_{family}_n{n}", 32, n, 4, {"graph": family, **opts}))
    return splits


SUITES: Mapping[str, Callable[[], list[Split]]] = {"clrs30": _clrs30, "ood-large": _ood_large}


def build_suite(suite: str, cache: str | Path, algorithms=None, workers: int | None = None, log=print,
                text: Mapping[str, Any] | None = None) -> dict:
    """Generate (or verify and reuse) every split of `suite` under `cache/suite/`; returns {folder: summary}.
    With `text` (`nar.clrs_text.write_jsonl`'s use_hints and truncate_decimals), each split is also written as
    CLRS-Text JSON lines next to its folder, `<split>.clrs-text[-hints][-dD].jsonl`."""
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; known: {', '.join(SUITES)}")
    unknown = set(algorithms or ()) - set(ALGORITHMS)
    if unknown:
        raise ValueError(f"unknown algorithm(s) {sorted(unknown)}; known: {', '.join(ALGORITHMS)}")
    out = {}
    for split in SUITES[suite]():
        if algorithms and split.algorithm not in algorithms:
            continue
        t0 = time.perf_counter()
        folder = Path(cache) / suite / split.folder
        ds = load_or_generate(folder, split.algorithm, split.num_samples, split.num_nodes, split.seed,
                              workers=workers, **split.options)
        extra = {}
        if text is not None:
            name = (f"{split.name}.clrs-text{'-hints' if text.get('use_hints') else ''}"
                    + (f"-d{text['truncate_decimals']}" if text.get("truncate_decimals") else "") + ".jsonl")
            extra["clrs_text"] = str(write_jsonl(ds.trajectories, folder.with_name(name), **text))
        out[split.folder] = ds.summary() | extra | {"seconds": round(time.perf_counter() - t0, 3)}
        log(f"{suite}/{split.folder}: {len(ds)} samples, n={split.num_nodes}, "
            f"T mean {ds.trajectories.n_step.mean():.1f}, {out[split.folder]['seconds']} s"
            + (f", CLRS-Text {extra['clrs_text']}" if extra else ""))
    return out


def main(argv=None) -> int:
    """`nar generate SUITE [--cache DIR] [--algorithms a,b] [--workers N] [--json] [--format clrs-text [--hints]
    [--decimals D]]`: write a suite to the cache (and, with clrs-text, its CLRS-Text JSON lines)."""
    parser = argparse.ArgumentParser(prog="nar generate", description="Write a dataset suite to a cache folder.")
    parser.add_argument("suite", choices=sorted(SUITES), help="the suite to write: %(choices)s")
    parser.add_argument("--cache", default="cache", help="cache folder (default: ./cache)")
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS), help="comma-separated subset")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary instead of progress lines")
    parser.add_argument("--format", choices=("npy", "clrs-text"), default="npy",
                        help="npy: the dataset folders only; clrs-text: also each split as CLRS-Text question/answer "
                             "JSON lines next to its folder (docs/data_format.md)")
    parser.add_argument("--hints", action="store_true", help="clrs-text: with the hint trace in question and answer")
    parser.add_argument("--decimals", type=int, default=None, metavar="D",
                        help="clrs-text: cut float inputs to D decimals before the algorithm runs (CLRS-Text uses 3)")
    args = parser.parse_args(argv)
    if args.format != "clrs-text" and (args.hints or args.decimals is not None):
        parser.error("--hints and --decimals apply to --format clrs-text")
    if args.decimals is not None and args.decimals < 1:
        parser.error(f"--decimals must be a positive integer, got {args.decimals}")
    text = {"use_hints": args.hints, "truncate_decimals": args.decimals} if args.format == "clrs-text" else None
    algorithms = [a for a in args.algorithms.split(",") if a]
    try:
        summary = build_suite(args.suite, args.cache, algorithms, args.workers,
                              log=(lambda _: None) if args.json else print, text=text)
    except ValueError as e:
        parser.error(str(e))
    if args.json:
        json.dump(summary, sys.stdout, indent=1)
        print()
    return 0
