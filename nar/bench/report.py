"""`make report`: tables (`docs/results.md`) and PNG plots (`docs/plots/`) from the result files alone.

The report is a pure function of the files under `results/`: accuracy cells written by `nar bench run`
(`results/<suite>/<cell>.json`) and speed rows written by `nar bench suite-speed` (`results/bench_speed/`). Scores
are averaged over seeds (mean ± standard error); the published figures sit beside ours, marked as such. The
README's results section (between its `results:begin` / `results:end` markers) is regenerated too.
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

# Published OOD micro-F1 (%) at n = 64: (mean, standard error or None, source). Ibarz et al. 2022, Table 2 holds
# the CLRS-30 baselines (MPNN and PGN from Veličković et al. 2022) and Triplet-GMPNN; G-ForgetNet's BFS is from
# Bohde et al. 2024. Values marked † are recalled in ../shared/reference/clrs.md §5 and checked only against the
# paper's category averages, not read off the table.
IBARZ = "Ibarz et al. 2022, Table 2"
PUBLISHED = {
    ("bfs", "mpnn"): (99.89, 0.05, IBARZ), ("bfs", "pgn"): (99.63, None, IBARZ + " †"),
    ("bfs", "triplet_gmpnn"): (99.73, 0.04, IBARZ), ("bfs", "g_forgetnet"): (99.96, None, "Bohde et al. 2024"),
    ("dfs", "mpnn"): (6.54, 0.51, IBARZ + " †"), ("dfs", "pgn"): (8.71, None, IBARZ + " †"),
    ("dfs", "triplet_gmpnn"): (47.79, 4.19, IBARZ + " †"),
    ("bellman_ford", "mpnn"): (92.01, 0.28, IBARZ), ("bellman_ford", "pgn"): (92.99, None, IBARZ + " †"),
    ("bellman_ford", "triplet_gmpnn"): (97.39, 0.19, IBARZ),
    ("insertion_sort", "mpnn"): (19.81, None, IBARZ + " †"), ("insertion_sort", "pgn"): (44.37, None, IBARZ + " †"),
    ("insertion_sort", "triplet_gmpnn"): (78.14, 4.64, IBARZ + " †"),
    ("bubble_sort", "mpnn"): (5.27, None, IBARZ + " †"), ("bubble_sort", "pgn"): (6.01, None, IBARZ + " †"),
    ("bubble_sort", "triplet_gmpnn"): (67.68, 5.50, IBARZ + " †"),
    ("heapsort", "mpnn"): (10.94, None, IBARZ + " †"), ("heapsort", "pgn"): (5.27, None, IBARZ + " †"),
    ("heapsort", "triplet_gmpnn"): (31.04, 5.82, IBARZ),
    ("quicksort", "mpnn"): (11.30, None, IBARZ + " †"), ("quicksort", "pgn"): (6.17, None, IBARZ + " †"),
    ("quicksort", "triplet_gmpnn"): (64.64, 5.12, IBARZ + " †"),
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
            cells.append({**data, "suite": path.parent.name})
    order = {a: i for i, a in enumerate(ALL_ALGORITHMS)}
    return sorted(cells, key=lambda c: (c["suite"], order.get(c["algorithm"], 99), c["processor"], c["seed"]))


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


def aggregate(cells: list[dict]) -> dict:
    """{suite: {(algorithm, processor): {'sizes': {n: (mean, se)}, 'seeds': [...], 'steps': s, 'cells': [...]}}}
    with scores in %; a size a cell skipped (too big) is left out of that cell's mean."""
    groups: dict = defaultdict(lambda: defaultdict(list))
    for c in cells:
        groups[c["suite"]][(c["algorithm"], c["processor"])].append(c)
    out = {}
    for suite, by_cell in groups.items():
        out[suite] = {}
        for key, members in by_cell.items():
            per_size = defaultdict(list)
            for c in members:
                for n, r in c["scores"].items():
                    if "score" in r:
                        per_size[int(n)].append(100.0 * r["score"])
            out[suite][key] = {"sizes": {n: mean_se(v) for n, v in sorted(per_size.items())},
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
    return (f"{len(cells)} cells measured {dates[0]}" + (f" to {dates[-1]}" if dates[-1] != dates[0] else "")
            + f" on {', '.join(devices)}, commit(s) {', '.join(commits)}; command(s): "
            + "; ".join(f"`{c}`" for c in commands))


def score_table(agg: dict) -> str:
    """One row per algorithm x processor (ours), the published rows after each algorithm's."""
    head = ("| algorithm | processor | source | seeds | steps | " + " | ".join(f"n={n:,}" for n in SIZES) + " |\n"
            + "|---|---|---|---:|---:|" + "---:|" * len(SIZES))
    lines = [head]
    algorithms = [a for a in ALL_ALGORITHMS if any(k[0] == a for k in agg)]
    for algorithm in algorithms:
        processors = sorted(p for a, p in agg if a == algorithm)
        for p in processors:
            row = agg[(algorithm, p)]
            steps = "/".join(f"{s:,}" for s in row["steps"])
            lines.append(f"| {algorithm} | {p} | ours | {len(row['seeds'])} | {steps} | "
                         + " | ".join(_fmt(row["sizes"].get(n)) for n in SIZES) + " |")
        for p in processors:
            if (algorithm, p) in PUBLISHED:
                mean, se, source = PUBLISHED[(algorithm, p)]
                cols = ["" if n != 64 else _fmt((mean, se)) for n in SIZES]
                lines.append(f"| {algorithm} | {p} | published: {source} | | {PUBLISHED_STEPS:,} | "
                             + " | ".join(cols) + " |")
    return "\n".join(lines)


def detail_table(agg: dict) -> str:
    """Per output and per hint, the seed-mean at each size tested (the score above is their mean)."""
    lines = ["| algorithm | processor | n | score | per output | per hint |", "|---|---|---:|---:|---|---|"]
    for (algorithm, p), row in agg.items():
        sizes = sorted({int(n) for c in row["cells"] for n, r in c["scores"].items() if "score" in r})
        for n in sizes:
            parts = defaultdict(list)
            for c in row["cells"]:
                for k, v in c["scores"].get(str(n), {}).items():
                    if k.startswith(("output/", "hint/")):
                        parts[k].append(100.0 * v)
            show = lambda kind: ", ".join(f"{k.split('/', 1)[1]} {np.mean(v):.1f}"  # noqa: E731
                                          for k, v in sorted(parts.items()) if k.startswith(kind))
            lines.append(f"| {algorithm} | {p} | {n:,} | {_fmt(row['sizes'].get(n))} | {show('output/')} | "
                         f"{show('hint/')} |")
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
    """Score vs graph size (log x) per algorithm, a line per processor; published n=64 figures as stars."""
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
            if (a, p) in PUBLISHED:
                ax.plot([64], [PUBLISHED[(a, p)][0]], marker="*", ms=11, mfc="none", color=colours[p],
                        linestyle="none", label="published (n=64), same colour")
        _size_axis(ax, sorted({n for (a, _), row in agg.items() if a == algorithm for n in row["sizes"]}))
        ax.set_title(algorithm)
        ax.set_ylabel("micro-F1 score (%)")
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
        "parameters; mean ± standard error over seeds. Published rows are the papers' numbers, at n = 64 after "
        f"{PUBLISHED_STEPS:,} steps; † marks values our reference notes recall rather than read off the table.",
        "",
    ]
    for suite in sorted(agg, key=lambda s: (s != "full", s)):
        suite_cells = [c for c in cells if c["suite"] == suite]
        size_png = plot_sizes(agg[suite], suite, docs / "plots" / f"{suite}_sizes.png")
        train_png = plot_training(cells, suite, docs / "plots" / f"{suite}_training.png")
        written += [size_png, train_png]
        md += [f"## Suite `{suite}`", "", _describe(suite_cells), "", score_table(agg[suite]), "",
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
    """nar's trajectories/s next to dm-clrs's, from `make bench-data`'s JSON."""
    lines = [f"Measured {data['date']} with `{data['command']}` ({data['machine']['cpus']} CPU cores).", "",
             "| algorithm | n | nar traj/s (all cores) | nar traj/s (1 core) | dm-clrs traj/s | speed-up |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in data["results"]:
        if "skipped" in r:
            lines.append(f"| {r['algorithm']} | {r['n']:,} | skipped: {r['skipped']} | | | |")
            continue
        ref, speedup = r.get("dmclrs_traj_per_s"), r.get("speedup")
        ref_text = "" if ref is None else f"{ref:,.2f}"
        speedup_text = "" if not speedup else f"{speedup:.1f}x"
        lines.append(f"| {r['algorithm']} | {r['n']:,} | {r['traj_per_s']:,.0f} | {r['traj_per_s_1_core']:,.0f} | "
                     f"{ref_text} | {speedup_text} |")
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
            intro += (f"; regenerate with `{command}`. Full tables, per-output detail, training curves and speed: "
                      "[docs/results.md](docs/results.md)")
        lines += [intro + ".", "", score_table(agg), ""]
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
