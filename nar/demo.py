"""`make demo`: generate a small CLRS-style dataset per algorithm and print what it holds.

Later issues grow this into training and out-of-distribution evaluation; for now it shows the data path end to
end: sampler -> executor -> compact dataset, including one sparse graph of 1,024 nodes.
"""

from __future__ import annotations

import time

from nar.data import generate
from nar.specs import GRAPH_ALGORITHMS, SORTING_ALGORITHMS


def main() -> None:
    rows = []
    for algorithm in GRAPH_ALGORITHMS + SORTING_ALGORITHMS:
        for n, kwargs in ((16, {}), (64, {})):
            t0 = time.perf_counter()
            ds = generate(algorithm, 256, n, seed=0, **kwargs)
            rows.append((algorithm, "er" if algorithm in GRAPH_ALGORITHMS else "uniform keys", n, ds,
                         time.perf_counter() - t0))
    for algorithm in ("bfs", "bellman_ford"):
        t0 = time.perf_counter()
        ds = generate(algorithm, 32, 1024, seed=0, graph="sparse_er", degree=5)
        rows.append((algorithm, "sparse_er d=5", 1024, ds, time.perf_counter() - t0))
    print(f"{'algorithm':<15} {'graphs':<14} {'n':>5} {'samples':>7} {'T min/mean/max':>18} {'edges':>7} "
          f"{'MiB':>7} {'traj/s':>8}")
    for algorithm, family, n, ds, seconds in rows:
        s = ds.summary()
        lo, mean, hi = s["steps_min_mean_max"]
        print(f"{algorithm:<15} {family:<14} {n:>5} {len(ds):>7} {f'{lo}/{mean:.1f}/{hi}':>18} "
              f"{s['edges_mean']:>7.0f} {s['bytes'] / 2**20:>7.2f} {len(ds) / seconds:>8.0f}")
    t = rows[0][3][0]
    print(f"\nOne BFS trajectory (n={t.num_nodes}, T={t.length}): hints {sorted(t.hints)}, "
          f"reach_h per step = {t.hints['reach_h'].sum(axis=1).astype(int).tolist()}")


if __name__ == "__main__":
    main()
