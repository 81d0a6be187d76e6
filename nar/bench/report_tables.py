"""The report's Markdown tables: accuracy per algorithm x processor beside the published figures (`score_table`,
`table_legend`), per output and hint (`detail_table`), speed (`speed_table`, `same_work_table` against dm-clrs)
and data generation (`data_table`), plus `describe`, the line saying where and how cells were measured."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from nar.bench.report_data import CHILD_POINTERS, base_processor, exact_of, mean_se
from nar.bench.suite import ALL_ALGORITHMS

SIZES = (16, 64, 256, 1024)  # the table's columns; other sizes appear in the plots only

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


def _fmt(value: tuple[float, float | None] | None) -> str:
    if value is None:
        return ""
    mean, se = value
    return f"{mean:.2f}" if se is None else f"{mean:.2f} ± {se:.2f}"


def describe(cells: list[dict]) -> str:
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
        for p in sorted({base_processor(p) for p in processors}):
            if (algorithm, p) in PUBLISHED:
                mean, se, source = PUBLISHED[(algorithm, p)]
                # a score at n = 64 only; no paper publishes an exact match: its columns stay blank
                cols = [x for n in SIZES for x in ("" if n != 64 else _fmt((mean, se)), "")]
                lines.append(f"| {algorithm} | {p} | published: {source} | | {PUBLISHED_STEPS:,} | "
                             + " | ".join(cols) + " |")
    return "\n".join(lines)


def standing_table(agg: dict) -> str:
    """Per algorithm, nar's best result at n = 64 over every suite (the (suite, processor) with the highest seed-mean
    node-level score, its budget and seeds named) beside the published figure of the same processor, where
    `PUBLISHED` has one; then, in a table of their own, the best published figure per algorithm with the processor
    it was measured on. A published figure sits only beside its own method; budgets still differ where the suite
    says so, so this is a standing, not a like-for-like comparison."""
    ours_lines = ["| algorithm | nar: best at n=64 | n=64 exact | n=1,024 | n=1,024 exact | processor | suite | "
                  "steps | seeds | published, same processor | source |",
                  "|---|---:|---:|---:|---:|---|---|---:|---:|---:|---|"]
    best_lines = ["| algorithm | published best at n=64 | measured on | source |", "|---|---:|---|---|"]
    for algorithm in ALL_ALGORITHMS:
        ours = [(row["sizes"][64][0], suite, p, row) for suite, rows in agg.items() for (a, p), row in rows.items()
                if a == algorithm and 64 in row["sizes"]]
        if not ours:
            continue
        _, suite, p, row = max(ours, key=lambda o: (o[0], o[1] == "full"))
        same = PUBLISHED.get((algorithm, base_processor(p)))
        ours_lines.append(f"| {algorithm} | {_fmt(row['sizes'][64])} | {_fmt_exact(row, 64)} | "
                          f"{_fmt(row['sizes'].get(1024))} | {_fmt_exact(row, 1024)} | {p} | {suite} | "
                          f"{'/'.join(f'{s:,}' for s in row['steps'])} | {len(row['seeds'])} | "
                          f"{_fmt(same[:2]) if same else ''} | {same[2] if same else ''} |")
        published = [(v[0], pp, v) for (a, pp), v in PUBLISHED.items() if a == algorithm]
        if published:
            _, pp, (mean, se, source) = max(published)
            best_lines.append(f"| {algorithm} | {_fmt((mean, se))} | {pp} | {source} |")
    return "\n".join(ours_lines) + "\n\nThe best published figure we have checked, per algorithm:\n\n" + \
        "\n".join(best_lines)


OFF = "_off"  # the result folder of a suite run without the training option its sibling folders add


def _per_seed(row: dict, n: int) -> dict[int, tuple[float, float | None]]:
    """{seed: (node-level %, exact match % or None)} at size n, for the cells of `row` that tested it."""
    out = {}
    for c in row["cells"]:
        r = c["scores"].get(str(n), {})
        if "score" in r:
            exact = exact_of(r)
            out[c["seed"]] = (100.0 * r["score"], None if exact is None else 100.0 * exact)
    return out


def paired_table(agg: dict, sizes=(16, 64), at: int = 64) -> str:
    """A training option against the same suite without it: for each result folder `<base>_<option>` with a sibling
    `<base>_off`, one row per (algorithm, processor) in both, over the seeds both tested at size `at`. It gives the
    means (node-level / exact match, %) without and with the option at each of `sizes`, then the paired difference
    at `at`: the mean ± standard error of the per-seed differences, and in how many seeds the option scored higher.
    '' when no folder has an `_off` sibling."""
    head = ("| option | algorithm | processor | seeds | " + " | ".join(f"off, n={n} | on, n={n}" for n in sizes)
            + f" | on - off at n={at}, node | on - off at n={at}, exact | seeds higher with it |\n"
            + "|---|---|---|---:|" + "---:|" * (2 * len(sizes) + 3))
    lines = []
    pairs = [(suite, suite[len(off_name) - len(OFF) + 1:], agg[off_name]) for off_name in sorted(agg)
             if off_name.endswith(OFF) for suite in sorted(agg)
             if suite != off_name and suite.startswith(off_name[:-len(OFF)] + "_")]  # the option may hold "_"
    for suite, option, off in pairs:
        for key in [k for k in _ordered_keys(agg[suite]) if k in off]:
            off_at, on_at = _per_seed(off[key], at), _per_seed(agg[suite][key], at)
            seeds = sorted(set(off_at) & set(on_at))
            if not seeds:
                continue
            cols = []
            for n in sizes:
                for row in (off[key], agg[suite][key]):
                    values = [v for s, v in _per_seed(row, n).items() if s in seeds]
                    node = _fmt(mean_se([v[0] for v in values])) if values else ""
                    exact = [v[1] for v in values if v[1] is not None]
                    cols.append(f"{node} / {_fmt(mean_se(exact))}" if exact and len(exact) == len(values) else node)
            d_node = [on_at[s][0] - off_at[s][0] for s in seeds]
            exact_pairs = [(on_at[s][1], off_at[s][1]) for s in seeds]
            d_exact = ([a - b for a, b in exact_pairs] if all(a is not None and b is not None for a, b in exact_pairs)
                       else None)
            higher = sum(d > 0 for d in d_node)
            lines.append(f"| {option} | {key[0]} | {key[1]} | {len(seeds)} | " + " | ".join(cols)
                         + f" | {_fmt(mean_se(d_node))} | {_fmt(mean_se(d_exact)) if d_exact else NO_EXACT} | "
                           f"{higher} of {len(seeds)} |")
    return head + "\n" + "\n".join(lines) if lines else ""


def _ordered_keys(rows: dict) -> list[tuple[str, str]]:
    """The (algorithm, processor) keys of a suite's aggregate in the report's algorithm order."""
    order = {a: i for i, a in enumerate(ALL_ALGORITHMS)}
    return sorted(rows, key=lambda k: (order.get(k[0], 99), k[1]))


def table_legend(agg: dict) -> str:
    """What the score table's signs mean, and where each published figure comes from."""
    shown = sorted({PUBLISHED[a, base_processor(p)][2] for a, p in agg if (a, base_processor(p)) in PUBLISHED})
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
    if any(p.endswith(CHILD_POINTERS) for _, p in agg):
        lines.append(f"{CHILD_POINTERS.strip()}: trained with each node pointer i -> p_i encoded on the edge p_i -> i "
                     "(`model.pointer_encoding = \"child\"`, every run before the option existed); CLRS, and nar's "
                     "default since, encodes it on the edge i -> p_i.")
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

    def skipped(r, mode):  # a mode the row did not measure (`--modes`) has no reason
        return f"skipped: {r[mode + '_skipped']}" if mode + "_skipped" in r else "not measured"

    for r in sorted(rows, key=lambda r: (r["processor"], r["algorithm"], r["num_nodes"], r["graph"])):
        t, e = r.get("train", {}), r.get("eval", {})
        train = cell(t, "steps_per_s", ".2f") if t else skipped(r, "train")
        evals = cell(e, "graphs_per_s", ".1f") if e else skipped(r, "eval")
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
    for r in sorted(same, key=lambda r: (r["processor"], r["algorithm"], r["num_nodes"], r["graph"])):
        lines.append(f"| {r['processor']} | {r['algorithm']} | {r['num_nodes']:,} | {r['graph']} "
                     f"({r['dm_clrs'].get('p', '?')}) | {r['batch_size']} | "
                     f"{pair(r.get('train', {}).get('steps_per_s'), ref(r, 'train_steps_per_s'), '.2f')} | "
                     f"{pair(r.get('eval', {}).get('graphs_per_s'), ref(r, 'eval_graphs_per_s'), '.1f')} |")
    def work(r):
        return r["algorithm"], r["num_nodes"], r["graph"]

    pgn = {work(r): r for r in same if r["processor"] == "pgn"}
    less = [(r, pgn[work(r)]) for r in rows if r["processor"] == "pgn_mask" and work(r) in pgn and "eval" in r]
    for r, dense in sorted(less, key=lambda x: (x[0]["num_nodes"], x[0]["graph"])):
        theirs = ref(dense, "eval_graphs_per_s")
        factor = f", {r['eval']['graphs_per_s'] / theirs:.1f}x its rate" if theirs else ""
        lines.append(f"\nLess work, not like for like: nar `pgn_mask` (messages and pointers on the input graph's "
                     f"edges only; dm-clrs has no sparse path) predicts {r['algorithm']} at n = {r['num_nodes']:,} "
                     f"({r['graph']}) at {r['eval']['graphs_per_s']:.1f} graphs/s, against dm-clrs's dense PGN at "
                     f"{_num(theirs, '.1f')} graphs/s on the same graphs{factor}.")
    return "\n".join(lines)


def _num(x, f: str) -> str:
    return "–" if x is None else format(x, f)


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
