"""Times dm-clrs's samplers; run ONLY with the python of a throwaway virtualenv that has dm-clrs installed.

`python dmclrs_samplers.py bfs,dfs 16,64` prints JSON rows {algorithm, n, traj_per_s}. dm-clrs imports
TensorFlow and Haiku at package level; its samplers need neither, so the package `__init__` is bypassed with
stub modules (the samplers and executors then run unchanged). nar never imports this file.
"""

import json
import sys
import time
import types
from pathlib import Path


def bypass_clrs_init() -> None:
    """Make `clrs._src.*` importable without running clrs's package `__init__` (which imports TensorFlow)."""
    import importlib.util

    root = Path(importlib.util.find_spec("clrs").submodule_search_locations[0])
    tf = types.ModuleType("tensorflow")
    tf.Tensor = type("Tensor", (), {})
    sys.modules.setdefault("tensorflow", tf)
    for name, path in (("clrs", root), ("clrs._src", root / "_src")):
        module = types.ModuleType(name)
        module.__path__ = [str(path)]
        sys.modules[name] = module


def _load_samplers():
    bypass_clrs_init()
    from clrs._src import samplers

    return samplers


def main() -> None:
    samplers = _load_samplers()
    rows = []
    for algorithm in sys.argv[1].split(","):
        for n in map(int, sys.argv[2].split(",")):
            if algorithm == "bubble_sort" and n > 256:
                continue
            num = max(2, min(200, int(2e5 / n**2)))
            t0 = time.perf_counter()
            samplers.build_sampler(algorithm, num_samples=num, length=n, seed=0)
            rows.append({"algorithm": algorithm, "n": n, "traj_per_s": round(num / (time.perf_counter() - t0), 2)})
    json.dump(rows, sys.stdout)


if __name__ == "__main__":
    main()
