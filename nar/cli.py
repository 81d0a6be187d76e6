"""The `nar` command: a thin shell over the Python API.

    nar generate SUITE ...                     write a dataset suite (`nar.data.suites`)
    nar train --config A/P ...                 train a model into a run directory (resumable)
    nar config show A/P [--set ...]            print the resolved config a run would use (TOML)
    nar eval DIR [--sizes 16,64,256] ...       out-of-distribution table of a trained run (node-level score
                                               and graph-level exact match per size)
    nar bench run SUITE ...                    accuracy benchmark cells (suites quick, full), resumable
    nar bench speed ...                        train/eval speed, compile time, memory and FLOPs
    nar bench suite-speed ...                  `make bench-speed`: every processor at n = 16 ... 1,024
    nar bench fsa-distance ...                 GraphFSA on its paper's Distance task, with the learned table
    nar bench time-to-accuracy ...             training wall time until the n = 64 score reaches a threshold

Both `train` and `eval` run data parallel over every device they see, and take --cpu-devices (simulated CPU
devices) and --num-processes/--process-id/--coordinator (a multi-process run; process 0 writes and prints).
Results go to stdout, progress, warnings and errors to stderr; exit codes are in `EXIT_CODES`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from importlib.metadata import version
from pathlib import Path

# `nar bench <name>`: the module whose main() runs it.
BENCHES = {"run": "nar.bench.suite", "speed": "nar.bench.speed", "suite-speed": "nar.bench.speed_suite",
           "fsa-distance": "nar.bench.fsa_distance", "scale": "nar.bench.scale",
           "time-to-accuracy": "nar.bench.time_to_accuracy"}
EXIT_CODES = """exit status: 0 success; 1 a runtime failure (a failed benchmark cell, a process of a multi-process
run that never joined, any other error); 2 a usage or config error (a bad option, an unknown name or key, a value
out of range, a plan too big for memory); 130 and 143 a training run stopped by Ctrl-C or SIGTERM (after a
checkpoint)."""


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes must be comma-separated integers, got {text!r}") from None
    if not sizes or min(sizes) < 2:
        raise argparse.ArgumentTypeError(f"sizes must be integers >= 2, got {text!r}")
    return sizes


@contextlib.contextmanager
def _native_stdout_to_stderr():
    """Native code's prints (Gloo's lines as the processes of a multi-process run connect) go to stderr, so stdout
    holds only nar's own output and `--json` stays parseable: file descriptor 1 becomes stderr while `sys.stdout`
    keeps writing to the real stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    real, sys.stdout = sys.stdout, open(saved, "w", closefd=False)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stdout = real
        os.dup2(saved, 1)
        os.close(saved)


def _resolved(args):
    """The config `nar train` and `nar config show` resolve: --config (a name or a file; without one the name
    --algorithm/--processor), then the flags, then --set."""
    from nar.config import ModelConfig, load, load_run_config

    flags = {"model": {}, "train": {}}
    for key, section, name in (("algorithm", "model", "algorithm"), ("processor", "model", "processor"),
                               ("steps", "train", "steps"), ("seed", "train", "seed"),
                               ("message_graph", "model", "message_graph")):
        if getattr(args, key, None) is not None:
            flags[section][name] = getattr(args, key)
    source = args.config
    if getattr(args, "resume", False) and source is None:  # continue with the run's own config; flags override
        from nar.train import CONFIG_FILE

        saved = Path(args.out) / CONFIG_FILE
        if not saved.is_file():
            raise FileNotFoundError(f"cannot resume: {saved} does not exist (no run in {args.out})")
        source = load_run_config(saved)
    if source is None:
        source = f"{args.algorithm or ModelConfig.algorithm}/{args.processor or ModelConfig.processor}"
    return load(source, args.set, **flags)


def _train(args) -> int:
    from nar.train import Trainer

    config = _resolved(args)
    summary = Trainer(config, args.out, resume=args.resume, progress=not args.quiet).run()
    print(json.dumps(summary))
    return 0


def _config_show(args) -> int:
    print(_resolved(args).to_toml(), end="")
    return 0


def _eval(args) -> int:
    import dataclasses

    from nar.config import from_dict, load_run_config
    from nar.distributed import is_main_process
    from nar.evaluate import evaluate_sizes, format_table
    from nar.model.memory import check_evaluation_fits, check_plan
    from nar.train import CONFIG_FILE, load_run

    overrides = {"eval": {k: v for k, v in (("sizes", args.sizes), ("graph", args.graph), ("degree", args.degree),
                                             ("samples", args.samples)) if v is not None}}
    if args.gate is not None:
        overrides["eval"]["closed_gate"] = args.gate == "closed"
    saved = Path(args.run) / CONFIG_FILE
    if saved.is_file():  # refuse what cannot fit before building the model or drawing a graph (else load_run says)
        planned = from_dict(overrides, load_run_config(saved))
        if args.data:  # the stored graphs' sizes are known once read; `batches` checks them then
            check_plan(planned.model, False)
        else:
            check_evaluation_fits(planned.model, planned.eval)
    model, params, config = load_run(args.run, "params" if args.last else "best_params")
    cfg = from_dict(overrides, config).eval
    main_process = is_main_process()  # every process evaluates its share; process 0 alone prints
    log = None if args.json or not main_process else (lambda m: print(m, file=sys.stderr))
    if args.data:
        from nar.evaluate import evaluate_dataset

        # Keyed by dataset and size: two datasets of one size stay apart.
        results = {f"{path}:{n}": r for path in args.data for n, r in evaluate_dataset(model, params, path,
                                                                                        cfg).items()}
    else:
        results = evaluate_sizes(model, params, cfg, log=log)
    if not main_process:
        return 0
    if args.table:
        if not hasattr(model, "describe"):
            raise ValueError(f"--table needs a GraphFSA run; {args.run} uses {config.model.processor}")
        from flax import nnx

        from nar.evaluate import batches, test_set

        n = cfg.sizes[0]
        batch = batches(test_set(config.model.algorithm, n, cfg), config.model, cfg.batch_size,
                        cfg.max_edges_per_batch)[0]
        print(f"learned automaton, transitions used on the n={n} test graphs:")
        print(nnx.merge(nnx.split(model)[0], params).describe(batch))
    if args.json:
        print(json.dumps({"run": str(args.run), "algorithm": config.model.algorithm,
                          "processor": config.model.processor, "eval": dataclasses.asdict(cfg),
                          "results": {str(n): r for n, r in results.items()}}, indent=1))
    else:
        print(format_table(results, f"{config.model.algorithm} / {config.model.processor} "
                                    f"({'last' if args.last else 'best-validation'} parameters)"))
    return 0


def _device_flags(p: argparse.ArgumentParser) -> None:
    """Data parallelism: simulated CPU devices and joining a multi-process run (`nar.distributed`)."""
    p.add_argument("--cpu-devices", dest="cpu_devices", type=int,
                   help="simulate N CPU devices (data parallelism on CPU; set before JAX starts)")
    p.add_argument("--num-processes", dest="num_processes", type=int,
                   help="processes of a multi-process run (default: JAX_NUM_PROCESSES, else 1)")
    p.add_argument("--process-id", dest="process_id", type=int, help="this process's id, 0..P-1 (JAX_PROCESS_ID)")
    p.add_argument("--coordinator", metavar="HOST:PORT",
                   help="process 0's address (JAX_COORDINATOR_ADDRESS); 'auto' on clusters JAX detects (SLURM, TPU)")
    p.add_argument("--init-timeout", dest="init_timeout", type=float, metavar="SECONDS",
                   help="give up (exit 1, naming the missing processes) if not every process has joined by then "
                        "(default: NAR_INIT_TIMEOUT, else 300)")


def _cache_flag(p: argparse.ArgumentParser) -> None:
    """The persistent cache of compiled programs (`nar.compile_cache`)."""
    p.add_argument("--compile-cache", dest="compile_cache", metavar="DIR",
                   help="keep compiled programs in DIR and reuse them in later runs of the same shapes "
                        "(default: $NAR_COMPILE_CACHE, else none)")


def _start_devices(args) -> bool:
    """Device setup that must precede JAX's backend: simulated CPU devices, then joining a multi-process run
    (True when this is one)."""
    from nar import distributed

    if args.cpu_devices is not None:
        distributed.set_cpu_devices(args.cpu_devices)
    return distributed.initialize(args.num_processes, args.process_id, args.coordinator, args.init_timeout)


def _names(kind: str) -> list[str]:
    """The registered algorithms or processors (read when the parser is built: ones registered at run time, before
    `main`, are choices too)."""
    from nar.processors import PROCESSORS
    from nar.specs import SPECS

    return list(SPECS if kind == "algorithm" else PROCESSORS)


def _config_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config key, e.g. train.steps=500 (repeatable; applied last)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nar", description="Neural algorithmic reasoning on graphs, in JAX.",
                                epilog=EXIT_CODES)
    p.add_argument("--version", action="version", version=f"%(prog)s {version('nar')}",
                   help="print nar's version and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("generate", help="write a dataset suite (see `nar generate --help`)", add_help=False)
    algorithms, processors = _names("algorithm"), _names("processor")
    t = sub.add_parser("train", help="train a model into a run directory", epilog=EXIT_CODES)
    t.add_argument("--config", metavar="NAME|FILE",
                   help="ALGORITHM/PROCESSOR (e.g. bfs/mpnn: the config shipped with nar, see `nar config show`) "
                        "or a TOML file; default: the name --algorithm/--processor give")
    t.add_argument("--algorithm", choices=algorithms, metavar="ALGORITHM",
                   help=f"the algorithm to learn (default bfs): {', '.join(algorithms)}")
    t.add_argument("--processor", choices=processors, metavar="PROCESSOR",
                   help=f"the processor (default mpnn): {', '.join(processors)}")
    t.add_argument("--message-graph", dest="message_graph", choices=("complete", "input"),
                   help="the graph messages run over: %(choices)s (default: the processor's; sorts: complete)")
    t.add_argument("--steps", type=int, help="training steps (train.steps)")
    t.add_argument("--seed", type=int, help="training seed (train.seed)")
    _config_flags(t)
    t.add_argument("--out", required=True, help="run directory (config, metrics.jsonl, checkpoints)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    _cache_flag(t)
    _device_flags(t)
    t.set_defaults(func=_train)
    e = sub.add_parser("eval", help="evaluate a trained run at several graph sizes", epilog=EXIT_CODES)
    e.add_argument("run", help="run directory written by `nar train`")
    e.add_argument("--sizes", type=_sizes, help="comma-separated test sizes (default: the run's eval.sizes)")
    e.add_argument("--graph", help="graph family ('auto': CLRS's ER up to n=64, sparse_er beyond)")
    e.add_argument("--degree", type=float, help="expected degree of sparse_er graphs")
    e.add_argument("--samples", type=int, help="test graphs per size")
    e.add_argument("--data", action="append", help="a stored dataset folder (e.g. from `nar generate clrs30`) "
                   "instead of drawing test sets; repeatable (results keyed FOLDER:SIZE)")
    e.add_argument("--gate", choices=("learned", "closed"),
                   help="G-ForgetNet: run with the learned history gate or with it shut (pure Markov)")
    e.add_argument("--table", action="store_true",
                   help="GraphFSA: print the learned automaton (transitions used on the first size's test graphs)")
    e.add_argument("--last", action="store_true", help="the last parameters instead of the best-validation ones")
    e.add_argument("--json", action="store_true", help="results as JSON: per size 'score' (node-level), 'exact' "
                   "(graph-level exact match), per output and per hint")
    _cache_flag(e)
    _device_flags(e)
    e.set_defaults(func=_eval)
    c = sub.add_parser("config", help="show the resolved config a run would use", epilog=EXIT_CODES)
    show = c.add_subparsers(dest="action", required=True, metavar="ACTION").add_parser(
        "show", help="print the resolved config (TOML, as a run's config.toml keeps it)", epilog=EXIT_CODES)
    show.add_argument("config", metavar="NAME|FILE", help="ALGORITHM/PROCESSOR (e.g. bfs/mpnn) or a TOML file")
    _config_flags(show)
    show.set_defaults(func=_config_show)
    k = sub.add_parser("compile", help="write a compiled (hand-set, exact) BFS or Bellman-Ford model as a run "
                       "directory", epilog=EXIT_CODES)
    k.add_argument("algorithm", choices=("bfs", "bellman_ford"), help="the algorithm to compile: %(choices)s")
    k.add_argument("--processor", default="mpnn", choices=("mpnn", "pgn", "pgn_mask", "gmpnn", "triplet_mpnn",
                                                            "triplet_gmpnn"),
                   help="the MPNN-family processor that runs it (default mpnn): %(choices)s")
    k.add_argument("--message-graph", dest="message_graph", choices=("complete", "input"),
                   help="the graph messages run over (default: the processor's; 'input' scales to large n)")
    k.add_argument("--out", required=True, help="run directory to write (then `nar eval OUT` evaluates it)")
    k.set_defaults(func=_compile)
    m = sub.add_parser("compare", help="a trained run against the compiled model of its algorithm, per step",
                       epilog=EXIT_CODES)
    m.add_argument("run", help="run directory written by `nar train` (BFS or Bellman-Ford)")
    m.add_argument("--compiled", action="store_true", required=True,
                   help="compare with the compiled model (the only reference so far; required)")
    m.add_argument("--sizes", type=_sizes, default=(16, 64), help="comma-separated test sizes (default 16,64)")
    m.add_argument("--samples", type=int, default=32, help="test graphs per size (default 32)")
    m.add_argument("--plot", help="PNG of agreement and state similarity per step (default RUN/compare_compiled.png)")
    m.add_argument("--last", action="store_true", help="the last parameters instead of the best-validation ones")
    m.add_argument("--json", action="store_true", help="the per-step rows as JSON instead of a table")
    m.set_defaults(func=_compare)
    sub.add_parser("bench", help="benchmarks: `nar bench run|speed|suite-speed|fsa-distance|scale|"
                   "time-to-accuracy --help`", add_help=False)
    return p


def _compile(args) -> int:
    from nar.compiled import save_compiled

    out = save_compiled(args.out, args.algorithm, args.processor, args.message_graph)
    print(f"compiled {args.algorithm} ({args.processor}) written to {out}; evaluate it with `nar eval {out}`",
          file=sys.stderr)
    return 0


def _compare(args) -> int:
    from nar.compare import compare_run, format_comparison, plot_comparison
    from nar.train import load_run

    model, params, config = load_run(args.run, "params" if args.last else "best_params")
    results = compare_run(model, params, config, args.sizes, args.samples)
    plot = Path(args.plot or Path(args.run) / "compare_compiled.png")
    plot_comparison(results, plot, f"{args.run}: {config.model.algorithm} / {config.model.processor} vs compiled")
    if args.json:
        from nar.training.run_dir import strict

        print(json.dumps({str(n): {**r, "steps": [strict(row) for row in r["steps"]]} for n, r in results.items()},
                         indent=1, allow_nan=False))  # a step without held-out graphs has no probe R^2: null
    else:
        print(format_comparison(results))
    print(f"plot: {plot}", file=sys.stderr)
    return 0


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] == "generate":
        from nar.data.suites import main as generate

        return generate(argv[1:])
    if argv and argv[0] == "bench":
        if len(argv) < 2 or argv[1] not in BENCHES:
            print(f"usage: nar bench {'|'.join(BENCHES)} [options]  (see `nar bench run --help`)", file=sys.stderr)
            return 2
        import importlib

        return importlib.import_module(BENCHES[argv[1]]).main(argv[2:])
    args = _parser().parse_args(argv)
    if hasattr(args, "compile_cache"):  # train, eval: before the first compilation
        from nar.compile_cache import use_compile_cache

        use_compile_cache(args.compile_cache)
    multi_process = hasattr(args, "cpu_devices") and _start_devices(args)  # train, eval: before JAX's backend
    with _native_stdout_to_stderr() if multi_process else contextlib.nullcontext():
        return args.func(args)


def main(argv=None) -> int:
    """The `nar` command: parse `argv` (default: sys.argv), run the subcommand, return its exit status
    (`EXIT_CODES`: 2 for usage and config errors, 1 for other failures)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = "nar" + (f" {argv[0]}" if argv and not argv[0].startswith("-") else "")
    try:
        return _dispatch(argv)
    except (ValueError, FileNotFoundError, FileExistsError, MemoryError) as e:  # incl. CorruptDatasetError
        print(f"{command}: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # a runtime failure: one line, not a traceback
        print(f"{command}: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
