"""`make bench-speed` (`nar bench suite-speed`): every processor at n = 16, 64, 256 and 1,024 on this machine.

One row per (algorithm, processor, n) in `<out>/<algorithm>_<processor>_n<N>.json`: train steps/s, eval graphs/s,
FLOPs, compile seconds and peak memory from `nar bench speed`, each mode in a process of its own (clean peak memory,
and a time limit: a row that does not fit or does not finish is recorded as skipped, with the reason). CLRS's ER
graphs up to n = 64, sparse ER (degree 5) beyond, where a complete-graph processor pays for n² pairs. Rows already
on disk are kept (rerun with `--force`, which keeps a row's dm-clrs figures unless dm-clrs runs again). The
machine's float32 matmul rate, the scale for the rows' GFLOP/s, is measured first into `<out>/machine.json`. With
`--dmclrs-python`, dm-clrs's model is timed on the same work in that throwaway virtualenv (the repository's
`benchmarks/dmclrs_model.py`: a source checkout only) and its figures stored beside nar's. Data-generation
throughput is `nar.bench.data`'s (`make bench-speed` runs both).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import sys
from pathlib import Path

from nar.algorithms import get_algorithm
from nar.bench import dmclrs_script, environment
from nar.bench.child import ChildError, run_child
from nar.bench.report import MACHINE_FILE
from nar.processors import PROCESSORS

SIZES = (16, 64, 256, 1024)
BATCH = {16: 32, 64: 32, 256: 8, 1024: 2}  # graphs per batch; large graphs in small batches, as one would train


def batch_for(n: int) -> int:
    return BATCH.get(n, 1)


def graph_for(n: int) -> str:
    """Row n's default graph family (`--graph` chooses another)."""
    return "er" if n <= 64 else "sparse_er"


GRAPHS = ("er", "sparse_er")


def row_path(out: Path, algorithm: str, processor: str, n: int, graph: str) -> Path:
    """A row's file: `<algorithm>_<processor>_n<N>.json` on row n's default graph, with `_<graph>` appended on
    another."""
    suffix = "" if graph == graph_for(n) else f"_{graph}"
    return out / f"{algorithm}_{processor}_n{n}{suffix}.json"


MODES = ("train", "eval")
SPARSE_DEGREE = 5.0  # `nar bench speed --graph sparse_er`'s default expected degree


def er_density(n: int, algorithm: str = "bfs", graph: str | None = None) -> float:
    """The `p` to give dm-clrs's ER sampler so that it draws row n's graphs from nar's distribution: CLRS's 0.5 on
    'er' (the same sampler on both sides); on 'sparse_er', where each pair is an edge with probability
    degree / (n - 1), that probability for a directed algorithm and its square root for an undirected one, since
    dm-clrs keeps an undirected edge only when both of its directions were drawn (probability p**2; with p =
    5 / 255 its n = 256 graphs would have a mean degree of 0.1 and BFS one hint step)."""
    if (graph or graph_for(n)) == "er":
        return 0.5
    pair = min(1.0, SPARSE_DEGREE / (n - 1))
    return pair if get_algorithm(algorithm).graph_defaults.get("directed") else math.sqrt(pair)


def _speed(algorithm: str, processor: str, n: int, graph: str, mode: str, steps: int, timeout: float) -> dict:
    """`nar bench speed --json` for one mode in a child process: its JSON, or {'skipped': reason}."""
    argv = [sys.executable, "-m", "nar.cli", "bench", "speed", "--algorithm", algorithm, "--processor", processor,
            "--num-nodes", str(n), "--batch-size", str(batch_for(n)), "--graph", graph, "--mode", mode,
            "--steps", str(steps), "--json"]
    try:
        return json.loads(run_child(argv, timeout=timeout))
    except ChildError as e:  # recorded, not raised: the other rows still run
        return {"skipped": e.reason}


def measure(algorithm: str, processor: str, n: int, steps: int = 5, timeout: float = 300.0,
            graph: str | None = None, modes=MODES) -> dict:
    """One row: each of `modes` (train, eval) measured separately and merged."""
    graph = graph or graph_for(n)
    row = {"algorithm": algorithm, "processor": processor, "num_nodes": n, "batch_size": batch_for(n),
           "graph": graph, "environment": environment()}
    peak = 0
    for mode in modes:
        res = _speed(algorithm, processor, n, graph, mode, steps, timeout)
        if "skipped" in res:
            row[f"{mode}_skipped"] = res["skipped"]
            continue
        row[mode] = res[mode]
        peak = max(peak, res["peak_memory_bytes"])
        row.update({k: res[k] for k in ("message_graph", "padded", "edges_per_graph", "hint_steps_max",
                                        "environment")})
        row[f"{mode}_command"] = res["command"]
    row["peak_memory_bytes"] = peak
    return row


def measure_machine(command: str) -> dict:
    """The machine's float32 matmul rate (the scale for every row's GFLOP/s), in a child process like the rows."""
    code = "import json; from nar.bench.speed import matmul_gflops; print(json.dumps(matmul_gflops()))"
    rate = json.loads(run_child([sys.executable, "-c", code]))
    return {"matmul_gflops_per_s": rate, "matmul": "2,048 x 2,048 jnp.dot, best of 5", "environment": environment(),
            "date": datetime.date.today().isoformat(), "command": command}


def dmclrs_rows(python: str, script: Path, rows: list[dict], timeout: float) -> list[dict]:
    """dm-clrs's figures for the same (algorithm, processor, n, batch) work, timed by `script`
    (`benchmarks/dmclrs_model.py`) in dm-clrs's own virtualenv; a row past `timeout` seconds is an error row."""
    return json.loads(run_child([python, script, json.dumps(rows), timeout]))


DMCLRS_PROCESSORS = ("mpnn", "pgn", "triplet_gmpnn")  # the ones dm-clrs has under the same name
DMCLRS_MAX_N = 256  # dm-clrs is dense: at n = 512 its prediction did not finish in 15 minutes on this machine type


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="nar bench suite-speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--algorithm", default="bfs", help="algorithm to time (default bfs)")
    p.add_argument("--processors", default="all", help="comma-separated, or 'all' (default)")
    p.add_argument("--sizes", default=",".join(map(str, SIZES)),
                   help="comma-separated graph sizes (default %(default)s)")
    p.add_argument("--graph", choices=GRAPHS, help="graph family of every row (default: er up to n = 64, "
                   "sparse_er beyond); a row off its size's default is stored as <...>_n<N>_<graph>.json")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated, of train and eval (default both)")
    p.add_argument("--steps", type=int, default=5, help="timed train steps per repeat")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per measurement before it is skipped")
    p.add_argument("--out", default="results/bench_speed", help="result folder (default %(default)s)")
    p.add_argument("--force", action="store_true", help="measure rows already on disk again")
    p.add_argument("--dmclrs-python", help="python of a throwaway virtualenv holding dm-clrs")
    args = p.parse_args(argv)
    processors = list(PROCESSORS) if args.processors == "all" else args.processors.split(",")
    unknown = [x for x in processors if x not in PROCESSORS]
    if unknown:
        print(f"nar bench suite-speed: error: unknown processor(s) {unknown}; known: {', '.join(PROCESSORS)}",
              file=sys.stderr)
        return 2
    try:  # before hours of measuring: the script dm-clrs runs exists
        script = dmclrs_script("dmclrs_model.py") if args.dmclrs_python else None
    except FileNotFoundError as e:
        print(f"nar bench suite-speed: error: {e}", file=sys.stderr)
        return 2
    sizes = [int(x) for x in args.sizes.split(",")]
    modes = tuple(args.modes.split(","))
    if not set(modes) <= set(MODES) or not modes:
        print(f"nar bench suite-speed: error: --modes takes {', '.join(MODES)}, got {args.modes!r}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "nar bench suite-speed " + " ".join(sys.argv[3:] if argv is None else argv)
    machine = out / MACHINE_FILE
    if args.force or not machine.exists():  # measured first, while no row is running
        rate = measure_machine(command)
        machine.write_text(json.dumps(rate, indent=1))
        print(f"{machine}: float32 matmul {rate['matmul_gflops_per_s']:.1f} GFLOP/s")
    for n in sizes:  # size-major: every processor gets the small sizes before any gets the slow large ones
        for processor in processors:
            path = row_path(out, args.algorithm, processor, n, args.graph or graph_for(n))
            if path.exists() and not args.force:
                print(f"{path}: kept")
                continue
            row = measure(args.algorithm, processor, n, args.steps, args.timeout, args.graph, modes)
            row["command"] = command
            if path.exists():  # remeasured (--force): dm-clrs's figures for the same work stay until it is rerun
                old = json.loads(path.read_text()).get("dm_clrs")
                row.update({"dm_clrs": old} if old and old.get("p") == er_density(n, args.algorithm, args.graph)
                           else {})
            path.write_text(json.dumps(row, indent=1))
            t, e = row.get("train", {}), row.get("eval", {})
            print(f"{processor:>14} n={n:<5} train {t.get('steps_per_s', float('nan')):8.2f} steps/s  "
                  f"eval {e.get('graphs_per_s', float('nan')):9.1f} graphs/s  "
                  f"peak {row['peak_memory_bytes'] / 2**20:7.0f} MiB "
                  + " ".join(f"[{m}: {row[m + '_skipped']}]" for m in ("train", "eval") if m + "_skipped" in row),
                  flush=True)
    if args.dmclrs_python:
        want = [{"algorithm": args.algorithm, "processor": p, "n": n, "batch_size": batch_for(n), "mode": mode,
                 "p": er_density(n, args.algorithm, args.graph)}
                for p in processors if p in DMCLRS_PROCESSORS for n in sizes if n <= DMCLRS_MAX_N
                for mode in modes]
        for ref in dmclrs_rows(args.dmclrs_python, script, want, timeout=args.timeout):
            path = row_path(out, ref["algorithm"], ref["processor"], ref["n"], args.graph or graph_for(ref["n"]))
            row = json.loads(path.read_text())
            key = "train_steps_per_s" if ref["mode"] == "train" else "eval_graphs_per_s"
            value = ref.get("steps_per_s" if ref["mode"] == "train" else "graphs_per_s")
            row.setdefault("dm_clrs", {})[key] = round(value, 3) if value is not None else ref.get("error", "failed")
            row["dm_clrs"]["version"] = ref.get("dm_clrs", "2.0.3")
            row["dm_clrs"]["p"] = ref["p"]  # the same graph distribution as nar's row
            path.write_text(json.dumps(row, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
