"""`nar bench time-to-accuracy`: training wall time until the test score at n = 64 first reaches a threshold, nar
beside dm-clrs on the same seeds, test graphs and protocol.

nar trains with the shipped `ALGORITHM/PROCESSOR` config (the CLRS protocol) and, at every validation (every
`--eval-every` steps), scores the current parameters on the test set of size `--test-n` (CLRS's ER graphs, seed 3:
CLRS30's test split at n = 64). The clock counts building the trainer, data waits, compilation and training steps;
it stops during validations and these test evaluations. With `--dmclrs-python`, dm-clrs's BaselineModel is trained
the same way in its own virtualenv (`benchmarks/dmclrs_time_to_accuracy.py`, a source checkout only), scored on the
same graphs from clrs's own sampler. One JSON file: per seed and library, the curve [step, seconds, score] and the
first step at or above the threshold (null if `--max-steps` ran out first).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

from nar.bench import dmclrs_script, environment
from nar.bench.child import ChildError, run_child


class _Reached(Exception):
    """Raised from the validation hook to end training once the threshold is reached."""


def nar_run(algorithm: str, processor: str, seed: int, threshold: float, max_steps: int, eval_every: int,
            test_n: int, sets: tuple[str, ...] = ()) -> dict:
    """One nar training of `algorithm/processor` at `seed`, scored at n = `test_n` every `eval_every` steps;
    `sets`: more `key=value` changes to the config (after the ones this function makes)."""
    from nar.config import load
    from nar.evaluate import test_set
    from nar.train import Trainer
    from nar.training.data import batches

    cfg = load(f"{algorithm}/{processor}", [f"train.seed={seed}", f"train.steps={max_steps}",
                                             f"train.eval_every={eval_every}", f"train.checkpoint_every={max_steps}",
                                             *sets])
    tb = test_set(algorithm, test_n, cfg.eval)
    curve, reached = [], None
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        trainer = Trainer(cfg, Path(tmp) / "run", progress=False)
        setup = time.perf_counter() - t0
        test = trainer.evaluator.place(batches(tb, cfg.model, cfg.eval.batch_size, cfg.eval.max_edges_per_batch))

        def on_validation(step, params):
            nonlocal reached
            spent = trainer.clock.seconds
            seconds = setup + spent["data"] + spent["compile"] + spent["train"]
            score = float(trainer.evaluator(params, test)["score"])
            curve.append([step, round(seconds, 2), round(score, 4)])
            if score >= threshold:
                reached = {"step": step, "seconds": round(seconds, 2), "score": score}
                raise _Reached

        try:
            trainer.run(on_validation=on_validation)
        except _Reached:
            pass
    return {"curve": curve, "reached": reached}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="nar bench time-to-accuracy", description=__doc__.split("\n\n")[0])
    p.add_argument("--algorithm", default="bellman_ford", help="algorithm to train (default bellman_ford)")
    p.add_argument("--processor", default="mpnn", help="a processor dm-clrs has under the same name (mpnn, pgn, "
                   "triplet_gmpnn) to compare; any nar processor without --dmclrs-python")
    p.add_argument("--seeds", default="1", help="comma-separated training seeds (default 1)")
    p.add_argument("--threshold", type=float, default=0.92, help="test score to reach (default 0.92)")
    p.add_argument("--max-steps", type=int, default=2000, help="training steps at most (default 2000)")
    p.add_argument("--eval-every", type=int, default=50, help="steps between test evaluations (default 50)")
    p.add_argument("--test-n", type=int, default=64, help="test graph size (default 64: CLRS30's test split)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds for each dm-clrs run")
    p.add_argument("--dmclrs-python", help="python of a throwaway virtualenv holding dm-clrs")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="change nar's config (repeatable; not with --dmclrs-python, whose side it would not change)")
    p.add_argument("--out", required=True, help="JSON file to write")
    args = p.parse_args(argv)
    if not 0 < args.threshold <= 1 or args.max_steps < 1 or not 1 <= args.eval_every <= args.max_steps:
        print("nar bench time-to-accuracy: error: need 0 < --threshold <= 1 and 1 <= --eval-every <= --max-steps",
              file=sys.stderr)
        return 2
    if args.set and args.dmclrs_python:
        print("nar bench time-to-accuracy: error: --set changes nar's side only; with --dmclrs-python the two sides "
              "would not do the same work", file=sys.stderr)
        return 2
    try:
        script = dmclrs_script("dmclrs_time_to_accuracy.py") if args.dmclrs_python else None
    except FileNotFoundError as e:
        print(f"nar bench time-to-accuracy: error: {e}", file=sys.stderr)
        return 2
    command = "nar bench time-to-accuracy " + " ".join(sys.argv[3:] if argv is None else argv)
    runs = []
    for seed in (int(s) for s in args.seeds.split(",")):
        run = {"seed": seed, "nar": nar_run(args.algorithm, args.processor, seed, args.threshold, args.max_steps,
                                            args.eval_every, args.test_n, tuple(args.set))}
        if script:
            job = {"algorithm": args.algorithm, "processor": args.processor, "seed": seed,
                   "threshold": args.threshold, "max_steps": args.max_steps, "eval_every": args.eval_every,
                   "test_n": args.test_n, "test_samples": 32, "test_seed": 3}
            try:
                run["dm_clrs"] = json.loads(run_child([args.dmclrs_python, script, json.dumps(job)],
                                                      timeout=args.timeout))
            except ChildError as e:
                run["dm_clrs"] = {"error": e.reason}
        runs.append(run)
        for lib in [x for x in ("nar", "dm_clrs") if x in run]:
            got = run[lib].get("reached")
            print(f"seed {seed} {lib}: " + (f"{got['score']:.4f} at step {got['step']}, {got['seconds']:.1f} s"
                                            if got else "threshold not reached"), flush=True)
    Path(args.out).write_text(json.dumps({
        "algorithm": args.algorithm, "processor": args.processor, "threshold": args.threshold,
        "test_n": args.test_n, "eval_every": args.eval_every, "max_steps": args.max_steps, "set": args.set,
        "runs": runs,
        "environment": environment(), "date": datetime.date.today().isoformat(), "command": command}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
