"""`make demo`: train BFS with `pgn_mask` on a small budget and print the out-of-distribution table.

Trains on CLRS's training distribution (n = 4..16, ER density 0.1..0.9) for a few hundred steps (a few minutes on
two CPU cores), keeps the best-validation parameters, then evaluates at n = 16 (in distribution), 64 (CLRS's test
split, bit for bit) and on sparse graphs of 256 and 1,024 nodes (expected degree 5). `pgn_mask` is PGN on the
sparse input graph plus self-loops (neighbours-only pointers), whose memory grows with edges; CLRS's `pgn` decodes
pointers over all n^2 pairs of nodes.
"""

from __future__ import annotations

import shutil
import sys
import time

from nar.config import load
from nar.evaluate import evaluate_sizes, format_table
from nar.train import Trainer, load_run

RUN_DIR = "runs/demo"
SETTINGS = ["model.algorithm=bfs", "model.processor=pgn_mask", "train.steps=200", "train.eval_every=50",
            "train.checkpoint_every=100", "eval.sizes=[16, 64, 256, 1024]"]


def main() -> None:
    """`make demo`: train, then print the out-of-distribution table (module docstring)."""
    config = load(None, SETTINGS)
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    print(f"Training bfs / pgn_mask for {config.train.steps} steps into {RUN_DIR} "
          f"(equivalent: nar train --algorithm bfs --processor pgn_mask --steps {config.train.steps} --out {RUN_DIR})",
          file=sys.stderr)
    t0 = time.perf_counter()
    summary = Trainer(config, RUN_DIR).run()
    print(f"trained in {time.perf_counter() - t0:.0f}s: best validation score {summary['best_val_score']:.4f} at "
          f"step {summary['best_step']}, {summary['compiles']} compiles", file=sys.stderr)
    model, params, config = load_run(RUN_DIR)
    t0 = time.perf_counter()
    results = evaluate_sizes(model, params, config.eval)
    print(format_table(results, f"BFS / pgn_mask after {config.train.steps} steps: out-of-distribution scores "
                                f"(evaluated in {time.perf_counter() - t0:.0f}s; same as `nar eval {RUN_DIR}`)"))


if __name__ == "__main__":
    main()
