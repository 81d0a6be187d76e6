"""`make report`: tables (`docs/results.md`) and PNG plots (`docs/plots/`) from the result files alone.

The report is a pure function of the files under `results/`: accuracy cells written by `nar bench run`
(`results/<suite>/<cell>.json`) and speed rows written by `nar bench suite-speed` (`results/bench_speed/`). Scores
are averaged over seeds (mean ± standard error); the published figures sit beside ours, marked as such. Beside
each size's node-level score (CLRS's micro-F1) stands the graph-level exact match ('exact': the share of test
graphs whose every output is entirely right, `nar.metrics`); result files written before it was measured, and the
published figures, have none ('—' / blank: never filled in). The README's results section (between its
`results:begin` / `results:end` markers) is regenerated too.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from nar.bench.suite import ALL_ALGORITHMS, RESULT_FORMAT

SIZES = (16, 64, 256, 1024)  # the table's columns; other sizes appear in the plots only
SPEED_DIR = "bench_speed"
MACHINE_FILE = "machine.json"  # the machine's matmul rate, the scale for the speed rows' GFLOP/s
README_BEGIN, README_END = "<!-- results:begin (written by `make report`) -->", "<!-- results:end -->"

# Published OOD micro-F1 (%) at n = 64 after 10,000 steps: (mean, standard error or None, source). Ibarz et al.
# 2022 ("A Generalist Neural Algorithmic Learner"), Table 2, holds the CLRS-30 baselines MPNN and PGN (first in
# Veličković et al. 2022) beside Triplet-GMPNN. Only figures checked against the paper are kept
# (../shared/reference/clrs.md §5): read off Table 2 ([V]), or recalled and confirmed by the paper's Table 1 category
# means ([R✓], marked †). Figures recalled without a check (PGN on BFS, DFS and Bellman-Ford; MPNN on DFS) and
# G-ForgetNet's BFS (known only from a secondary quotation, with no table to name) are left out.
IBARZ = "Ibarz et al. 2022, Table 2"
IBARZ_CHECKED = IBARZ + " †"
PUBLISHED = {
    ("bfs", "mpnn"): (99.89, 0.05, IBARZ), ("bfs", "triplet_gmpnn"): (99.73, 0.04, IBARZ),
    ("dfs", "triplet_gmpnn"): (47.79, 4.19, IBARZ_CHECKED),
    ("bellman_ford", "mpnn"): (92.01, 0.28, IBARZ), ("bellman_ford", "triplet_gmpnn"): (97.39, 0.19, IBARZ),
    ("insertion_sort", "mpnn"): (19.81, None, IBARZ_CHECKED), ("insertion_sort", "pgn"): (44.37, None, IBARZ_CHECKED),
    ("insertion_sort", "triplet_gmpnn"): (78.14, 4.64, IBARZ_CHECKED),
    ("bubble_sort", "mpnn"): (5.27, None, IBARZ_CHECKED), ("bubble_sort", "pgn"): (6.01, None, IBARZ_CHECKED),
    ("bubble_sort", "triplet_gmpnn"): (67.68, 5.50, IBARZ_CHECKED),
    ("heapsort", "mpnn"): (10.94, None, IBARZ_CHECKED), ("heapsort", "pgn"): (5.27, None, IBARZ_CHECKED),
    ("heapsort", "triplet_gmpnn"): (31.04, 5.82, IBARZ_CHECKED),
    ("quicksort", "mpnn"): (11.30, None, IBARZ_CHECKED), ("quicksort", "pgn"): (6.17, None, IBARZ_CHECKED),
    ("quicksort", "triplet_gmpnn"): (64.64, 5.12, IBARZ_CHECKED),
}
PUBLISHED_STEPS = 10_000


# ----------------------------------------------------------------------------------------------------------------
# Reading


def _read_json(path: Path):
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


def shown_processor(result: dict) -> str:
    """The processor a result is reported under: its own name, or today's name for what it computed (`RENAMED`)."""
    for (old, date), new in RENAMED.items():
        if result.get("processor") == old and result.get("date", "") < date:
            return new
    return result["processor"]


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


def _exact_of(r: dict) -> float | None:
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
                        if _exact_of(r) is not None:
                            per_size_exact[int(n)].append(100.0 * _exact_of(r))
            out[suite][key] = {"sizes": {n: mean_se(v) for n, v in sorted(per_size.items())},
                               "exact": {n: mean_se(v) for n, v in sorted(per_size_exact.items())},
                               "counts": {n: (len(v), len(per_size_exact.get(n, ()))) for n, v in
                                          sorted(per_size.items())},
                               "seeds": sorted(c["seed"] for c in members),
                               "steps": sorted({c["training"]["steps"] for c in members}), "cells": members}
    return out


# ----------------------------------------------------------------------------------------------------------------
# Tables


def _fmt(value: tuple[float, float | None] | None) -> str:
    if value is None:
        return ""
    mean, se = value
    return f"{mean:.2f}" if se is None else f"{mean:.2f} ± {se:.2f}"


def _describe(cells: list[dict]) -> str:
    """Where and how a set of cells was measured: devices, dates, commits, the commands."""
    devices = sorted({f"{d['platform']} ({d['kind']}, {d['count']} device(s)"
                      + (f", {d['cores']} cores)" if d.get("cores") else ")") for d in (c["device"] for c in cells)})
    dates = sorted(c["date"][:10] for c in cells)
    commands = sorted({c["command"] for c in cells})
    commits = sorted({(c.get("commit") or "unknown")[:12] for c in cells})
    trained = sorted({(c.get("trained_with") or {}).get("commit", "")[:12] for c in cells} - {"", *commits})
    return (f"{len(cells)} cells measured {dates[0]}" + (f" to {dates[-1]}" if dates[-1] != dates[0] else "")
            + f" on {', '.join(devices)}, commit(s) {', '.join(commits)}"
            + (f" (trained at commit(s) {', '.join(trained)}, then tested at the commit(s) named)" if trained else "")
            + "; command(s): "
            + "; ".join(f"`{c}`" for c in commands))


NO_EXACT = "—"  # a size with a node-level score but no graph-level exact match (a result file from before it)


def _fmt_exact(row: dict, n: int) -> str:
    """The graph-level exact match cell at size n: '' where the size was not tested, NO_EXACT where no cell
    measured it, and '(k of m seeds)' where only some of the cells that tested the size did."""
    scored, measured = row.get("counts", {}).get(n, (0, 0))
    if not scored:
        return ""
    if not measured:
        return NO_EXACT
    text = _fmt(row["exact"][n])
    return text if measured == scored else f"{text} ({measured} of {scored} seeds)"


def _fixed_outputs(algorithm: str, processor: str, cells: list[dict]) -> list[str]:
    """Outputs a model decodes by a fixed rule rather than learns (GraphFSA's BFS parents, `fixed_outputs` in the
    result file). Result files from before that field: an automaton's BFS parents were the same rule."""
    from nar.processors import PROCESSORS

    named = sorted({o for c in cells for o in c.get("fixed_outputs", {})})
    legacy = processor in PROCESSORS and PROCESSORS[processor].automaton and algorithm == "bfs"
    return named or (["pi"] if legacy and not any("fixed_outputs" in c for c in cells) else [])


def score_table(agg: dict) -> str:
    """One row per algorithm x processor (ours), the published rows after each algorithm's. Each size has two
    columns: the node-level score ('n=...') and the graph-level exact match ('n=... exact')."""
    head = ("| algorithm | processor | source | seeds | steps | "
            + " | ".join(f"n={n:,} | n={n:,} exact" for n in SIZES) + " |\n"
            + "|---|---|---|---:|---:|" + "---:|" * (2 * len(SIZES)))
    lines = [head]
    algorithms = [a for a in ALL_ALGORITHMS if any(k[0] == a for k in agg)]
    for algorithm in algorithms:
        processors = sorted(p for a, p in agg if a == algorithm)
        for p in processors:
            row = agg[(algorithm, p)]
            steps = "/".join(f"{s:,}" for s in row["steps"])
            fixed = _fixed_outputs(algorithm, p, row["cells"])
            label = p + (f" ({', '.join(fixed)}: fixed rule, not learned)" if fixed else "")
            lines.append(f"| {algorithm} | {label} | ours | {len(row['seeds'])} | {steps} | "
                         + " | ".join(f"{_fmt(row['sizes'].get(n))} | {_fmt_exact(row, n)}" for n in SIZES)
                         + " |")
        for p in processors:
            if (algorithm, p) in PUBLISHED:
                mean, se, source = PUBLISHED[(algorithm, p)]
                # a score at n = 64 only; no paper publishes an exact match: its columns stay blank
                cols = [x for n in SIZES for x in ("" if n != 64 else _fmt((mean, se)), "")]
                lines.append(f"| {algorithm} | {p} | published: {source} | | {PUBLISHED_STEPS:,} | "
                             + " | ".join(cols) + " |")
    return "\n".join(lines)


def table_legend(agg: dict) -> str:
    """What the score table's signs mean, and where each published figure comes from."""
    shown = sorted({PUBLISHED[k][2] for k in agg if k in PUBLISHED})
    lines = ["Scores: CLRS's micro-F1 over the test graphs' nodes, in %, at the best-validation parameters. "
             "`n=… exact`: graph-level exact match, the % of test graphs whose every output is entirely right "
             f"({NO_EXACT}: a result file from before it was measured). Ours: mean ± standard error of the mean over "
             "the seeds listed (no ± for one seed)."]
    if shown:
        lines.append(
            f"Published: OOD micro-F1 at n = 64 after {PUBLISHED_STEPS:,} steps, each beside the processor it was "
            "measured on; ± as the paper reports it (the standard error over 3 seeds for MPNN and PGN, 10 for "
            "Triplet-GMPNN); no paper reports an exact match. Source: Ibarz et al. 2022, \"A Generalist Neural "
            "Algorithmic Learner\", Table 2 (MPNN and PGN are the CLRS-30 baselines of Veličković et al. 2022)."
            + (" †: the figure as recalled in our reference notes, confirmed by the paper's Table 1 category "
               "averages, not read off Table 2 itself." if IBARZ_CHECKED in shown else ""))
    return " ".join(lines)


def detail_table(agg: dict) -> str:
    """Per output and per hint, the seed-mean at each size tested (the score above is their mean)."""
    lines = ["| algorithm | processor | n | score | exact | per output | per hint |",
             "|---|---|---:|---:|---:|---|---|"]
    for (algorithm, p), row in agg.items():
        sizes = sorted({int(n) for c in row["cells"] for n, r in c["scores"].items() if "score" in r})
        for n in sizes:
            parts = defaultdict(list)
            for c in row["cells"]:
                for k, v in c["scores"].get(str(n), {}).items():
                    if k.startswith(("output/", "hint/", "exact/")) and isinstance(v, (int, float)) \
                            and math.isfinite(v):
                        parts[k].append(100.0 * v)
            show = lambda kind: ", ".join(f"{k.split('/', 1)[1]} {np.mean(v):.1f}"  # noqa: E731
                                          for k, v in sorted(parts.items()) if k.startswith(kind))
            outputs = show("output/")
            if sum(k.startswith("exact/") for k in parts) > 1:  # with one output its exact match is the column's
                outputs += f" (exact: {show('exact/')})"
            lines.append(f"| {algorithm} | {p} | {n:,} | {_fmt(row['sizes'].get(n))} | {_fmt_exact(row, n)} | "
                         f"{outputs} | {show('hint/')} |")
    return "\n".join(lines)


def speed_table(rows: list[dict], matmul_gflops: float | None = None) -> str:
    """One row per measurement; achieved GFLOP/s with, given the machine's matmul rate, its share of it."""
    lines = ["| processor | algorithm | n | graph | batch | train steps/s | train GFLOP/step | train GFLOP/s | "
             "train compile s | eval graphs/s | eval GFLOP/s | eval compile s | peak memory MiB | dm-clrs |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]

    def cell(d, k, f):
        return format(d[k], f) if k in d else "–"

    def rate(d):
        if "gflops_per_s" not in d:
            return "–"
        share = f" ({100 * d['gflops_per_s'] / matmul_gflops:.0f}%)" if matmul_gflops else ""
        return f"{d['gflops_per_s']:.1f}{share}"

    for r in sorted(rows, key=lambda r: (r["processor"], r["algorithm"], r["num_nodes"])):
        t, e = r.get("train", {}), r.get("eval", {})
        train = cell(t, "steps_per_s", ".2f") if t else f"skipped: {r.get('train_skipped', '')}"
        evals = cell(e, "graphs_per_s", ".1f") if e else f"skipped: {r.get('eval_skipped', '')}"
        ref = r.get("dm_clrs") or {}
        ref_text = "; ".join(f"{k.replace('_per_s', '/s').replace('_', ' ')} {v}" for k, v in ref.items()
                             if k != "version")
        gflop = format(t["flops_per_step"] / 1e9, ".2f") if "flops_per_step" in t else "–"
        lines.append(f"| {r['processor']} | {r['algorithm']} | {r['num_nodes']:,} | {r['graph']} | {r['batch_size']} | "
                     f"{train} | {gflop} | {rate(t)} | {cell(t, 'compile_s', '.1f')} | {evals} | {rate(e)} | "
                     f"{cell(e, 'compile_s', '.1f')} | {r['peak_memory_bytes'] / 2**20:,.0f} | {ref_text} |")
    return "\n".join(lines)


def same_work_table(rows: list[dict]) -> str:
    """nar against dm-clrs where both did the same work: the same processor on the same graphs (family, size and
    edge probability), batch and hidden size, one process each; the ratio is nar's rate over dm-clrs's. Then, apart
    and never as a like-for-like ratio, `pgn_mask` (PGN on the sparse input graph: less work) beside dm-clrs's
    dense PGN on the same graphs. Empty when no row has dm-clrs figures."""
    def ref(r, key):
        v = (r.get("dm_clrs") or {}).get(key)
        return v if isinstance(v, (int, float)) else None

    def pair(ours, theirs, f):
        if ours is None or theirs is None:
            return f"{_num(ours, f)} | {_num(theirs, f)} | –"
        return f"{ours:{f}} | {theirs:{f}} | {ours / theirs:.2f}x"

    same = [r for r in rows if r.get("dm_clrs") and r["processor"] in ("mpnn", "pgn", "triplet_gmpnn")]
    if not same:
        return ""
    lines = ["| processor | algorithm | n | graphs (p) | batch | nar train steps/s | dm-clrs train steps/s | ratio | "
             "nar eval graphs/s | dm-clrs eval graphs/s | ratio |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(same, key=lambda r: (r["processor"], r["algorithm"], r["num_nodes"])):
        lines.append(f"| {r['processor']} | {r['algorithm']} | {r['num_nodes']:,} | {r['graph']} "
                     f"({r['dm_clrs'].get('p', '?')}) | {r['batch_size']} | "
                     f"{pair(r.get('train', {}).get('steps_per_s'), ref(r, 'train_steps_per_s'), '.2f')} | "
                     f"{pair(r.get('eval', {}).get('graphs_per_s'), ref(r, 'eval_graphs_per_s'), '.1f')} |")
    pgn = {(r["algorithm"], r["num_nodes"]): r for r in same if r["processor"] == "pgn"}
    less = [(r, pgn[(r["algorithm"], r["num_nodes"])]) for r in rows if r["processor"] == "pgn_mask"
            and (r["algorithm"], r["num_nodes"]) in pgn and "eval" in r]
    for r, dense in sorted(less, key=lambda x: x[0]["num_nodes"]):
        theirs = ref(dense, "eval_graphs_per_s")
        factor = f", {r['eval']['graphs_per_s'] / theirs:.1f}x its rate" if theirs else ""
        lines.append(f"\nLess work, not like for like: nar `pgn_mask` (messages and pointers on the input graph's "
                     f"edges only; dm-clrs has no sparse path) predicts {r['algorithm']} at n = {r['num_nodes']:,} "
                     f"({r['graph']}) at {r['eval']['graphs_per_s']:.1f} graphs/s, against dm-clrs's dense PGN at "
                     f"{_num(theirs, '.1f')} graphs/s on the same graphs{factor}.")
    return "\n".join(lines)


def _num(x, f: str) -> str:
    return "–" if x is None else format(x, f)


# ----------------------------------------------------------------------------------------------------------------
# Plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _colours(processors) -> dict:
    from nar.processors import PROCESSORS

    names = list(PROCESSORS)
    palette = [f"C{i}" for i in range(10)]
    return {p: palette[names.index(p) % 10] if p in names else "k" for p in processors}


def _grid(plt, algorithms: list[str], title: str):
    cols = min(4, len(algorithms))
    rows = math.ceil(len(algorithms) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(max(4.2 * cols, 9.0), 3.4 * rows + 0.9), squeeze=False)
    for ax in axes.flat[len(algorithms):]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=12)
    return fig, list(axes.flat)


def _shared_legend(fig, axes, ncol: int, fontsize: int) -> int:
    """One legend under the figure for the labels of every panel (each label once); returns its row count."""
    handles = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(len(handles), ncol),
                   fontsize=fontsize, frameon=False)
    return math.ceil(len(handles) / ncol)


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _finish(fig, axes, path: Path) -> Path:
    """A panel grid with its shared legend, saved."""
    legend_rows = _shared_legend(fig, axes, 4, 9)
    fig.tight_layout(rect=(0, min(0.3, 0.3 * legend_rows / fig.get_size_inches()[1]), 1, 0.97))
    return _save(fig, path)


def _size_axis(ax, sizes: list[int]) -> None:
    """Log-2 graph-size axis ticked at the sizes measured, written as plain numbers."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
    ax.minorticks_off()
    if sizes:
        ax.set_xlim(sizes[0] / 1.4, sizes[-1] * 1.4)
    ax.set_xlabel("graph size n (nodes)")


def plot_sizes(agg: dict, suite: str, path: Path) -> Path:
    """Score vs graph size (log x) per algorithm, a line per processor: node-level score solid, graph-level exact
    match dashed in the same colour (where measured); published n=64 figures as stars."""
    plt = _pyplot()
    algorithms = [a for a in ALL_ALGORITHMS if any(k[0] == a for k in agg)]
    colours = _colours({p for _, p in agg})
    fig, axes = _grid(plt, algorithms, f"OOD score vs graph size ({suite} suite; trained on n ≤ 16)")
    for ax, algorithm in zip(axes, algorithms):
        for (a, p), row in sorted(agg.items()):
            if a != algorithm or not row["sizes"]:
                continue
            ns = sorted(row["sizes"])
            means = [row["sizes"][n][0] for n in ns]
            errs = [row["sizes"][n][1] or 0.0 for n in ns]
            ax.errorbar(ns, means, yerr=errs, marker="o", ms=4, lw=1.5, capsize=2, color=colours[p], label=p)
            exact = row.get("exact", {})
            if exact:
                ne = sorted(exact)
                ax.errorbar(ne, [exact[n][0] for n in ne], yerr=[exact[n][1] or 0.0 for n in ne], marker="s",
                            ms=4, mfc="none", lw=1.2, linestyle="--", capsize=2, color=colours[p],
                            label="graph-level exact match, dashed")
            if (a, p) in PUBLISHED:
                ax.plot([64], [PUBLISHED[(a, p)][0]], marker="*", ms=11, mfc="none", color=colours[p],
                        linestyle="none", label="published (n=64), same colour")
        _size_axis(ax, sorted({n for (a, _), row in agg.items() if a == algorithm for n in row["sizes"]}))
        ax.set_title(algorithm)
        ax.set_ylabel("micro-F1 / exact match (%)")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
    return _finish(fig, axes, path)


def plot_training(cells: list[dict], suite: str, path: Path) -> Path:
    """Training loss per algorithm, a line per processor (thin: one per seed)."""
    plt = _pyplot()
    mine = [c for c in cells if c["suite"] == suite]
    algorithms = [a for a in ALL_ALGORITHMS if any(c["algorithm"] == a for c in mine)]
    colours = _colours({c["processor"] for c in mine})
    fig, axes = _grid(plt, algorithms, f"training loss ({suite} suite)")
    for ax, algorithm in zip(axes, algorithms):
        for c in mine:
            curve = c["training"]["curve"].get("loss")
            if c["algorithm"] != algorithm or not curve:
                continue
            steps, loss = zip(*curve)
            ax.plot(steps, loss, lw=1.2, color=colours[c["processor"]], label=c["processor"], alpha=0.85)
        ax.set_yscale("log")
        ax.set_title(algorithm)
        ax.set_xlabel("training step")
        ax.set_ylabel("loss (outputs + hints)")
        ax.grid(alpha=0.3)
    return _finish(fig, axes, path)


def plot_gate(cells: list[dict], path: Path) -> Path | None:
    """G-ForgetNet's mean history gate over training, a line per algorithm and suite; None without such runs."""
    runs = [c for c in cells if c["training"]["curve"].get("gate")]
    if not runs:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, c in enumerate(runs):
        steps, gate = zip(*c["training"]["curve"]["gate"])
        ax.plot(steps, gate, lw=1.3, color=f"C{ALL_ALGORITHMS.index(c['algorithm']) % 10}",
                linestyle=("-", "--", ":")[c["seed"] % 3],
                label=f"{c['algorithm']} ({c['suite']}, seed {c['seed']})")
    ax.set_xlabel("training step")
    ax.set_ylabel("mean gate g over nodes and steps")
    ax.set_ylim(0, 1)
    ax.set_title("G-ForgetNet: how much history the model keeps")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    return _save(fig, path)


def plot_speed(rows: list[dict], path: Path) -> Path | None:
    """Train steps/s and eval graphs/s vs graph size, a line per processor (log-log), dm-clrs as black-edged
    crosses in the processor's colour."""
    if not rows:
        return None
    plt = _pyplot()
    fig, (tr, ev) = plt.subplots(1, 2, figsize=(11, 4.4))
    colours = _colours({r["processor"] for r in rows})
    algorithms = sorted({r["algorithm"] for r in rows})
    for p in sorted({r["processor"] for r in rows}):
        for algorithm in algorithms:
            mine = sorted((r for r in rows if r["processor"] == p and r["algorithm"] == algorithm),
                          key=lambda r: r["num_nodes"])
            style = "-" if algorithm == algorithms[0] else "--"
            for ax, key, sub in ((tr, "train", "steps_per_s"), (ev, "eval", "graphs_per_s")):
                pts = [(r["num_nodes"], r[key][sub]) for r in mine if key in r]
                if pts:
                    ax.plot(*zip(*pts), marker="o", ms=4, lw=1.4, linestyle=style, color=colours[p],
                            label=p if len(algorithms) == 1 else f"{p} ({algorithm})")
    for r in rows:
        for ax, key in ((tr, "train_steps_per_s"), (ev, "eval_graphs_per_s")):
            # a figure, not the reason a dm-clrs row failed ("did not finish within 150 s": in the table only)
            if isinstance((r.get("dm_clrs") or {}).get(key), (int, float)):
                ax.plot(r["num_nodes"], r["dm_clrs"][key], marker="X", ms=10, mec="k", mew=1.2,
                        color=colours[r["processor"]], linestyle="none", label=f"dm-clrs {r['processor']} (same work)")
    for ax, what in ((tr, "train steps/s (batch as in the table)"), (ev, "eval graphs/s")):
        _size_axis(ax, sorted({r["num_nodes"] for r in rows}))
        ax.set_yscale("log")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3, which="both")
    tr.set_title("training")
    ev.set_title("evaluation")
    fig.tight_layout(rect=(0, 0.06 * _shared_legend(fig, (tr, ev), 5, 8), 1, 1))
    return _save(fig, path)


# ----------------------------------------------------------------------------------------------------------------
# The report


def headline_suites(agg: dict) -> list[str]:
    """The suites the README shows, headline first: the CLRS protocol (`full`, else the `full_<steps>` run on the
    largest reduced budget), then `quick` (every algorithm x processor); another suite only when neither exists."""
    reduced = sorted((s for s in agg if s.startswith("full_") and s[5:].isdigit()), key=lambda s: int(s[5:]))
    protocol = ["full"] if "full" in agg else reduced[-1:]
    shown = protocol + (["quick"] if "quick" in agg else [])
    return shown or sorted(agg)[:1]


def write_report(results: str | Path = "results", docs: str | Path = "docs", readme: str | Path | None = None,
                 command: str = "make report") -> list[Path]:
    """Write docs/results.md and the plots; regenerate the README's results section when `readme` is given.
    Returns the files written."""
    results, docs = Path(results), Path(docs)
    cells, speed = load_cells(results), load_speed(results)
    agg = aggregate(cells)
    written, md = [], [
        "# nar benchmark results",
        "",
        f"Generated by `{command}` from the result files under `{results}/` (one JSON per cell; every number below "
        "comes from one of them). Scores are CLRS's micro-F1 on test graphs, in %, at the best-validation "
        "parameters; mean ± standard error over seeds. Beside each size, `exact` is the graph-level exact match: the "
        "% of test graphs whose every output is entirely right (docs/benchmarks.md); `—` where the result files "
        "predate it (never filled in), `(k of m seeds)` where only some seeds' files have it. Published rows are the "
        f"papers' numbers, at n = 64 after {PUBLISHED_STEPS:,} steps (none reports an exact match); † marks values "
        "our reference notes recall rather than read off the table.",
        "",
    ]
    for suite in sorted(agg, key=lambda s: (s != "full", s)):
        suite_cells = [c for c in cells if c["suite"] == suite]
        size_png = plot_sizes(agg[suite], suite, docs / "plots" / f"{suite}_sizes.png")
        train_png = plot_training(cells, suite, docs / "plots" / f"{suite}_training.png")
        written += [size_png, train_png]
        md += [f"## Suite `{suite}`", "", _describe(suite_cells), "", score_table(agg[suite]), "",
               table_legend(agg[suite]), "",
               f"![score vs size](plots/{size_png.name})", "", f"![training loss](plots/{train_png.name})", "",
               "<details><summary>Per output and per hint</summary>", "", detail_table(agg[suite]), "",
               "</details>", ""]
    if not agg:
        md += ["No accuracy results yet: run `make bench-quick` or `make bench-full`.", ""]
    gate_png = plot_gate(cells, docs / "plots" / "g_forgetnet_gate.png")
    if gate_png:
        written.append(gate_png)
        md += ["## G-ForgetNet's history gate", "", "The mean gate over real nodes and hint steps, logged during "
               "training (0: the model ignores its previous hidden state, as ForgetNet does).", "",
               f"![gate](plots/{gate_png.name})", ""]
    md += ["## Speed", ""]
    if speed:
        speed_png = plot_speed(speed, docs / "plots" / "speed.png")
        written.append(speed_png)
        envs = sorted({f"{e['device']['platform']} ({e['device']['kind']}, {e['device']['count']} device(s)), "
                       f"jax {e['versions']['jax']}, commit {(e.get('commit') or 'unknown')[:12]}"
                       for e in (r["environment"] for r in speed if "environment" in r)})
        machine = load_machine(results)
        scale = [] if machine is None else [
            f"The machine's float32 matmul rate, the scale for the GFLOP/s columns (% of it in brackets): "
            f"{machine['matmul_gflops_per_s']:.1f} GFLOP/s ({machine['matmul']}), measured {machine['date']} with "
            f"`{machine['command']}`.", ""]
        md += [f"{len(speed)} rows measured on {'; '.join(envs)}; command(s): "
               + "; ".join(f"`{c}`" for c in sorted({r['command'] for r in speed})), "", *scale,
               speed_table(speed, machine and machine["matmul_gflops_per_s"]), "",
               f"![speed](plots/{speed_png.name})", ""]
        same = same_work_table(speed)
        if same:
            md += ["### nar and dm-clrs on the same work", "", same, ""]
    else:
        md += ["No speed results yet: run `make bench-speed`.", ""]
    data_file = results / "bench_data.json"
    if data_file.exists():
        md += ["### Data generation", "", data_table(json.loads(data_file.read_text())), ""]
    out = docs / "results.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(md))
    written.insert(0, out)
    if readme is not None and agg:
        update_readme(Path(readme), [(suite, agg[suite], [c for c in cells if c["suite"] == suite])
                                     for suite in headline_suites(agg)], command)
        written.append(Path(readme))
    return written


def data_table(data: dict) -> str:
    """nar's trajectories/s next to dm-clrs's, from `make bench-data`'s JSON. The speed-up is like for like: nar
    in one process against dm-clrs's sampler (one process); nar on all cores is a column of its own, never a
    ratio."""
    lines = [f"Measured {data['date']} with `{data['command']}` ({data['machine']['cpus']} CPU cores). Speed-up: "
             "nar in one process ÷ dm-clrs's sampler in one process, on this machine.", "",
             "| algorithm | n | nar traj/s (1 process) | dm-clrs traj/s (1 process) | speed-up, 1 process each | "
             "nar traj/s (all cores, worker processes) |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in data["results"]:
        if "skipped" in r:
            lines.append(f"| {r['algorithm']} | {r['n']:,} | skipped: {r['skipped']} | | | |")
            continue
        ref, one = r.get("dmclrs_traj_per_s"), r["traj_per_s_1_core"]
        ref_text = "" if ref is None else f"{ref:,.2f}"
        speedup_text = f"{one / ref:.1f}x" if ref else ""
        lines.append(f"| {r['algorithm']} | {r['n']:,} | {one:,.0f} | {ref_text} | {speedup_text} | "
                     f"{r['traj_per_s']:,.0f} |")
    return "\n".join(lines)


def update_readme(readme: Path, suites: list[tuple[str, dict, list[dict]]], command: str) -> None:
    """Replace the README's results section (between the markers) with a table per (suite, aggregate, cells), in
    that order, and the first suite's score-vs-size plot."""
    text = readme.read_bytes().decode("utf-8")  # bytes: the rest of the file is kept exactly, line endings too
    if README_BEGIN not in text or README_END not in text.split(README_BEGIN, 1)[1]:
        raise ValueError(f"{readme} lacks the markers {README_BEGIN!r} ... {README_END!r} (in that order)")
    lines = [README_BEGIN, ""]
    for i, (suite, agg, cells) in enumerate(suites):
        intro = f"Suite `{suite}` ({_describe(cells)})"
        if i == 0:
            intro += (f"; regenerate with `{command}`. `n=… exact`: graph-level exact match, the % of test graphs "
                      f"whose every output is entirely right ({NO_EXACT}: not measured). Full tables, per-output "
                      "detail, training curves and speed: [docs/results.md](docs/results.md)")
        lines += [intro + ".", "", score_table(agg), "", table_legend(agg), ""]
        if i == 0:
            lines += [f"![OOD score vs graph size](docs/plots/{suite}_sizes.png)", ""]
    head, rest = text.split(README_BEGIN, 1)
    section = "\n".join(lines + [README_END])
    readme.write_bytes((head + section + rest.split(README_END, 1)[1]).encode("utf-8"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="nar.bench.report", description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default="results")
    p.add_argument("--docs", default="docs")
    p.add_argument("--readme", default="README.md", help="README to update ('' for none)")
    args = p.parse_args(argv)
    try:
        written = write_report(args.results, args.docs, args.readme or None)
    except ValueError as e:
        print(f"report: error: {e}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
