"""Writes tests/fixtures/clrs_text/: CLRS-Text question/answer strings written by dm-clrs 2.0.3 itself, which
tests/test_clrs_text.py compares `nar.clrs_text` against, character for character, without dm-clrs installed.

Run ONLY with the python of a throwaway virtualenv holding dm-clrs (nar never imports this file):

    python3 -m venv /tmp/clrsenv
    /tmp/clrsenv/bin/pip install jax==0.10.2 jaxlib==0.10.2 dm-haiku optax chex attrs absl-py numpy ml_collections six
    /tmp/clrsenv/bin/pip install --no-deps dm-clrs==2.0.3
    /tmp/clrsenv/bin/python benchmarks/clrs_text_fixtures.py          # writes tests/fixtures/clrs_text/

Samples come from dm-clrs's own samplers the way its CLRS-Text generators draw them (batch 1,
`track_max_steps=False`: the formatter cannot read padded hints), and are formatted by
`clrs._src.clrs_text.clrs_utils.format_clrs_example` with and without hints. Two samplers of one seed, one without
and one with `truncate_decimals=3`, draw the same graphs and keys (truncation draws nothing), so every case stores
the raw inputs once and the strings of both: `nar.clrs_text(..., truncate_decimals=3)` on the raw inputs must give
the truncated strings. Inputs are stored as JSON lists, which keep dm-clrs's dtypes (BFS/DFS adjacency integers,
weights and keys floats, every float's repr exact).
"""

from __future__ import annotations

import json
import sys
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "clrs_text"
ALGORITHMS = ("bfs", "dfs", "bellman_ford", "insertion_sort", "bubble_sort", "heapsort", "quicksort")
SIZES = (4, 5, 8, 12, 16)
DECIMALS = (None, 3)
# Samples per size: fewer at the sizes whose hint traces are long (the sorts' traces grow like n^2 characters).
SAMPLES = {4: 3, 5: 3, 8: 2, 12: 1, 16: 1}
MAX_BYTES = 500_000


def _load_clrs():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from dmclrs_samplers import bypass_clrs_init  # stdlib only: no nar import

    bypass_clrs_init()
    import types

    from clrs._src import samplers

    # The clrs_text package `__init__` imports its generator script's dependencies (tqdm); only the formatter is used.
    package = types.ModuleType("clrs._src.clrs_text")
    package.__path__ = [str(Path(samplers.__file__).parent / "clrs_text")]
    sys.modules["clrs._src.clrs_text"] = package
    from clrs._src.clrs_text import clrs_utils

    return samplers, clrs_utils


def _inputs(sample) -> dict:
    """The executor arguments of a batch-1 sample, as JSON lists: A and the source index, or the keys."""
    data = {dp.name: dp.data[0] for dp in sample.features.inputs}
    if "key" in data:
        return {"key": data["key"].tolist()}
    out = {"A": data["A"].tolist()}
    if "s" in data:
        out["s"] = int(np.argmax(data["s"]))
    return out


def _cases(samplers, clrs_utils, algorithm: str, n: int, seed: int) -> list[dict]:
    drawn = {}
    for d in DECIMALS:
        sampler, _ = samplers.build_sampler(algorithm, num_samples=-1, length=n, seed=seed,
                                            track_max_steps=False, truncate_decimals=d)
        drawn[d] = [sampler.next(batch_size=1) for _ in range(SAMPLES[n])]
    cases = []
    for k, raw in enumerate(drawn[None]):
        case = {"n": n, "seed": seed, "index": k, "inputs": _inputs(raw), "text": {}}
        for d in DECIMALS:
            sample = drawn[d][k]
            case["text"][str(d)] = {
                hints: list(clrs_utils.format_clrs_example(algorithm, sample, use_hints=hints == "hints"))
                for hints in ("plain", "hints")
            }
        cases.append(case)
    return cases


def main() -> None:
    samplers, clrs_utils = _load_clrs()
    OUT.mkdir(parents=True, exist_ok=True)
    total = 0
    for a, algorithm in enumerate(ALGORITHMS):
        cases = [c for i, n in enumerate(SIZES) for c in _cases(samplers, clrs_utils, algorithm, n, 100 * a + i)]
        doc = {"algorithm": algorithm, "dm_clrs": metadata.version("dm-clrs"), "numpy": np.__version__,
               "command": "python benchmarks/clrs_text_fixtures.py",
               "sampler": "build_sampler(algorithm, num_samples=-1, length=n, seed=seed, track_max_steps=False, "
                          "truncate_decimals=d).next(batch_size=1), the index-th sample",
               "text": "format_clrs_example(algorithm, sample, use_hints) for d in {None, 3}, without/with hints",
               "cases": cases}
        path = OUT / f"{algorithm}.json"
        path.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
        total += path.stat().st_size
        print(f"{path.relative_to(ROOT)}: {len(cases)} cases, {path.stat().st_size} bytes")
    if total > MAX_BYTES:
        raise SystemExit(f"fixtures total {total} bytes, over the {MAX_BYTES} budget: store fewer samples")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
