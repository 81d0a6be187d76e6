"""`make bench-scale` (`nar bench scale`): throughput vs number of devices and vs graph size.

Two sweeps, every point in a process of its own (a clean peak memory, its own device count, a time limit):

- devices: train steps/s (`nar.train.Trainer` on CLRS's training distribution) and eval graphs/s (`Evaluator` on
  sparse ER graphs) with 1, 2, 4 simulated CPU devices (JAX_NUM_CPU_DEVICES=D, `nar.bench.child`). The
  child only sets the count; Trainer and Evaluator spread their batches over every local device themselves.
- sizes: evaluation of a freshly initialised BFS and Bellman-Ford model on sparse ER graphs of growing size, with
  data seconds, compile seconds, graphs/s, the process's peak RSS, JAX's device memory statistics where the
  backend has them, XLA's memory analysis of the compiled evaluation and `nar.model.memory.estimate_bytes`.

One JSON file (default `results/bench_scale/<platform>.json`) with the exact command, device and versions.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jax
from flax import nnx

import nar
from nar.algorithms import get_algorithm
from nar.bench import environment, peak_rss_bytes
from nar.bench.child import ChildError, run_child
from nar.config import from_dict
from nar.data import generate
from nar.evaluate import Evaluator, batches, hint_probe_count
from nar.model.memory import check_plan, estimate_bytes
from nar.processors import get_processor
from nar.train import Trainer

DEFAULT = {"devices": (1, 2, 4), "algorithms": ("bfs", "bellman_ford"), "sizes": (1024, 4096, 16384, 65536),
           "hidden": 128, "degree": 5.0, "graphs": 2, "train_steps": 30, "device_eval_n": 256,
           "device_eval_graphs": 64}
QUICK = {"devices": (1, 2), "algorithms": ("bfs", "bellman_ford"), "sizes": (64, 512), "hidden": 16,
         "degree": 5.0, "graphs": 2, "train_steps": 8, "device_eval_n": 32, "device_eval_graphs": 8}


def _device_memory() -> dict | None:
    """JAX's memory statistics of the first device (accelerators; the CPU backend has none)."""
    stats = jax.devices()[0].memory_stats()
    return None if not stats else {k: int(v) for k, v in stats.items() if k in ("peak_bytes_in_use", "bytes_limit",
                                                                                "bytes_in_use")}


def _config(algorithm: str, processor: str, hidden: int, **train):
    """A sweep point's config: `processor` on the input graph, with `train` options."""
    return from_dict({"model": {"algorithm": algorithm, "processor": processor, "hidden": hidden,
                                "message_graph": "input"}, "train": train})


def _model(config):
    """A freshly initialised model of `config` and its parameters."""
    model = nar.build_model(config)
    return model, nnx.to_pure_dict(nnx.split(model)[1])


def point_devices(p: dict) -> dict:
    """Train steps/s and eval graphs/s on however many devices this process sees."""
    config = _config(p["algorithm"], p["processor"], p["hidden"], steps=p["train_steps"], batch_size=32,
                     log_every=max(1, p["train_steps"] // 6), eval_every=p["train_steps"],
                     checkpoint_every=p["train_steps"], val_samples=32)
    model, params = _model(config)
    with tempfile.TemporaryDirectory() as tmp:
        Trainer(config, tmp, progress=False).run()
        logged = [json.loads(line) for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
    rates = [r["steps_per_s"] for r in logged if r.get("steps_per_s")]  # None: a window of compiling steps only
    tb = generate(p["algorithm"], p["device_eval_graphs"], p["device_eval_n"], 0, graph="sparse_er",
                  degree=p["degree"]).trajectories
    ev = Evaluator(model)
    placed = ev.place(batches(tb, config.model, 8, 1 << 30))
    ev(params, placed)  # compile
    seconds = []
    for _ in range(3):
        t = time.perf_counter()
        ev(params, placed)  # returns host floats: the device work is done
        seconds.append(time.perf_counter() - t)
    return {"device_count": jax.device_count(), "platform": jax.devices()[0].platform,
            "train_steps_per_s": statistics.median(rates) if rates else None, "train_rates": rates,
            "eval_graphs_per_s": len(tb) / statistics.median(seconds), "eval_seconds": seconds,
            "eval_graphs": len(tb), "eval_num_nodes": p["device_eval_n"], "peak_rss_bytes": peak_rss_bytes()}


def point_size(p: dict) -> dict:
    """Evaluation of a fresh model on `graphs` sparse ER graphs of `n` nodes: time and memory."""
    config = _config(p["algorithm"], p["processor"], p["hidden"])
    check_plan(config.model, False, p["n"], p["graphs"], p["degree"])  # before the model or a graph exists
    model, params = _model(config)
    rss_base = peak_rss_bytes()
    t0 = time.perf_counter()
    tb = generate(p["algorithm"], p["graphs"], p["n"], 0, graph="sparse_er", degree=p["degree"]).trajectories
    t1 = time.perf_counter()
    ev = Evaluator(model)
    batch_list = batches(tb, config.model, p["graphs"], 1 << 30)
    placed = ev.place(batch_list)
    t2 = time.perf_counter()
    mem = ev._counts.lower(params, placed[0]).compile().memory_analysis()  # the call below reuses this compile
    t3 = time.perf_counter()
    res = ev(params, placed)
    first = time.perf_counter() - t3
    seconds = []  # steady-state repeats, up to 3 or about a minute
    while len(seconds) < 3 and sum(seconds) < 60:
        t = time.perf_counter()
        ev(params, placed)
        seconds.append(time.perf_counter() - t)
    eval_s = statistics.median(seconds)
    pad = batch_list[0].pad_sizes
    est = estimate_bytes(pad, p["hidden"], False, config.model.triplet_features, hint_probe_count(config.model),
                         processor=config.model.processor)
    xla = {"temp_bytes": int(mem.temp_size_in_bytes), "argument_bytes": int(mem.argument_size_in_bytes),
           "output_bytes": int(mem.output_size_in_bytes)}
    return {"edges_per_graph": float(tb.n_edge.mean()), "hint_steps_max": int(tb.n_step.max()),
            "batches": len(batch_list), "padded": {"nodes": pad.nodes, "edges": pad.edges, "steps": pad.steps},
            "data_s": t1 - t0, "layout_s": t2 - t1, "compile_s": t3 - t2, "first_eval_s": first,
            "eval_s": eval_s, "eval_repeats_s": seconds, "graphs_per_s": p["graphs"] / eval_s, "score": res["score"],
            "peak_rss_bytes": peak_rss_bytes(), "rss_before_data_bytes": rss_base, "device_memory": _device_memory(),
            "xla": xla, "xla_total_bytes": sum(xla.values()), "estimate_bytes": est,
            "platform": jax.devices()[0].platform}


POINTS = {"devices": point_devices, "size": point_size}


def _run_point(kind: str, params: dict, devices: int, timeout: float, platform: str | None) -> dict:
    """One point in a child process with `devices` simulated CPU devices: its JSON, or {'skipped': why}."""
    argv = [sys.executable, "-m", "nar.bench.scale", "--point", json.dumps({"kind": kind, **params})]
    try:
        out = run_child(argv, env={"JAX_PLATFORMS": platform} if platform else None, cpu_devices=devices,
                        timeout=timeout)
    except ChildError as e:  # recorded, not raised: the other points still run
        return {"skipped": e.reason + (" (killed: out of memory?)" if e.silent else "")}
    return json.loads(out.strip().splitlines()[-1])


def bench(settings: dict, timeout: float, platform: str | None = None, log=print) -> dict:
    """Both sweeps with `settings` (keys of `DEFAULT`)."""
    common = {"processor": settings["processor"], "hidden": settings["hidden"], "degree": settings["degree"]}
    out = {"settings": settings, "devices": [], "sizes": []}
    for d in settings["devices"]:
        row = {"devices": d, **_run_point("devices", {**common, "algorithm": "bfs",
                                                      **{k: settings[k] for k in ("train_steps", "device_eval_n",
                                                                                  "device_eval_graphs")}},
                                          d, timeout, platform)}
        out["devices"].append(row)
        log(f"devices={d}: " + (row.get("skipped") or f"train {row['train_steps_per_s']:.2f} steps/s, eval "
                                f"{row['eval_graphs_per_s']:.1f} graphs/s (JAX saw {row['device_count']})"))
    for algorithm in settings["algorithms"]:
        for n in settings["sizes"]:
            row = {"algorithm": algorithm, "num_nodes": n, "graphs": settings["graphs"],
                   **_run_point("size", {**common, "algorithm": algorithm, "n": n, "graphs": settings["graphs"]},
                                1, timeout, platform)}
            out["sizes"].append(row)
            log(f"{algorithm} n={n}: " + (row.get("skipped") or (
                f"{row['graphs_per_s']:.3g} graphs/s, T={row['hint_steps_max']}, compile {row['compile_s']:.1f}s, "
                f"peak RSS {row['peak_rss_bytes'] / 2**20:.0f} MiB, XLA {row['xla_total_bytes'] / 2**20:.0f} MiB, "
                f"estimate {row['estimate_bytes'] / 2**20:.0f} MiB")))
    return out


def markdown(result: dict) -> str:
    """The two sweeps of a result file as Markdown tables (docs/scaling.md, "Memory model")."""
    mib = lambda b: f"{b / 2**20:,.0f}"  # noqa: E731
    lines = ["| algorithm | n | edges / graph | T | graphs/s | data s | compile s | peak RSS MiB | XLA MiB | "
             "estimate MiB |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["sizes"]:
        if "skipped" in r:
            lines.append(f"| {r['algorithm']} | {r['num_nodes']:,} | skipped: {r['skipped']} |||||||| |")
            continue
        lines.append(f"| {r['algorithm']} | {r['num_nodes']:,} | {r['edges_per_graph']:,.0f} | {r['hint_steps_max']} "
                     f"| {r['graphs_per_s']:.3g} | {r['data_s']:.2f} | {r['compile_s']:.1f} | "
                     f"{mib(r['peak_rss_bytes'])} | {mib(r['xla_total_bytes'])} | {mib(r['estimate_bytes'])} |")
    lines += ["", "| simulated devices | JAX devices | train steps/s | eval graphs/s |", "|---:|---:|---:|---:|"]
    for r in result["devices"]:
        lines.append(f"| {r['devices']} | skipped: {r['skipped']} | | |" if "skipped" in r else
                     f"| {r['devices']} | {r['device_count']} | {r['train_steps_per_s']:.2f} | "
                     f"{r['eval_graphs_per_s']:.1f} |")
    return "\n".join(lines)


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="nar bench scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes and budgets (tests)")
    p.add_argument("--devices", type=_ints, help="simulated CPU device counts (default 1,2,4)")
    p.add_argument("--sizes", type=_ints, help="graph sizes of the size sweep (default 1024,4096,16384,65536)")
    p.add_argument("--algorithms", help="comma-separated (default bfs,bellman_ford)")
    p.add_argument("--processor", default="mpnn", help="run on the input graph (message_graph='input')")
    p.add_argument("--hidden", type=int, help="model width (default 128; 16 with --quick)")
    p.add_argument("--graphs", type=int, help="graphs per size (default 2)")
    p.add_argument("--degree", type=float, help="sparse ER expected degree (default 5)")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per point before it is skipped")
    p.add_argument("--platform", help="JAX_PLATFORMS for the children (e.g. cpu on a GPU machine)")
    p.add_argument("--out", help="JSON file (default results/bench_scale/<platform>.json)")
    p.add_argument("--table", metavar="JSON", help="print a result file's tables as Markdown and exit")
    p.add_argument("--point", help=argparse.SUPPRESS)  # internal: run one point in this process
    args = p.parse_args(argv)
    if args.point:
        params = json.loads(args.point)
        print(json.dumps(POINTS[params.pop("kind")](params)))
        return 0
    if args.table:
        print(markdown(json.loads(Path(args.table).read_text())))
        return 0
    settings = dict(QUICK if args.quick else DEFAULT, processor=args.processor)
    for key in ("devices", "sizes", "hidden", "graphs", "degree"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    if args.algorithms:
        settings["algorithms"] = tuple(args.algorithms.split(","))
    try:
        get_processor(settings["processor"])
        for a in settings["algorithms"]:
            if get_algorithm(a).kind == "sort":
                raise ValueError(f"the size sweep runs graph algorithms on sparse ER graphs, got the sort {a!r}")
        for key in ("hidden", "graphs"):
            if settings[key] < 1:
                raise ValueError(f"--{key} must be positive, got {settings[key]}")
        if not 0 < settings["degree"] < math.inf:
            raise ValueError(f"--degree must be a finite number > 0, got {settings['degree']}")
    except ValueError as e:
        print(f"nar bench scale: error: {e}", file=sys.stderr)
        return 2
    env = environment()
    result = {"command": "nar bench scale " + " ".join(sys.argv[1:] if argv is None else argv),
              "environment": env, **bench(settings, args.timeout, args.platform)}
    out = Path(args.out or f"results/bench_scale/{env['device']['platform']}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=list))
    print(markdown(result))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
