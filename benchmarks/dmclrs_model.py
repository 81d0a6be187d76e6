"""Times dm-clrs's BaselineModel; run ONLY with the python of a throwaway virtualenv that has dm-clrs installed.

`python dmclrs_model.py ROWS_JSON [TIMEOUT_S]`, ROWS_JSON a list like [{"algorithm": "bfs", "processor": "mpnn",
"n": 16, "batch_size": 32, "mode": "train"}], prints the rows back as JSON with steps_per_s (mode "train":
model.feedback) or graphs_per_s (mode "eval": model.predict), compile_s (the first call), peak_rss_bytes and the
versions, so nar can show dm-clrs's figures beside its own. The model is built as dm-clrs's examples/run.py builds
it by default (hidden 128, hints encoded and decoded, soft repred, layer norm, 8 triplet features, lr 1e-3, grad
clip 1.0) on one batch of `batch_size` trajectories from clrs's default sampler of size n. Each row runs in its
own child process, so peak RSS is per row and a row that fails (raises, is killed for memory, or runs past
TIMEOUT_S seconds) only gets {"error": ...}. As in dmclrs_samplers.py, clrs's package `__init__` (which imports
TensorFlow) is bypassed with stub modules; the model itself needs Haiku and Optax. nar never imports this file.
"""

import json
import resource
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

K_STEPS = 5
REPEATS = 2


def _load_clrs():
    sys.path.insert(0, str(Path(__file__).parent))  # run as a script: its sibling holds the shared stub
    from dmclrs_samplers import bypass_clrs_init

    bypass_clrs_init()
    from clrs._src import baselines, processors, samplers

    return baselines, processors, samplers


def baseline_model(baselines, processors, spec, batch, processor: str, seed: int):
    """dm-clrs's BaselineModel as its examples/run.py builds it by default (module docstring), initialised on
    `batch`."""
    model = baselines.BaselineModel(
        spec=spec,
        dummy_trajectory=batch,
        processor_factory=processors.get_processor_factory(processor, use_ln=True, nb_triplet_fts=8),
        hidden_dim=128,
        encode_hints=True,
        decode_hints=True,
        encoder_init="xavier_on_scalars",
        learning_rate=1e-3,
        grad_clip_max_norm=1.0,
        hint_repred_mode="soft",
    )
    model.init(batch.features, seed=seed)
    return model


def _best(fn, block) -> float:
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        block(fn())
        times.append(time.perf_counter() - t0)
    return min(times)


def run_row(row: dict) -> dict:
    import jax

    baselines, processors, samplers = _load_clrs()
    n, batch_size = int(row["n"]), int(row["batch_size"])
    # The same ER distribution as nar's row (p = 0.5, CLRS's default, or degree / (n - 1) for sparse graphs).
    sampler, spec = samplers.build_sampler(row["algorithm"], num_samples=batch_size, length=n, seed=0,
                                           p=(float(row["p"]),))
    batch = sampler.next(batch_size)
    model = baseline_model(baselines, processors, spec, batch, row["processor"], seed=1)
    keys = iter(jax.random.split(jax.random.PRNGKey(0), 1 + K_STEPS * REPEATS))
    out = dict(row)
    if row["mode"] == "train":
        # feedback donates the old params; block on the new ones (and the loss) to time whole steps.
        def block(loss):
            jax.block_until_ready((loss, model._device_params))

        def steps():
            for _ in range(K_STEPS):
                loss = model.feedback(next(keys), batch)
            return loss

        t0 = time.perf_counter()
        block(model.feedback(next(keys), batch))
        out["compile_s"] = round(time.perf_counter() - t0, 3)
        out["steps_per_s"] = round(K_STEPS / _best(steps, block), 3)
    elif row["mode"] == "eval":
        key = next(keys)
        t0 = time.perf_counter()
        jax.block_until_ready(model.predict(key, batch.features))
        out["compile_s"] = round(time.perf_counter() - t0, 3)
        out["graphs_per_s"] = round(batch_size / _best(lambda: model.predict(key, batch.features),
                                                       jax.block_until_ready), 2)
    else:
        raise ValueError(f"mode must be 'train' or 'eval', not {row['mode']!r}")
    out["hint_steps"] = int(batch.features.hints[0].data.shape[0])
    out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out["backend"] = jax.default_backend()
    return out


def _versions() -> dict:
    return {k: metadata.version(p) for k, p in (("dm_clrs", "dm-clrs"), ("jax", "jax"), ("haiku", "dm-haiku"))}


def main() -> None:
    if sys.argv[1] == "--one":  # child: one row, one JSON object on stdout
        row = json.loads(sys.argv[2])
        try:
            out = run_row(row)
        except Exception as e:  # noqa: BLE001 - an error row, not a crash
            out = {**row, "error": f"{type(e).__name__}: {e}"[:2000]}
        print(json.dumps(out))
        return
    results = []
    timeout = float(sys.argv[2]) if len(sys.argv) > 2 else None
    for row in json.loads(sys.argv[1]):
        try:
            proc = subprocess.run([sys.executable, __file__, "--one", json.dumps(row)], capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            results.append({**row, "error": f"did not finish within {timeout:.0f} s", **_versions()})
            continue
        try:
            out = json.loads(proc.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            out = {**row, "error": f"child exited {proc.returncode}: {proc.stderr.strip()[-2000:]}"}
        results.append({**out, **_versions()})
    json.dump(results, sys.stdout)
    print()


if __name__ == "__main__":
    main()
