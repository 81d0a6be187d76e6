"""`nar bench time-to-accuracy` and the trainer's validation hook it stands on."""

import json

import jax
import numpy as np

from nar.bench import time_to_accuracy
from nar.config import load
from nar.train import Trainer

SMALL = ("model.hidden=8", "train.sizes=[4,5]", "train.batch_size=4", "train.val_samples=4", "eval.samples=4")


def test_validation_hook_sees_the_parameters_of_its_step(tmp_path):
    cfg = load("bfs/mpnn", ["train.steps=4", "train.eval_every=2", *SMALL])
    seen = []
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    trainer.run(on_validation=lambda step, params: seen.append((step, params)))
    assert [s for s, _ in seen] == [2, 4]
    last = seen[-1][1]  # the hook at the last step gets the parameters training ends with
    for a, b in zip(leaves(last), leaves(trainer.params)):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(leaves(seen[0][1]), leaves(last)))  # step 2's differ


def leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_curve_and_threshold(tmp_path):
    # Threshold 0: the first evaluation reaches it, and training stops there.
    got = time_to_accuracy.nar_run("bfs", "mpnn", 1, 0.0, 6, 2, 16, SMALL)
    assert [row[0] for row in got["curve"]] == [2] and got["reached"]["step"] == 2
    # Unreachable: every evaluation is on the curve, the seconds grow, the scores are fractions.
    got = time_to_accuracy.nar_run("bfs", "mpnn", 1, 1.0 + 1e-9, 6, 2, 16, SMALL)
    steps, seconds, scores = zip(*got["curve"])
    assert steps == (2, 4, 6) and got["reached"] is None
    assert 0 < seconds[0] < seconds[1] < seconds[2] and all(0 <= s <= 1 for s in scores)


def test_cli_writes_the_runs_and_refuses_bad_input(tmp_path, capsys):
    out = tmp_path / "tta.json"
    argv = ["--algorithm", "bfs", "--max-steps", "2", "--eval-every", "2", "--test-n", "16", "--out", str(out)]
    assert time_to_accuracy.main(argv + [f"--set={s}" for s in SMALL]) == 0
    data = json.loads(out.read_text())
    assert data["runs"][0]["seed"] == 1 and "dm_clrs" not in data["runs"][0]
    assert data["command"].startswith("nar bench time-to-accuracy")
    assert time_to_accuracy.main(argv + ["--threshold", "1.5"]) == 2
    assert time_to_accuracy.main(argv + ["--set", "model.hidden=8", "--dmclrs-python", "python3"]) == 2
    assert "would not do the same work" in capsys.readouterr().err
