"""`nar bench speed`: training and evaluation speed of one algorithm x processor x graph size on this machine.

Reports train steps/s and eval graphs/s (after compilation, on a fixed batch: the model alone, not the data
pipeline, which `make bench-data` measures), compile seconds, peak memory, FLOPs per train step and per eval batch
from XLA's cost analysis (taken on a fully unrolled copy of the time loop, because XLA counts a loop body once),
the achieved GFLOP/s, and the machine's matmul rate measured with a large `jnp.dot` for scale. With
`--profile`, the XLA instructions that take each mode's time (`nar.bench.profile`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import nar
from nar.algorithms import get_algorithm
from nar.bench import environment, peak_memory_bytes
from nar.bench.profile import format_op_times, op_times
from nar.config import from_dict
from nar.data import generate
from nar.data.batch import make_batch
from nar.evaluate import Evaluator
from nar.model.memory import check_fits, check_plan, estimate_bytes, family_degree
from nar.train import Trainer, initial_state


def matmul_gflops(size: int = 2048, repeats: int = 5, dtype: str = "float32") -> float:
    """Best matmul rate of the default device, GFLOP/s: float32, or `dtype` operands with float32 accumulation (as
    `model.dtype` multiplies)."""
    a = jnp.ones((size, size), dtype)
    f = jax.jit(lambda x: jnp.matmul(x, x, preferred_element_type=jnp.float32))
    f(a).block_until_ready()
    best = min(_timed(lambda: f(a).block_until_ready()) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _flops(lowered) -> float:
    """FLOPs from XLA's cost analysis of the lowered (not yet compiled) program: the CPU backend's library
    fusions hide their dots from the compiled program's analysis."""
    cost = lowered.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", float("nan")))


def bench(algorithm: str, processor: str, num_nodes: int, batch_size: int, hidden: int, message_graph=None,
          graph: str | None = None, degree: float = 5.0, steps: int = 10, mode: str = "both", seed: int = 0,
          profile: bool = False, dtype: str = "float32") -> dict:
    """Speed of one configuration (module docstring); `profile` adds each mode's top XLA instructions by time
    (`nar.bench.profile.op_times`)."""
    overrides = {"model": {"algorithm": algorithm, "processor": processor, "hidden": hidden, "dtype": dtype,
                           **({"message_graph": message_graph} if message_graph else {})},
                 "train": {"batch_size": batch_size}}
    config = from_dict(overrides)
    kind, tf = config.model.graph_kind, config.model.triplet_features
    extra = {}
    if get_algorithm(algorithm).kind != "sort":
        extra = {"graph": graph or "er", **({"degree": degree} if graph == "sparse_er" else {})}
    check_plan(config.model, mode != "eval", num_nodes, batch_size, family_degree(graph or "er", degree))
    tb = generate(algorithm, batch_size, num_nodes, seed, **extra).trajectories
    batch = jax.device_put(make_batch(tb, kind, triplets=config.model.triplets))
    pad = batch.pad_sizes
    out = {"algorithm": algorithm, "processor": processor, "message_graph": kind, "graph": extra.get("graph", "keys"),
           "degree": degree if graph == "sparse_er" else None, "num_nodes": num_nodes, "batch_size": batch_size,
           "hidden": hidden, "dtype": dtype, "padded": {"nodes": pad.nodes, "edges": pad.edges, "steps": pad.steps,
                                        "triplets": pad.triplets},
           "edges_per_graph": float(tb.n_edge.mean()), "hint_steps_max": int(tb.n_step.max())}
    if mode in ("both", "train"):
        check_fits(pad, hidden, True, kind, triplet_features=tf, processor=processor)
        with tempfile.TemporaryDirectory() as tmp:
            trainer = Trainer(config, tmp, progress=False)
            state = initial_state(config, trainer.params, trainer.tx)
            params, opt = state["params"], state["opt_state"]
            key = jax.random.key(seed)
            t_compile = _timed(lambda: jax.block_until_ready(trainer.train_step(params, opt, batch, key)))
            p, o = params, opt

            def run():
                nonlocal p, o
                for _ in range(steps):
                    p, o, loss, *_ = trainer.train_step(p, o, batch, key)
                jax.block_until_ready(loss)

            seconds = min(_timed(run) for _ in range(2))
            train_profile = op_times(trainer._step, params, opt, batch, key, np.float32(0.0)) if profile else None
            trainer.model.scan_unroll = pad.steps
            graphdef, _ = nnx.split(trainer.model)
            trainer.graphdef = graphdef
            fresh = jax.jit(lambda *a: trainer._train_step(*a))  # a fresh trace, with the unrolled scan
            flops = _flops(fresh.lower(params, opt, batch, key, 0.0))
            trainer.model.scan_unroll = 1
            model = trainer.model
        rate = steps / seconds
        out["train"] = {"steps_per_s": rate, "compile_s": t_compile, "flops_per_step": flops,
                        "gflops_per_s": flops * rate / 1e9,
                        "estimate_bytes": estimate_bytes(pad, hidden, True, tf, processor=processor)}
        if profile:
            out["train"]["profile"] = train_profile
    else:
        model = nar.build_model(config)
    if mode in ("both", "eval"):
        check_fits(pad, hidden, False, kind, triplet_features=tf, processor=processor)
        ev = Evaluator(model)
        params = nnx.to_pure_dict(nnx.split(model)[1])
        t_compile = _timed(lambda: ev(params, [batch]))
        seconds = min(_timed(lambda: jax.block_until_ready(ev._counts(params, batch))) for _ in range(3))
        eval_profile = op_times(ev._counts, params, batch) if profile else None
        model.scan_unroll = pad.steps
        ev_unrolled = Evaluator(model)
        flops = _flops(ev_unrolled._counts.lower(params, batch))
        model.scan_unroll = 1
        out["eval"] = {"graphs_per_s": batch_size / seconds, "compile_s": t_compile, "flops_per_batch": flops,
                       "gflops_per_s": flops / seconds / 1e9,
                       "estimate_bytes": estimate_bytes(pad, hidden, False, tf, processor=processor)}
        if profile:
            out["eval"]["profile"] = eval_profile
    out["peak_memory_bytes"] = peak_memory_bytes()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="nar bench speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--algorithm", default="bfs", help="algorithm to time (default bfs)")
    p.add_argument("--processor", default="mpnn", help="processor to time (default mpnn)")
    p.add_argument("--message-graph", choices=("complete", "input"),
                   help="graph the messages run over (default: the processor's)")
    p.add_argument("--graph", help="graph family (default: CLRS's er); sparse_er uses --degree")
    p.add_argument("--degree", type=float, default=5.0, help="sparse_er's expected degree (default 5)")
    p.add_argument("--num-nodes", type=int, default=16, help="nodes per graph (default 16)")
    p.add_argument("--batch-size", type=int, default=32, help="graphs per batch (default 32)")
    p.add_argument("--hidden", type=int, default=128, help="model width (default 128)")
    p.add_argument("--steps", type=int, default=10, help="timed train steps")
    p.add_argument("--mode", choices=("both", "train", "eval"), default="both",
                   help="what to time (default both)")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                   help="the model's matmul operands (model.dtype, default float32)")
    p.add_argument("--matmul", action="store_true", help="also measure the matmul rate (of --dtype operands)")
    p.add_argument("--profile", action="store_true",
                   help="also list the XLA instructions that take the time (CPU), per mode")
    p.add_argument("--json", action="store_true", help="the measurements as JSON")
    args = p.parse_args(argv)
    try:
        if not 0 <= args.degree < math.inf:
            raise ValueError(f"--degree must be a finite number >= 0, got {args.degree}")
        res = bench(args.algorithm, args.processor, args.num_nodes, args.batch_size, args.hidden, args.message_graph,
                    args.graph, args.degree, args.steps, args.mode, profile=args.profile, dtype=args.dtype)
    except (ValueError, MemoryError) as e:
        print(f"nar bench speed: error: {e}", file=sys.stderr)
        return 2
    if args.matmul:
        res["matmul_gflops_per_s"] = matmul_gflops(dtype=args.dtype)
    res["environment"] = environment()
    res["command"] = "nar bench speed " + " ".join(sys.argv[3:] if argv is None else argv)
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    print(f"{res['algorithm']} / {res['processor']} ({res['message_graph']} graph, {res['graph']}), "
          f"n={res['num_nodes']}, batch {res['batch_size']}, hidden {res['hidden']}, {res['dtype']}, "
          f"padded {res['padded']}")
    if "train" in res:
        t = res["train"]
        print(f"  train: {t['steps_per_s']:.2f} steps/s, compile {t['compile_s']:.1f}s, "
              f"{t['flops_per_step'] / 1e9:.2f} GFLOP/step, {t['gflops_per_s']:.1f} GFLOP/s")
    if "eval" in res:
        e = res["eval"]
        print(f"  eval:  {e['graphs_per_s']:.1f} graphs/s, compile {e['compile_s']:.1f}s, "
              f"{e['flops_per_batch'] / 1e9:.2f} GFLOP/batch, {e['gflops_per_s']:.1f} GFLOP/s")
    for mode in ("train", "eval"):
        if "profile" in res.get(mode, {}):
            print(format_op_times(res[mode]["profile"], mode))
    print(f"  peak memory {res['peak_memory_bytes'] / 2**20:.0f} MiB"
          + (f", matmul {res['matmul_gflops_per_s']:.1f} GFLOP/s" if "matmul_gflops_per_s" in res else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
