"""The report's input: the result files under `results/` read and checked (accuracy cells of `nar bench run`,
speed rows and the machine's matmul rate of `nar bench suite-speed`), and accuracy cells pooled over seeds
(`aggregate`: mean ± standard error per size). Used by `nar.bench.report`."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from nar.bench.suite import ALL_ALGORITHMS, RESULT_FORMAT

SPEED_DIR = "bench_speed"
MACHINE_FILE = "machine.json"  # the machine's matmul rate, the scale for the speed rows' GFLOP/s


def _read_json(path: Path):
    """The JSON in `path`; a ValueError naming the file when it is not valid JSON."""
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}); delete it or rerun what wrote it") from None


def load_cells(results: str | Path) -> list[dict]:
    """Every accuracy result file under `results/<folder>/`, sorted by suite, algorithm, processor, seed. A cell's
    suite is reported as its folder: the suite's name, or the folder `--results` chose for another budget
    (`results/full_200`), so cells of different budgets are never pooled."""
    cells = []
    for path in sorted(Path(results).glob("*/*.json")):
        data = _read_json(path)
        if isinstance(data, dict) and data.get("format") == RESULT_FORMAT and "scores" in data:
            cells.append({**data, "suite": path.parent.name, "processor": shown_processor(data)})
    order = {a: i for i, a in enumerate(ALL_ALGORITHMS)}
    return sorted(cells, key=lambda c: (c["suite"], order.get(c["algorithm"], 99), c["processor"], c["seed"]))


# Processors renamed: (old name, date of the rename) -> the name of what a result measured before that date then
# computes now. Before 2026-12-06 `pgn` was PGN's equations over the input graph plus self-loops with pointers
# decoded over neighbours only (complete, unmasked on sorts): today's `pgn_mask`; `pgn` is now CLRS's PGN.
RENAMED = {("pgn", "2026-12-06"): "pgn_mask"}


# Cells trained with node pointers encoded on the edge p_i -> i (`model.pointer_encoding = "child"`, which every run
# used before the option existed; CLRS encodes them on i -> p_i) are reported under the processor's name plus this
# mark, so they are never pooled with CLRS-encoded cells of the same suite.
CHILD_POINTERS = " ‡"


def shown_processor(result: dict) -> str:
    """The processor a result is reported under: its own name, or today's name for what it computed (`RENAMED`),
    marked `CHILD_POINTERS` when its pointers were encoded on the child's edge."""
    from nar.processors import PROCESSORS

    name = result["processor"]
    for (old, date), new in RENAMED.items():
        if name == old and result.get("date", "") < date:
            name = new
    model = (result.get("config") or {}).get("model") or {}
    entry = PROCESSORS.get(result["processor"])
    encoder = entry is None or not (entry.automaton or entry.discrete)  # GraphFSA and dnar have no encoder
    if encoder and model.get("pointer_encoding", "child") == "child":
        name += CHILD_POINTERS
    return name


def base_processor(shown: str) -> str:
    """The processor's registry name from its reported name (without `CHILD_POINTERS`)."""
    return shown.removesuffix(CHILD_POINTERS)


def load_machine(results: str | Path) -> dict | None:
    """The machine's float32 matmul rate measured by `nar bench suite-speed` (`<speed dir>/machine.json`)."""
    path = Path(results) / SPEED_DIR / MACHINE_FILE
    return _read_json(path) if path.exists() else None


def load_speed(results: str | Path) -> list[dict]:
    """Speed rows written by `nar bench suite-speed` (model rows; the data-generation file is separate)."""
    rows = []
    for path in sorted((Path(results) / SPEED_DIR).glob("*.json")):
        data = _read_json(path)
        if isinstance(data, dict) and "processor" in data and "num_nodes" in data:
            rows.append(data)
    return rows


def mean_se(values: list[float]) -> tuple[float, float | None]:
    """Mean and standard error (None for one value)."""
    v = np.asarray(values, float)
    return float(v.mean()), (float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else None)


def exact_of(r: dict) -> float | None:
    """A size result's graph-level exact match (a fraction), or None where it has none (written before it was
    measured, or NaN: a model without a non-scalar output)."""
    value = r.get("exact")
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def aggregate(cells: list[dict]) -> dict:
    """{suite: {(algorithm, processor): {'sizes': {n: (mean, se)}, 'exact': {n: (mean, se)}, 'counts': {n: (cells
    with a score, cells with an exact match)}, 'seeds': [...], 'steps': s, 'cells': [...]}}} with scores in %; a
    size a cell skipped (too big) is left out of that cell's mean, and a cell without an exact-match figure (a
    result file from before it was measured) out of the exact match's."""
    groups: dict = defaultdict(lambda: defaultdict(list))
    for c in cells:
        groups[c["suite"]][(c["algorithm"], c["processor"])].append(c)
    out = {}
    for suite, by_cell in groups.items():
        out[suite] = {}
        for key, members in by_cell.items():
            per_size, per_size_exact = defaultdict(list), defaultdict(list)
            for c in members:
                for n, r in c["scores"].items():
                    if "score" in r:
                        per_size[int(n)].append(100.0 * r["score"])
                        if exact_of(r) is not None:
                            per_size_exact[int(n)].append(100.0 * exact_of(r))
            out[suite][key] = {"sizes": {n: mean_se(v) for n, v in sorted(per_size.items())},
                               "exact": {n: mean_se(v) for n, v in sorted(per_size_exact.items())},
                               "counts": {n: (len(v), len(per_size_exact.get(n, ()))) for n, v in
                                          sorted(per_size.items())},
                               "seeds": sorted(c["seed"] for c in members),
                               "steps": sorted({c["training"]["steps"] for c in members}), "cells": members}
    return out
