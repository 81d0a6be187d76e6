"""`make report` (nar.bench.report) against an independent truth.

A small fixture of result files (the layout `nar.bench.suite.run_cell` and `nar.bench.speed_suite` write) is built
in a temporary folder; the expected numbers are computed here from the fixture's own values with numpy, never with
the report's helpers, and the written markdown is parsed back (tables split on '|') to check each number sits in
its row and column. The report is run once per fixture (module-scoped: plotting is the slow part).
"""

from __future__ import annotations

import json
import math
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from nar.bench import report
from nar.bench.suite import RESULT_FORMAT

SKIP = "skip"  # a size the cell could not test (too big for the machine)
SKIP_REASON = "n=1024 needs 41.2 GiB, this machine has 16.0 GiB"
COLUMNS = ["n=16", "n=64", "n=256", "n=1,024"]
EXACT_COLUMNS = [f"{c} exact" for c in COLUMNS]  # the graph-level exact match beside each size's score
SCORE_HEAD = ["algorithm", "processor", "source", "seeds", "steps", *(c for pair in zip(COLUMNS, EXACT_COLUMNS)
                                                                      for c in pair)]
DETAIL_HEAD = ["algorithm", "processor", "n", "score", "exact", "per output", "per hint"]
SPEED_HEAD = ["processor", "algorithm", "n", "graph", "batch", "train steps/s", "train GFLOP/step", "train GFLOP/s",
              "train compile s", "eval graphs/s", "eval GFLOP/s", "eval compile s", "peak memory MiB", "dm-clrs"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# The fixture: {suite: {(algorithm, processor): {seed: {n: score (fraction) or SKIP}}}}.
QUICK = {
    ("bfs", "mpnn"): {0: {16: 0.99, 64: 0.91, 256: 0.70, 1024: SKIP},
                      1: {16: 0.97, 64: 0.85, 256: 0.60, 1024: SKIP},
                      2: {16: 0.98, 64: 0.88, 256: SKIP, 1024: SKIP}},
    ("bfs", "g_forgetnet"): {0: {16: 0.995, 64: 0.95, 256: 0.83, 1024: 0.52}},
    ("dfs", "tropical"): {3: {16: 0.40, 64: 0.2125, 256: SKIP}},
}
FULL = {("bfs", "mpnn"): {0: {16: 0.999, 64: 0.975, 256: 0.93, 1024: 0.81},
                          1: {16: 0.997, 64: 0.965, 256: 0.91, 1024: 0.77}}}
# Graph-level exact match per cell and size; a cell absent here wrote its file before it was measured (no 'exact'
# key), NaN is a model without a non-scalar output. quick bfs/mpnn seed 2 is such an old file beside two new ones.
EXACT = {
    "quick": {("bfs", "mpnn"): {0: {16: 0.75, 64: 0.25, 256: 0.0}, 1: {16: 0.5, 64: 0.125, 256: 0.0}},
              ("dfs", "tropical"): {3: {16: math.nan, 64: math.nan}}},
    "full": {("bfs", "mpnn"): {0: {16: 0.9, 64: 0.6, 256: 0.3, 1024: 0.05},
                               1: {16: 0.95, 64: 0.5, 256: 0.2, 1024: 0.0}}},
}
STEPS = {"quick": 1000, "full": 10000, "eb_off": 300, "eb_relic": 300, "eb_grok_ma": 300}
GATED = {("bfs", "g_forgetnet")}  # cells whose training curve has a gate series
HINTS = {"bfs": ("reach_h", "pi_h"), "dfs": ("pi_h", "color", "d")}


def hint_value(algorithm: str, hint: str, seed: int, n: int) -> float:
    """A distinct, known value per (hint, seed, size)."""
    return round(0.5 + 0.1 * HINTS[algorithm].index(hint) + 0.03 * seed - 0.0001 * n, 4)


def size_result(algorithm: str, seed: int, n: int, score, exact: float | None = None) -> dict:
    if score == SKIP:
        return {"skipped": SKIP_REASON}
    out = {"score": score, "output/pi": score}  # BFS and DFS have one output, so the score is its score
    if exact is not None:
        out.update({"exact": exact, "exact/pi": exact})
    out.update({f"hint/{h}": hint_value(algorithm, h, seed, n) for h in HINTS[algorithm]})
    return {**out, "graphs": 8, "family": "er", "data_hash": f"{seed:04d}{n:012d}",
            "data_seconds": 0.5, "eval_seconds": 1.25}


def write_cell(results: Path, suite: str, algorithm: str, processor: str, seed: int, sizes: dict,
               gate: bool = False, exact: dict | None = None, pointer_encoding: str | None = "clrs") -> Path:
    """One accuracy result file as `run_cell` writes it (only the keys the report reads, plus realistic ones)."""
    steps = STEPS[suite]
    curve = {"loss": [[0, 3.2], [steps // 2, 0.8], [steps, 0.35 + 0.01 * seed]],
             "val_score": [[steps // 2, 0.8], [steps, 0.9]]}
    if gate:
        curve["gate"] = [[0, 0.5], [steps // 2, 0.62], [steps, 0.71]]
    result = {
        "format": RESULT_FORMAT, "suite": suite, "algorithm": algorithm, "processor": processor, "seed": seed,
        "sizes": list(sizes), "families": {str(n): "er" for n in sizes},
        "config": {"model": {} if pointer_encoding is None else {"pointer_encoding": pointer_encoding}},
        "scores": {str(n): size_result(algorithm, seed, n, s, (exact or {}).get(n)) for n, s in sizes.items()},
        "training": {"steps": steps, "best_step": steps, "best_val_score": 0.9, "resumed_from": None,
                     "compiles": 2, "curve": curve},
        "wall_seconds": {"train": 12.5, "eval": 3.0},
        "device": {"platform": "cpu", "kind": "cpu", "count": 1, "cpu": "x86_64", "cores": 2},
        "versions": {"nar": "0.1.0", "jax": "0.4.35"},
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "date": f"2026-11-{20 + seed:02d}T10:00:00+00:00",
        "command": f"nar bench run {suite}",
    }
    path = results / suite / f"{algorithm}_{processor}_s{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    return path


def write_suite(results: Path, suite: str, table: dict) -> int:
    count = 0
    for (algorithm, processor), seeds in table.items():
        for seed, sizes in seeds.items():
            write_cell(results, suite, algorithm, processor, seed, sizes, gate=(algorithm, processor) in GATED,
                       exact=EXACT.get(suite, {}).get((algorithm, processor), {}).get(seed))
            count += 1
    return count


SPEED_ROWS = {
    "bfs_mpnn_n64": {
        "algorithm": "bfs", "processor": "mpnn", "num_nodes": 64, "batch_size": 32, "graph": "er",
        "train": {"steps_per_s": 12.346, "flops_per_step": 3.2e9, "compile_s": 4.56, "gflops_per_s": 39.5072},
        "eval": {"graphs_per_s": 789.04, "compile_s": 2.34, "gflops_per_s": 80.0},
        "message_graph": "dense", "padded": 64, "edges_per_graph": 1024, "hint_steps_max": 7,
        "environment": {"device": {"platform": "cpu", "kind": "cpu", "count": 1},
                        "versions": {"jax": "0.4.35"}, "commit": "fedcba9876543210fedcba98"},
        "train_command": "nar bench speed --mode train", "eval_command": "nar bench speed --mode eval",
        "peak_memory_bytes": 512 * 2**20, "command": "nar bench suite-speed --processors mpnn,pgn",
        # a dm-clrs row that failed keeps its reason: shown in the table, left out of the plot
        "dm_clrs": {"train_steps_per_s": 2.3, "eval_graphs_per_s": "did not finish within 150 s", "version": "2.0.3"},
    },
    "bfs_pgn_n1024": {
        "algorithm": "bfs", "processor": "pgn", "num_nodes": 1024, "batch_size": 2, "graph": "sparse_er",
        "train_skipped": "did not finish within 300 s",
        "eval": {"graphs_per_s": 5.5, "compile_s": 1.04, "gflops_per_s": 1.2},
        "message_graph": "sparse", "padded": 1024, "edges_per_graph": 5120, "hint_steps_max": 12,
        "environment": {"device": {"platform": "cpu", "kind": "cpu", "count": 1},
                        "versions": {"jax": "0.4.35"}, "commit": "fedcba9876543210fedcba98"},
        "eval_command": "nar bench speed --mode eval",
        "peak_memory_bytes": 2**30, "command": "nar bench suite-speed --processors mpnn,pgn",
    },
}
# What the speed table must show for those rows, worked out by hand.
SPEED_EXPECTED = {  # GFLOP/s with its share of MACHINE's 160 GFLOP/s matmul rate
    "mpnn": ["mpnn", "bfs", "64", "er", "32", "12.35", "3.20", "39.5 (25%)", "4.6", "789.0", "80.0 (50%)", "2.3",
             "512", "train steps/s 2.3; eval graphs/s did not finish within 150 s"],
    "pgn": ["pgn", "bfs", "1,024", "sparse_er", "2", "skipped: did not finish within 300 s", "–", "–", "–", "5.5",
            "1.2 (1%)", "1.0", "1,024", ""],
}
MACHINE = {"matmul_gflops_per_s": 160.0, "matmul": "2,048 x 2,048 jnp.dot, best of 5", "date": "2026-12-01",
           "environment": SPEED_ROWS["bfs_mpnn_n64"]["environment"], "command": "nar bench suite-speed"}

BENCH_DATA = {
    "benchmark": "data generation, trajectories/s (sample + execute + pack)",
    "command": "python -m nar.bench.data --out results/bench_data.json", "nar_version": "0.1.0",
    "git_commit": "689aa39293bfc5922ae210f614079bbb86e199cb", "numpy": "2.4.6", "python": "3.11.7",
    "machine": {"cpus": 2, "platform": "Linux", "processor": ""}, "date": "2026-11-23",
    "results": [
        {"algorithm": "bfs", "n": 64, "samples": 2048, "traj_per_s": 5981.4, "workers": 2,
         "traj_per_s_1_core": 4195.8, "dmclrs_traj_per_s": 148.16, "dmclrs_source": "measured", "speedup": 40.4,
         "dmclrs_anchor_traj_per_s": 381, "speedup_vs_anchor": 15.7},
        {"algorithm": "dfs", "n": 4096, "skipped": "out of memory"},
    ],
}

README_HEAD = "# project — héllo\n\nSome text with trailing spaces   \n\n"
README_TAIL = "\n\n## After the results\n\nmore text ✓ and no final newline"
README = (README_HEAD + report.README_BEGIN + "\nSTALE results table\n| x | y |\n" + report.README_END
          + README_TAIL)


# ----------------------------------------------------------------------------------------------------------------
# Parsing the markdown back


def section(md: str, heading: str) -> str:
    """The text under a '## ' heading, up to the next '## ' heading."""
    lines = md.split("\n")
    starts = [i for i, line in enumerate(lines) if line == heading]
    assert len(starts) == 1, f"{heading!r} appears {len(starts)} times"
    end = next((j for j in range(starts[0] + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
    return "\n".join(lines[starts[0] + 1:end])


def cells_of(line: str) -> list[str]:
    assert line.startswith("|") and line.endswith("|"), line
    return [c.strip() for c in line.split("|")[1:-1]]


def table(text: str, head: list[str]) -> list[dict]:
    """The rows (as {column: text}) of the one markdown table in `text` whose header is `head`."""
    lines = text.split("\n")
    starts = [i for i, line in enumerate(lines) if line.startswith("|") and cells_of(line) == head]
    assert len(starts) == 1, f"table {head} appears {len(starts)} times"
    i = starts[0]
    assert re.fullmatch(r"\|(-*:?\|)+", lines[i + 1].replace("---", "-")), lines[i + 1]
    rows = []
    for line in lines[i + 2:]:
        if not line.startswith("|"):
            break
        values = cells_of(line)
        assert len(values) == len(head), f"row {line!r} has {len(values)} columns, the header {len(head)}"
        rows.append(dict(zip(head, values)))
    return rows


def only(rows: list[dict], **match) -> dict:
    found = [r for r in rows if all(r[k] == v for k, v in match.items())]
    assert len(found) == 1, f"{len(found)} rows match {match}"
    return found[0]


def ours(rows, algorithm, processor):
    return only(rows, algorithm=algorithm, processor=processor, source="ours")


def expected(fixture: dict, algorithm: str, processor: str, n: int) -> str:
    """Mean ± standard error (%) over the seeds that tested size n, computed independently; '' when none did."""
    values = [100 * s[n] for s in fixture[(algorithm, processor)].values() if s.get(n, SKIP) != SKIP]
    if not values:
        return ""
    v = np.array(values)
    if len(v) == 1:
        return f"{v.mean():.2f}"
    return f"{v.mean():.2f} ± {v.std(ddof=1) / np.sqrt(len(v)):.2f}"


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


# ----------------------------------------------------------------------------------------------------------------
# Fixtures: each report is written once per module


class Run:
    def __init__(self, root: Path):
        self.root, self.results, self.docs, self.readme = root, root / "results", root / "docs", root / "README.md"

    def go(self, docs: Path | None = None, readme: Path | None = None):
        self.written = report.write_report(self.results, docs or self.docs, readme or self.readme)
        self.md = ((docs or self.docs) / "results.md").read_text()
        return self


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """Two suites, a gated G-ForgetNet cell, speed rows, data-generation figures and a non-result JSON."""
    run = Run(tmp_path_factory.mktemp("report_full"))
    run.n_cells = write_suite(run.results, "quick", QUICK) + write_suite(run.results, "full", FULL)
    (run.results / "quick" / "notes.json").write_text(json.dumps({"foo": 1}))  # not a result: ignored
    (run.results / "quick" / "other_format.json").write_text(json.dumps({"format": 999, "scores": {}}))
    speed = run.results / report.SPEED_DIR
    speed.mkdir(parents=True)
    for name, row in SPEED_ROWS.items():
        (speed / f"{name}.json").write_text(json.dumps(row, indent=1))
    (speed / report.MACHINE_FILE).write_text(json.dumps(MACHINE))  # not a row
    (run.results / "bench_data.json").write_text(json.dumps(BENCH_DATA, indent=1))
    run.readme.write_text(README)
    return run.go()


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """One suite, one cell with no gate curve, no speed rows, no data-generation file."""
    run = Run(tmp_path_factory.mktemp("report_bare"))
    write_cell(run.results, "quick", "dfs", "tropical", 3, QUICK[("dfs", "tropical")][3])
    run.readme.write_text(README)
    return run.go()


# ----------------------------------------------------------------------------------------------------------------
# 1. Scores: mean ± standard error in the right row and column


def test_score_table_columns_and_values(full):
    rows = table(section(full.md, "## Suite `quick`"), SCORE_HEAD)  # also checks the columns and their order
    row = ours(rows, "bfs", "mpnn")
    want = {c: expected(QUICK, "bfs", "mpnn", n) for c, n in zip(COLUMNS, report.SIZES)}
    v = 100 * np.array([0.91, 0.85, 0.88])  # n=64 of the three seeds, spelled out
    assert want["n=64"] == f"{v.mean():.2f} ± {v.std(ddof=1) / math.sqrt(3):.2f}" == "88.00 ± 1.73"
    assert {c: row[c] for c in COLUMNS} == want
    assert [c for c in COLUMNS if row[c] == want["n=64"]] == ["n=64"]
    assert row["seeds"] == "3" and row["steps"] == "1,000"
    # n=256: seed 2 skipped it, so the mean is over seeds 0 and 1 only (a skip is not a zero)
    assert row["n=256"] == "65.00 ± 5.00"
    assert row["n=1,024"] == ""  # every seed skipped it: blank


def test_single_seed_shows_a_bare_mean(full):
    rows = table(section(full.md, "## Suite `quick`"), SCORE_HEAD)
    row = ours(rows, "dfs", "tropical")
    assert row["seeds"] == "1"
    assert {c: row[c] for c in COLUMNS} == {"n=16": "40.00", "n=64": "21.25", "n=256": "", "n=1,024": ""}
    assert "±" not in "".join(row.values())
    assert ours(rows, "bfs", "g_forgetnet")["n=1,024"] == "52.00"


def test_rows_follow_algorithm_order(full):
    rows = table(section(full.md, "## Suite `quick`"), SCORE_HEAD)
    keys = [(r["algorithm"], r["processor"]) for r in rows if r["source"] == "ours"]
    assert keys == [("bfs", "g_forgetnet"), ("bfs", "mpnn"), ("dfs", "tropical")]


def expected_exact(suite: str, algorithm: str, processor: str, n: int) -> str:
    """The exact-match cell, computed independently: mean ± standard error (%) over the cells whose file has a
    finite 'exact' at size n, '(k of m seeds)' when fewer than the m cells with a score; '—' when none; ''
    when no cell tested n."""
    fixture = {"quick": QUICK, "full": FULL}[suite][(algorithm, processor)]
    scored = [s for s, sizes in fixture.items() if sizes.get(n, SKIP) != SKIP]
    values = [EXACT[suite].get((algorithm, processor), {}).get(s, {}).get(n, math.nan) for s in scored]
    values = 100 * np.array([v for v in values if not math.isnan(v)])
    if not scored:
        return ""
    if not len(values):
        return "—"
    text = f"{values.mean():.2f}" if len(values) == 1 else \
        f"{values.mean():.2f} ± {values.std(ddof=1) / np.sqrt(len(values)):.2f}"
    return text if len(values) == len(scored) else f"{text} ({len(values)} of {len(scored)} seeds)"


def test_exact_match_beside_each_size(full):
    for suite in ("quick", "full"):
        rows = table(section(full.md, f"## Suite `{suite}`"), SCORE_HEAD)
        for algorithm, processor in {"quick": QUICK, "full": FULL}[suite]:
            row = ours(rows, algorithm, processor)
            assert {c: row[c] for c in EXACT_COLUMNS} == {
                c: expected_exact(suite, algorithm, processor, n) for c, n in zip(EXACT_COLUMNS, report.SIZES)}
    # spelled out: full bfs/mpnn at n=64, exact 60% and 50%: 55.00 ± 5.00 beside the score 97.00 ± 0.50
    f = ours(table(section(full.md, "## Suite `full`"), SCORE_HEAD), "bfs", "mpnn")
    assert (f["n=64"], f["n=64 exact"]) == ("97.00 ± 0.50", "55.00 ± 5.00")
    assert f["n=1,024 exact"] == "2.50 ± 2.50"
    q = table(section(full.md, "## Suite `quick`"), SCORE_HEAD)
    # seed 2's file predates the exact match: the mean is over seeds 0 and 1, and says so
    assert ours(q, "bfs", "mpnn")["n=16 exact"] == "62.50 ± 12.50 (2 of 3 seeds)"
    assert ours(q, "bfs", "mpnn")["n=256 exact"] == "0.00 ± 0.00"  # seed 2 skipped n=256: all that tested it
    assert ours(q, "bfs", "mpnn")["n=1,024 exact"] == ""  # untested: blank, like the score
    # old files and NaN (no non-scalar output) show '—', never a number
    assert [ours(q, "bfs", "g_forgetnet")[c] for c in EXACT_COLUMNS] == ["—"] * 4
    assert [ours(q, "dfs", "tropical")[c] for c in EXACT_COLUMNS] == ["—", "—", "", ""]
    assert "exact" in full.md.split("## Suite")[0]  # the introduction defines the column


def test_exact_match_in_detail_table_and_readme(full):
    rows = table(section(full.md, "## Suite `quick`"), DETAIL_HEAD)
    for r in rows:
        key, n = (r["algorithm"], r["processor"]), int(r["n"].replace(",", ""))
        assert r["exact"] == expected_exact("quick", *key, n)
    assert only(rows, algorithm="bfs", processor="mpnn", n="64")["exact"] == "18.75 ± 6.25 (2 of 3 seeds)"
    text = full.readme.read_text()
    headline = text.split("Suite `quick`")[0]
    assert ours(table(headline, SCORE_HEAD), "bfs", "mpnn")["n=64 exact"] == "55.00 ± 5.00"
    assert "exact match" in headline


def test_size_plot_draws_exact_match_lines(tmp_path):
    """The exact-match series adds (dashed) lines in the processor's colour; without it the plot has fewer."""
    import matplotlib.colors
    import matplotlib.image

    from nar.processors import PROCESSORS

    write_suite(tmp_path / "results", "full", FULL)
    agg = report.aggregate(report.load_cells(tmp_path / "results"))["full"]
    assert agg[("bfs", "mpnn")]["exact"][64] == pytest.approx((55.0, 5.0))
    without = {k: {**v, "exact": {}} for k, v in agg.items()}
    colour = np.array(matplotlib.colors.to_rgb(f"C{list(PROCESSORS).index('mpnn') % 10}"))

    def pixels(a, name):
        image = matplotlib.image.imread(report.plot_sizes(a, "full", tmp_path / name))[..., :3]
        return (np.abs(image - colour).max(axis=-1) < 0.02).sum()

    assert pixels(agg, "with.png") > pixels(without, "without.png") + 50


# ----------------------------------------------------------------------------------------------------------------
# 2. Published rows


def test_published_row_beside_ours(full):
    rows = table(section(full.md, "## Suite `quick`"), SCORE_HEAD)
    published = [r for r in rows if r["source"].startswith("published")]
    pub = only(published, algorithm="bfs", processor="mpnn")
    assert "Ibarz et al. 2022" in pub["source"]
    assert {c: pub[c] for c in COLUMNS} == {"n=16": "", "n=64": "99.89 ± 0.05", "n=256": "", "n=1,024": ""}
    assert all(pub[c] == "" for c in EXACT_COLUMNS)  # no paper publishes an exact match: blank, never invented
    assert pub["steps"] == "10,000" and pub["seeds"] == ""
    # only for what we ran (bfs/triplet_gmpnn ... are published but not in the results), and only figures checked
    # against their paper: G-ForgetNet's BFS 99.96 (a secondary quotation, no table to name) is not shown
    assert {(r["algorithm"], r["processor"]) for r in published} == {("bfs", "mpnn")}
    assert "99.63" not in full.md and "6.54" not in full.md and "99.96" not in full.md
    # the legend under the table names the paper and table, and says what ± is
    legend = section(full.md, "## Suite `quick`").split("\n\n")
    legend = next(p for p in legend if p.startswith("Scores:"))
    assert "Ibarz et al. 2022" in legend and "Table 2" in legend and "standard error" in legend
    # and a published figure never lands in our row
    assert "99.89" not in "".join(ours(rows, "bfs", "mpnn").values())
    # each algorithm's published rows come after its own rows, before the next algorithm's
    order = [(r["algorithm"], r["source"].startswith("published")) for r in rows]
    assert order == [("bfs", False), ("bfs", False), ("bfs", True), ("dfs", False)]


# ----------------------------------------------------------------------------------------------------------------
# 3. Suites


def test_suites_in_separate_sections(full):
    headings = [line for line in full.md.split("\n") if line.startswith("## Suite")]
    assert headings == ["## Suite `full`", "## Suite `quick`"]  # the full protocol first
    full_rows = table(section(full.md, "## Suite `full`"), SCORE_HEAD)
    quick_rows = table(section(full.md, "## Suite `quick`"), SCORE_HEAD)
    assert [(r["algorithm"], r["processor"], r["source"]) for r in full_rows] == [
        ("bfs", "mpnn", "ours"), ("bfs", "mpnn", "published: Ibarz et al. 2022, Table 2")]
    f = ours(full_rows, "bfs", "mpnn")
    assert {c: f[c] for c in COLUMNS} == {c: expected(FULL, "bfs", "mpnn", n) for c, n in zip(COLUMNS, report.SIZES)}
    assert f["n=64"] == "97.00 ± 0.50" and f["seeds"] == "2" and f["steps"] == "10,000"
    assert ours(quick_rows, "bfs", "mpnn")["n=64"] == "88.00 ± 1.73"
    # each section describes its own cells
    assert section(full.md, "## Suite `full`").strip().startswith("2 cells measured 2026-11-20 to 2026-11-21")
    assert section(full.md, "## Suite `quick`").strip().startswith("5 cells measured 2026-11-20 to 2026-11-23")


def test_a_suite_run_into_another_folder_is_reported_apart(tmp_path):
    """`--results results/full_200` (another budget of suite `full`) is its own section, never pooled with `full`."""
    write_suite(tmp_path, "full", FULL)
    moved = write_cell(tmp_path, "full", "bfs", "mpnn", 7, {16: 0.5, 64: 0.25})
    target = tmp_path / "full_200" / moved.name
    target.parent.mkdir()
    moved.rename(target)
    agg = report.aggregate(report.load_cells(tmp_path))
    assert set(agg) == {"full", "full_200"}
    assert agg["full_200"][("bfs", "mpnn")]["sizes"][64] == (25.0, None)
    assert 7 not in agg["full"][("bfs", "mpnn")]["seeds"]


# A training option against the same suite without it: dfs ran seed 3 only without the option and seed 4 only with
# it, so its pairs are seeds 1 and 2.
PAIRED_OFF = {("dfs", "mpnn"): {1: {16: 0.90, 64: 0.20}, 2: {16: 0.80, 64: 0.30}, 3: {16: 0.85, 64: 0.25}},
              ("bfs", "mpnn"): {1: {16: 0.99, 64: 0.90}}}  # bfs: paired with the option "grok_ma" only
PAIRED_ON = {("dfs", "mpnn"): {1: {16: 0.92, 64: 0.35}, 2: {16: 0.81, 64: 0.20}, 4: {16: 0.5, 64: 0.5}}}
PAIRED_EXACT = {"eb_off": {1: {16: 0.5, 64: 0.0}, 2: {16: 0.25, 64: 0.0}, 3: {16: 0.5, 64: 0.0}},
                "eb_relic": {1: {16: 0.75, 64: 0.125}, 2: {16: 0.25, 64: 0.0}, 4: {16: 0.0, 64: 0.0}}}
PAIRED_HEAD = ["option", "algorithm", "processor", "seeds", "off, n=16", "on, n=16", "off, n=64", "on, n=64",
               "on - off at n=64, node", "on - off at n=64, exact", "seeds higher with it"]


def _mean_se(values) -> str:
    v = np.asarray(values, float)
    return f"{v.mean():.2f} ± {v.std(ddof=1) / np.sqrt(len(v)):.2f}"


def test_paired_table_compares_an_option_with_its_off_run_seed_by_seed(tmp_path):
    for suite, fixture in (("eb_off", PAIRED_OFF), ("eb_relic", PAIRED_ON)):
        for (algorithm, processor), seeds in fixture.items():
            for seed, sizes in seeds.items():
                write_cell(tmp_path, suite, algorithm, processor, seed, sizes,
                           exact=PAIRED_EXACT[suite][seed] if algorithm == "dfs" else None)
    write_cell(tmp_path, "eb_grok_ma", "bfs", "mpnn", 1, {16: 0.98, 64: 0.95})  # an option named with "_"
    md = report.paired_table(report.aggregate(report.load_cells(tmp_path)))
    rows = table(md, PAIRED_HEAD)
    assert len(rows) == 2  # bfs ran with one option, dfs with the other
    grok = only(rows, option="grok_ma")
    assert (grok["algorithm"], grok["seeds"], grok["on - off at n=64, node"]) == ("bfs", "1", "5.00")
    assert grok["on - off at n=64, exact"] == "—"  # neither bfs cell has an exact match
    row = only(rows, option="relic")
    assert (row["option"], row["algorithm"], row["processor"], row["seeds"]) == ("relic", "dfs", "mpnn", "2")
    off, on = PAIRED_OFF[("dfs", "mpnn")], PAIRED_ON[("dfs", "mpnn")]
    for n in (16, 64):
        for side, fixture, suite in (("off", off, "eb_off"), ("on", on, "eb_relic")):
            node = _mean_se([100 * fixture[s][n] for s in (1, 2)])
            exact = _mean_se([100 * PAIRED_EXACT[suite][s][n] for s in (1, 2)])
            assert row[f"{side}, n={n}"] == f"{node} / {exact}"
    assert row["on - off at n=64, node"] == _mean_se([15.0, -10.0]) == "2.50 ± 12.50"
    assert row["on - off at n=64, exact"] == _mean_se([12.5, 0.0])
    assert row["seeds higher with it"] == "1 of 2"
    assert report.paired_table(report.aggregate(report.load_cells(tmp_path / "none"))) == ""


def test_no_paired_section_without_an_off_run(full):
    assert "## Training options at equal budget" not in full.md


@pytest.mark.parametrize("suites, want", [
    (["quick", "full"], ["full", "quick"]), (["full", "full_200", "quick"], ["full", "quick"]),
    (["quick", "full_200", "full_1000", "full_x"], ["full_1000", "quick"]), (["full_200"], ["full_200"]),
    (["quick"], ["quick"]), (["zeta", "alpha"], ["alpha"]), ([], [])])
def test_readme_shows_the_protocol_suite_then_quick(suites, want):
    assert report.headline_suites({s: {} for s in suites}) == want


# ----------------------------------------------------------------------------------------------------------------
# 4. Plots


def test_plots_are_pngs_of_plausible_size(full):
    names = ["quick_sizes.png", "quick_training.png", "full_sizes.png", "full_training.png",
             "g_forgetnet_gate.png", "speed.png"]
    for name in names:
        path = full.docs / "plots" / name
        assert path in full.written
        width, height = png_size(path)
        assert 400 <= width <= 4000 and 250 <= height <= 3000, (name, width, height)
        assert f"(plots/{name})" in full.md  # linked from results.md
    assert sorted(p.name for p in (full.docs / "plots").iterdir()) == sorted(names)
    # every image results.md links exists
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", full.md):
        assert (full.docs / link).is_file(), link


def test_size_plot_draws_the_data(full):
    """The score-vs-size plot holds pixels of each processor's colour (not only empty axes)."""
    import matplotlib.colors
    import matplotlib.image

    from nar.processors import PROCESSORS

    image = matplotlib.image.imread(full.docs / "plots" / "quick_sizes.png")[..., :3]
    for p in ("mpnn", "g_forgetnet", "tropical"):
        colour = np.array(matplotlib.colors.to_rgb(f"C{list(PROCESSORS).index(p) % 10}"))
        assert (np.abs(image - colour).max(axis=-1) < 0.02).sum() > 50, p


def test_gate_plot_only_with_a_gate_curve(full, bare):
    assert "## G-ForgetNet's history gate" in full.md
    assert (full.docs / "plots" / "g_forgetnet_gate.png").is_file()
    assert "## G-ForgetNet's history gate" not in bare.md
    assert not (bare.docs / "plots" / "g_forgetnet_gate.png").exists()
    assert report.plot_gate([], bare.root / "x.png") is None


def test_speed_table_and_plot(full):
    text = section(full.md, "## Speed")
    rows = table(text, SPEED_HEAD)
    assert [list(r.values()) for r in rows] == [SPEED_EXPECTED["mpnn"], SPEED_EXPECTED["pgn"]]
    assert "2 rows measured on cpu (cpu, 1 device(s)), jax 0.4.35, commit fedcba987654" in text
    assert "matmul rate, the scale for the GFLOP/s columns (% of it in brackets): 160.0 GFLOP/s" in text
    assert "`nar bench suite-speed --processors mpnn,pgn`" in text
    assert "![speed](plots/speed.png)" in text


def test_no_speed_rows_no_speed_table_or_plot(bare):
    text = section(bare.md, "## Speed")
    assert "No speed results yet" in text
    assert "train steps/s" not in bare.md
    assert not (bare.docs / "plots" / "speed.png").exists()
    assert sorted(p.name for p in (bare.docs / "plots").iterdir()) == ["quick_sizes.png", "quick_training.png"]
    assert "### Data generation" not in bare.md  # no bench_data.json


def test_data_generation_table(full):
    """The speed-up is one process against one: 4,195.8 / 148.16 = 28.3x (the file's own 'speedup' field, 40.4x,
    divided nar's two worker processes by dm-clrs's one, and is not shown); the worker figure has no ratio."""
    rows = table(section(full.md, "## Speed"), ["algorithm", "n", "nar traj/s (1 process)",
                                               "dm-clrs traj/s (1 process)", "speed-up, 1 process each",
                                               "nar traj/s (all cores, worker processes)"])
    assert [list(r.values()) for r in rows] == [["bfs", "64", "4,196", "148.16", "28.3x", "5,981"],
                                                ["dfs", "4,096", "skipped: out of memory", "", "", ""]]
    assert "40.4x" not in full.md


# ----------------------------------------------------------------------------------------------------------------
# 5. README, determinism


def test_readme_section_replaced_and_rest_kept(full):
    text = full.readme.read_text()
    assert text.startswith(README_HEAD + report.README_BEGIN)
    assert text.endswith(report.README_END + README_TAIL)
    assert full.readme.read_bytes()[:len(README_HEAD.encode())] == README_HEAD.encode()
    assert full.readme.read_bytes().endswith(README_TAIL.encode())
    assert text.count(report.README_BEGIN) == 1 and text.count(report.README_END) == 1
    inner = text[len(README_HEAD) + len(report.README_BEGIN):-len(report.README_END + README_TAIL)]
    assert "STALE" not in inner
    # The headline (full) table and its plot first, then the quick table (every algorithm x processor).
    assert inner.count("Suite `") == 2 and inner.count("![") == 1
    headline, quick = inner.split("Suite `quick`")
    assert "Suite `full`" in headline and "(docs/plots/full_sizes.png)" in headline
    assert ours(table(headline, SCORE_HEAD), "bfs", "mpnn")["n=64"] == "97.00 ± 0.50"
    assert ours(table(quick, SCORE_HEAD), "bfs", "mpnn")["n=64"] == "88.00 ± 1.73"
    assert full.readme in full.written


def test_readme_without_markers_raises(tmp_path):
    agg = report.aggregate([])
    for text in ["# no markers\n", f"# one marker\n{report.README_BEGIN}\n", f"{report.README_END}\n"]:
        readme = tmp_path / "README.md"
        readme.write_text(text)
        with pytest.raises(ValueError, match="markers"):
            report.update_readme(readme, [("quick", agg, [])], "make report")
        assert readme.read_text() == text  # left as it was


def test_report_is_deterministic(full, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(README)
    again = Run(full.root)
    again.go(docs=tmp_path / "docs", readme=readme)
    assert (tmp_path / "docs" / "results.md").read_bytes() == (full.docs / "results.md").read_bytes()
    for png in (full.docs / "plots").iterdir():
        assert (tmp_path / "docs" / "plots" / png.name).read_bytes() == png.read_bytes(), png.name
    assert readme.read_bytes() == full.readme.read_bytes()
    # a second run over its own output changes nothing either
    before = full.readme.read_bytes()
    cells = report.load_cells(full.results)
    agg = report.aggregate(cells)
    report.update_readme(full.readme, [(s, agg[s], [c for c in cells if c["suite"] == s])
                                       for s in report.headline_suites(agg)], "make report")
    assert full.readme.read_bytes() == before


# ----------------------------------------------------------------------------------------------------------------
# 6. Reading


def test_non_results_ignored(full):
    cells = report.load_cells(full.results)
    assert len(cells) == full.n_cells == 7  # not notes.json, other_format.json, the speed rows
    assert "foo" not in full.md


@pytest.mark.parametrize("content", [b'{"format": 1, "scores": {', b"\xff\xfe\x00garbage"])
def test_corrupt_result_file_is_named(tmp_path, content, capsys):
    write_cell(tmp_path / "results", "quick", "dfs", "tropical", 3, QUICK[("dfs", "tropical")][3])
    bad = tmp_path / "results" / "quick" / "bfs_mpnn_s0.json"
    bad.write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        report.write_report(tmp_path / "results", tmp_path / "docs")
    assert not (tmp_path / "docs" / "results.md").exists()
    # the command line reports it as an error, exit status 2
    assert report.main(["--results", str(tmp_path / "results"), "--docs", str(tmp_path / "docs"),
                        "--readme", ""]) == 2
    assert str(bad) in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------------------
# 7. Per output and per hint


def test_detail_table_holds_seed_means(full):
    rows = table(section(full.md, "## Suite `quick`"), DETAIL_HEAD)
    # one row per size some seed tested; sizes every seed skipped have none
    assert [(r["algorithm"], r["processor"], r["n"]) for r in rows] == [
        ("bfs", "g_forgetnet", "16"), ("bfs", "g_forgetnet", "64"), ("bfs", "g_forgetnet", "256"),
        ("bfs", "g_forgetnet", "1,024"), ("bfs", "mpnn", "16"), ("bfs", "mpnn", "64"), ("bfs", "mpnn", "256"),
        ("dfs", "tropical", "16"), ("dfs", "tropical", "64")]
    for r in rows:
        key, n = (r["algorithm"], r["processor"]), int(r["n"].replace(",", ""))
        seeds = {s: sizes[n] for s, sizes in QUICK[key].items() if sizes.get(n, SKIP) != SKIP}
        assert r["score"] == expected(QUICK, *key, n)
        assert r["per output"] == f"pi {np.mean([100 * v for v in seeds.values()]):.1f}"
        hints = sorted(HINTS[key[0]])
        assert r["per hint"] == ", ".join(
            f"{h} {np.mean([100 * hint_value(key[0], h, s, n) for s in seeds]):.1f}" for h in hints)
    # spelled out for one row: bfs/mpnn n=256, seeds 0 and 1 (seed 2 skipped)
    row = only(rows, algorithm="bfs", processor="mpnn", n="256")
    assert row["per output"] == "pi 65.0"
    assert row["per hint"] == "pi_h 58.9, reach_h 48.9"  # 0.5 (+0.1 for pi_h) + 0.03 s - 0.0256


# ----------------------------------------------------------------------------------------------------------------
# Edge cases: fully skipped speed rows, corrupt speed files, CRLF READMEs


def test_fully_skipped_speed_row(tmp_path):
    speed = tmp_path / "results" / report.SPEED_DIR
    speed.mkdir(parents=True)
    (speed / "bfs_mpnn_n64.json").write_text(json.dumps(SPEED_ROWS["bfs_mpnn_n64"]))
    (speed / "bfs_triplet_gmpnn_n1024.json").write_text(json.dumps({
        "algorithm": "bfs", "processor": "triplet_gmpnn", "num_nodes": 1024, "batch_size": 2, "graph": "sparse_er",
        "train_skipped": "did not finish within 300 s", "eval_skipped": "out of memory", "peak_memory_bytes": 0,
        "command": "nar bench suite-speed"}))
    report.write_report(tmp_path / "results", tmp_path / "docs")
    rows = table(section((tmp_path / "docs" / "results.md").read_text(), "## Speed"), SPEED_HEAD)
    assert rows[0]["train GFLOP/s"] == "39.5"  # no machine.json: no share of the matmul rate
    assert rows[1]["train steps/s"] == "skipped: did not finish within 300 s"
    assert rows[1]["eval graphs/s"] == "skipped: out of memory"


def test_corrupt_speed_file_is_named(tmp_path):
    speed = tmp_path / "results" / report.SPEED_DIR
    speed.mkdir(parents=True)
    bad = speed / "bfs_mpnn_n64.json"
    bad.write_text('{"processor": "mpnn", ')
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        report.load_speed(tmp_path / "results")


def test_readme_crlf_kept(tmp_path):
    write_cell(tmp_path / "results", "quick", "dfs", "tropical", 3, QUICK[("dfs", "tropical")][3])
    cells = report.load_cells(tmp_path / "results")
    readme = tmp_path / "README.md"
    readme.write_bytes(README.replace("\n", "\r\n").encode())
    report.update_readme(readme, [("quick", report.aggregate(cells)["quick"], cells)], "make report")
    assert readme.read_bytes().startswith(README_HEAD.replace("\n", "\r\n").encode())
    assert readme.read_bytes().endswith(README_TAIL.replace("\n", "\r\n").encode())


def test_same_work_table_gives_ratios_only_for_the_same_work():
    def row(processor, n, train=None, evals=None, ref=None):
        r = {"algorithm": "bfs", "processor": processor, "num_nodes": n, "batch_size": 8, "graph": "sparse_er"}
        r.update({"train": {"steps_per_s": train}} if train else {})
        r.update({"eval": {"graphs_per_s": evals}} if evals else {})
        return {**r, **({"dm_clrs": {**ref, "p": 0.0196, "version": "2.0.3"}} if ref else {})}

    rows = [row("mpnn", 256, 3.0, 30.0, {"train_steps_per_s": 2.0, "eval_graphs_per_s": "did not finish"}),
            row("pgn", 256, 1.0, 4.0, {"train_steps_per_s": 0.5, "eval_graphs_per_s": 2.0}),
            row("pgn_mask", 256, 9.0, 40.0),  # no dm-clrs twin of its own: less work, a line apart
            row("tropical", 256, 5.0, 50.0)]  # dm-clrs has no tropical attention: not in the table
    text = report.same_work_table(rows)
    lines = text.splitlines()
    assert lines[2] == "| mpnn | bfs | 256 | sparse_er (0.0196) | 8 | 3.00 | 2.00 | 1.50x | 30.0 | – | – |"
    assert lines[3] == "| pgn | bfs | 256 | sparse_er (0.0196) | 8 | 1.00 | 0.50 | 2.00x | 4.0 | 2.0 | 2.00x |"
    assert len([x for x in lines if x.startswith("|")]) == 4  # header, rule, mpnn, pgn: no pgn_mask, no tropical
    less = [x for x in lines if x.startswith("Less work")]
    assert less == ["Less work, not like for like: nar `pgn_mask` (messages and pointers on the input graph's edges "
                    "only; dm-clrs has no sparse path) predicts bfs at n = 256 (sparse_er) at 40.0 graphs/s, against "
                    "dm-clrs's dense PGN at 2.0 graphs/s on the same graphs, 20.0x its rate."]
    assert report.same_work_table([row("mpnn", 64, 3.0, 30.0)]) == ""  # no dm-clrs figures, no table
    # pgn_mask is paired with dm-clrs's PGN on the same graphs only: a sparse row is not set beside a dense one
    dense_pgn = {**row("pgn", 64, 1.0, 4.0, {"eval_graphs_per_s": 2.0}), "graph": "er"}
    sparse_mask = row("pgn_mask", 64, 9.0, 40.0)
    assert "Less work" not in report.same_work_table([dense_pgn, sparse_mask])
    sparse_pgn = row("pgn", 64, 1.0, 4.0, {"eval_graphs_per_s": 4.0})
    less = [x for x in report.same_work_table([dense_pgn, sparse_pgn, sparse_mask]).splitlines()
            if x.startswith("Less work")]
    assert len(less) == 1 and "n = 64 (sparse_er)" in less[0] and "10.0x its rate" in less[0]


def test_cells_with_child_edge_pointers_are_marked_and_never_pooled(tmp_path):
    """A cell saved without `model.pointer_encoding` (trained before the option: pointers on the child's edge) is
    its own row, marked and explained; the published figure appears once, beside both; GraphFSA (no encoder) is
    not marked."""
    sizes = {16: 0.9, 64: 0.8}
    write_cell(tmp_path, "quick", "bfs", "mpnn", 0, sizes)
    write_cell(tmp_path, "quick", "bfs", "mpnn", 1, {16: 0.5, 64: 0.4}, pointer_encoding=None)
    write_cell(tmp_path, "quick", "bfs", "graphfsa", 0, sizes, pointer_encoding=None)
    cells = report.load_cells(tmp_path)
    assert sorted(c["processor"] for c in cells) == ["graphfsa", "mpnn", "mpnn ‡"]
    agg = report.aggregate(cells)["quick"]
    assert agg[("bfs", "mpnn")]["sizes"][64] == (80.0, None)
    assert agg[("bfs", "mpnn ‡")]["sizes"][64] == (40.0, None)
    rows = table(report.score_table(agg), SCORE_HEAD)
    assert [(r["processor"], r["source"]) for r in rows] == [
        ("graphfsa (pi: fixed rule, not learned)", "ours"), ("mpnn", "ours"), ("mpnn ‡", "ours"),
        ("mpnn", "published: Ibarz et al. 2022, Table 2")]
    legend = report.table_legend(agg)
    assert "‡: trained with each node pointer i -> p_i encoded on the edge p_i -> i" in legend
    assert "‡" not in report.table_legend(report.aggregate(cells[:2])["quick"])


STANDING_HEAD = ["algorithm", "nar: best at n=64", "n=64 exact", "n=1,024", "n=1,024 exact", "processor", "suite",
                 "steps", "seeds", "published, same processor", "source"]
PUBLISHED_BEST_HEAD = ["algorithm", "published best at n=64", "measured on", "source"]


def test_standing_table_names_our_best_and_the_published_best(full):
    """Per algorithm: the (suite, processor) with the highest seed-mean at n = 64 (computed here from the fixture),
    beside the published figure of that same processor only; the highest published figure per algorithm, with the
    processor and paper it belongs to, in a table of its own."""
    text = section(full.md, "## Where nar stands")
    rows = {r["algorithm"]: r for r in table(text, STANDING_HEAD)}
    assert list(rows) == ["bfs", "dfs"]
    v = 100 * np.array([0.975, 0.965])  # full bfs/mpnn beats quick's g_forgetnet (95.00) and mpnn (88.00)
    bfs = rows["bfs"]
    assert bfs["nar: best at n=64"] == f"{v.mean():.2f} ± {v.std(ddof=1) / math.sqrt(2):.2f}" == "97.00 ± 0.50"
    assert (bfs["processor"], bfs["suite"], bfs["steps"], bfs["seeds"]) == ("mpnn", "full", "10,000", "2")
    assert bfs["n=64 exact"] == expected_exact("full", "bfs", "mpnn", 64)
    assert bfs["n=1,024"] == "79.00 ± 2.00"
    assert (bfs["published, same processor"], bfs["source"]) == ("99.89 ± 0.05", "Ibarz et al. 2022, Table 2")
    dfs = rows["dfs"]
    assert (dfs["nar: best at n=64"], dfs["processor"], dfs["suite"]) == ("21.25", "tropical", "quick")
    assert (dfs["published, same processor"], dfs["source"]) == ("", "")  # no published tropical DFS figure
    best = {r["algorithm"]: r for r in table(text, PUBLISHED_BEST_HEAD)}
    assert (best["bfs"]["published best at n=64"], best["bfs"]["measured on"]) == ("99.89 ± 0.05", "mpnn")
    assert (best["dfs"]["published best at n=64"], best["dfs"]["measured on"]) == ("47.79 ± 4.19", "triplet_gmpnn")
    assert best["dfs"]["source"] == "Ibarz et al. 2022, Table 2 †"
