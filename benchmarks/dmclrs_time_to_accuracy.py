"""Time to accuracy of dm-clrs's BaselineModel; run ONLY with the python of a throwaway virtualenv holding dm-clrs.

`python dmclrs_time_to_accuracy.py JSON`, JSON an object like {"algorithm": "bellman_ford", "processor": "mpnn",
"seed": 1, "threshold": 0.92, "max_steps": 2000, "eval_every": 50, "test_n": 64, "test_samples": 32,
"test_seed": 3}, trains as dm-clrs's examples/run.py does by default for a graph algorithm (batch 32, sizes 4, 7,
11, 13, 16 in turn, edge probability from 0.1 ... 0.9, random `pos`, hidden 128, hints encoded and decoded, soft
repred, layer norm, lr 1e-3, grad clip 1.0) and every `eval_every` steps scores the model on one batch of
`test_samples` graphs of size `test_n` from clrs's sampler with `test_seed` (n = 64, seed 3: nar's test set, CLRS30's
test split). The clock runs over sampling and training steps (the first, compiling one included) and stops during
the evaluations. Prints one JSON object: the curve [step, seconds, score] and the first step reaching `threshold`.
nar never imports this file (`nar bench time-to-accuracy --dmclrs-python` runs it).
"""

import json
import sys
import time
from importlib import metadata
from pathlib import Path

GRAPH_P = tuple(0.1 + 0.1 * i for i in range(9))  # run.py's edge probabilities for the graph algorithms' training
TRAIN_SIZES = (4, 7, 11, 13, 16)


def main() -> None:
    sys.path.insert(0, str(Path(__file__).parent))  # run as a script: its siblings hold the stub and the model
    from dmclrs_model import baseline_model
    from dmclrs_samplers import bypass_clrs_init

    bypass_clrs_init()
    import jax
    import numpy as np
    from clrs._src import baselines, evaluation, processors, samplers

    cfg = json.loads(sys.argv[1])
    rng = np.random.RandomState(cfg["seed"])
    batch_size = 32
    train = []
    for n in TRAIN_SIZES:  # run.py's make_multi_sampler: one infinite sampler per size, cycled
        sampler, spec = samplers.build_sampler(cfg["algorithm"], seed=rng.randint(2**32), num_samples=-1, length=n,
                                               p=GRAPH_P)
        it = samplers.process_random_pos((sampler.next(batch_size) for _ in iter(int, 1)), rng)
        train.append(samplers.process_permutations(spec, it, True)[1])
    test_sampler, _ = samplers.build_sampler(cfg["algorithm"], seed=cfg["test_seed"],
                                             num_samples=cfg["test_samples"], length=cfg["test_n"])
    test = test_sampler.next(cfg["test_samples"])
    t0 = time.perf_counter()
    first = next(train[0])
    model = baseline_model(baselines, processors, spec, first, cfg["processor"], seed=cfg["seed"] + 1)
    key = jax.random.PRNGKey(cfg["seed"])
    seconds, curve, reached = time.perf_counter() - t0, [], None
    for step in range(1, cfg["max_steps"] + 1):
        t0 = time.perf_counter()
        batch = first if step == 1 else next(train[(step - 1) % len(train)])
        key, k = jax.random.split(key)
        jax.block_until_ready(model.feedback(k, batch))
        seconds += time.perf_counter() - t0
        if step % cfg["eval_every"] == 0:
            key, k = jax.random.split(key)
            preds, _ = model.predict(k, test.features)
            score = float(evaluation.evaluate(test.outputs, preds)["score"])
            curve.append([step, round(seconds, 2), round(score, 4)])
            if score >= cfg["threshold"]:
                reached = {"step": step, "seconds": round(seconds, 2), "score": score}
                break
    print(json.dumps({**cfg, "curve": curve, "reached": reached, "backend": jax.default_backend(),
                      "dm_clrs": metadata.version("dm-clrs"), "jax": jax.__version__}))


if __name__ == "__main__":
    main()
