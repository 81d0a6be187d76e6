"""The report's PNG plots (matplotlib, the `plot` extra, imported only when a plot is drawn): score vs graph size
(`plot_sizes`), training loss (`plot_training`), G-ForgetNet's gate (`plot_gate`) and speed (`plot_speed`)."""

from __future__ import annotations

import math
from pathlib import Path

from nar.bench.report_data import base_processor
from nar.bench.report_tables import PUBLISHED
from nar.bench.suite import ALL_ALGORITHMS


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
            if (a, base_processor(p)) in PUBLISHED:
                ax.plot([64], [PUBLISHED[(a, base_processor(p))][0]], marker="*", ms=11, mfc="none", color=colours[p],
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
