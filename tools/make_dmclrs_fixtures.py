"""Writes tests/fixtures/dmclrs/: dm-clrs 2.0.3's own trajectories, which tests/test_dmclrs_parity.py compares nar's
executors and `stream="clrs"` generator against, probe for probe, without dm-clrs installed.

Run ONLY with the python of a throwaway virtualenv holding dm-clrs (nar never depends on it; this file is not part
of the installed package):

    python3 -m venv /tmp/clrsenv
    /tmp/clrsenv/bin/pip install dm-clrs==2.0.3 --no-deps
    /tmp/clrsenv/bin/pip install jax==0.10.2 jaxlib==0.10.2 numpy==2.4.6 chex attrs absl-py
    /tmp/clrsenv/bin/python tools/make_dmclrs_fixtures.py            # writes tests/fixtures/dmclrs/

dm-clrs's package `__init__` imports TensorFlow; its samplers, specs and executors need neither TF nor Haiku, so
the `__init__` is bypassed with stub modules (`benchmarks/dmclrs_samplers.py`). Two kinds of fixture per algorithm,
in `tests/fixtures/dmclrs/<algorithm>.npz`:

* `exec/<k>/...`: dm-clrs's executor (`clrs._src.algorithms.<algorithm>`) run on hand-picked and random inputs
  (tiny n = 1..3, ties, self-loops, disconnected graphs, isolated sources, directed/undirected, weighted, negative
  weights where the algorithm allows them): the arguments (`arg/A`, `arg/s`, `arg/key`), every probe dm-clrs emits
  (`input/<name>`, `output/<name>`, `hint/<name>` with the time axis) and `T`.
* `clrs30/<split>/<i>/...`: the first samples of CLRS30's train / val / test split, built exactly as dm-clrs's
  `CLRSDataset` builds them: `build_sampler(algorithm, num_samples, length=n, seed=seed).next()` with the split's
  `samplers.CLRS30` size and seed; hints cut to each sample's length (the padding is checked to be zeros).

Probes are stored in dm-clrs's dense encoding, with lossless compact dtypes: pointers int16 (node indices),
mask / mask_one / categorical int8 ({-1, 0, 1}, one-hot kept), scalars float64. Every conversion is checked exact.
`manifest.json` records the versions, this command, dm-clrs's spec of every algorithm ("stage/location/type"), and
a label, n and T per case (or the error dm-clrs raised, e.g. quicksort at n = 1).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ALGORITHMS = ("bfs", "dfs", "bellman_ford", "insertion_sort", "bubble_sort", "heapsort", "quicksort")
SPLIT_SAMPLES = 4  # first samples of each CLRS30 split stored
SEED = 20261203  # the random cases' RandomState


def _load_clrs():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from dmclrs_samplers import bypass_clrs_init  # stdlib only: no nar import

    bypass_clrs_init()
    from clrs._src import algorithms, probing, samplers, specs

    return algorithms, probing, samplers, specs


# --- inputs -------------------------------------------------------------------------------------------------------


def _undirected(n, edges, w=None):
    A = np.zeros((n, n))
    for k, (u, v) in enumerate(edges):
        A[u, v] = A[v, u] = 1.0 if w is None else w[k]
    return A


def _directed(n, edges, w=None):
    A = np.zeros((n, n))
    for k, (u, v) in enumerate(edges):
        A[u, v] = 1.0 if w is None else w[k]
    return A


def _clrs_er(rs, n, p, directed, weighted, low=0.0, high=1.0):
    """dm-clrs's own ER recipe (entries ~ Bernoulli(p) incl. the diagonal, undirected = mat * mat.T, sqrt weights)."""
    mat = rs.binomial(1, p, size=(n, n)).astype(float)
    if not directed:
        mat *= mat.T
    if weighted:
        w = rs.uniform(low, high, size=(n, n))
        if not directed:
            w = np.sqrt(w * w.T + 1e-3)
        mat = mat * w
    return mat


def _plain_er(rs, n, p, directed, weights=None):
    """ER without self-loops at density p; `weights` a callable size -> values (else 1)."""
    mask = rs.random_sample((n, n)) < p
    np.fill_diagonal(mask, False)
    if not directed:
        mask = np.triu(mask, 1)
    A = np.zeros((n, n))
    s, r = np.nonzero(mask)
    A[s, r] = 1.0 if weights is None else weights(s.size)
    return A if directed else A + A.T


def _permuted_path(rs, n, directed):
    order = rs.permutation(n)
    edges = list(zip(order[:-1], order[1:]))
    return (_directed if directed else _undirected)(n, edges), int(order[-1]), int(order[0])


def graph_cases(algorithm: str, rs: np.random.RandomState) -> list[tuple[str, np.ndarray, int | None]]:
    """(label, A, source or None) per case: edge cases first, then random graphs of varied size and density."""
    src = algorithm != "dfs"
    weighted = algorithm == "bellman_ford"
    one = 0.5 if weighted else 1.0
    cases = [
        ("n=1, no edge", np.zeros((1, 1)), 0),
        ("n=1, self-loop", np.full((1, 1), one), 0),
        ("n=2, one edge, s=0", _undirected(2, [(0, 1)], [0.3] if weighted else None), 0),
        ("n=2, one edge, s=1", _undirected(2, [(0, 1)], [0.3] if weighted else None), 1),
        ("n=2, no edge, s=1", np.zeros((2, 2)), 1),
        ("n=2, directed 1->0", _directed(2, [(1, 0)], [0.7] if weighted else None), 0),
        ("n=3, path 0-1-2, s=0", _undirected(3, [(0, 1), (1, 2)], [0.2, 0.9] if weighted else None), 0),
        ("n=3, path 0-1-2, s=2", _undirected(3, [(0, 1), (1, 2)], [0.2, 0.9] if weighted else None), 2),
        ("n=3, path 0-1-2, s=1", _undirected(3, [(0, 1), (1, 2)], [0.2, 0.9] if weighted else None), 1),
        ("n=3, directed cycle 0->1->2->0", _directed(3, [(0, 1), (1, 2), (2, 0)], [0.4, 0.4, 0.4] if weighted
                                                     else None), 1),
        ("n=3, directed 2->1->0", _directed(3, [(2, 1), (1, 0)]), 0),
        ("n=4, diamond 0-1,0-2,1-3,2-3 (equal paths)", _undirected(4, [(0, 1), (0, 2), (1, 3), (2, 3)],
                                                                   [0.5] * 4 if weighted else None), 0),
        ("n=5, empty graph", np.zeros((5, 5)), 3),
        ("n=5, star around node 4, s=leaf 0", _undirected(5, [(4, k) for k in range(4)],
                                                          [0.25] * 4 if weighted else None), 0),
        ("n=6, complete with self-loops", np.full((6, 6), one), 3),
        ("n=8, two 4-cycles, s in the second", _undirected(8, [(0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6),
                                                              (6, 7), (7, 4)],
                                                          [0.5] * 8 if weighted else None), 6),
        ("n=8, isolated source", _undirected(8, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 6), (6, 7)],
                                             [0.125] * 6 if weighted else None), 5),
        ("n=10, directed cycle 0->1->...->9->0", _directed(10, [(k, (k + 1) % 10) for k in range(10)]), 4),
        ("n=10, out-star from node 9", _directed(10, [(9, k) for k in range(9)]), 9),
        ("n=10, in-star into node 0", _directed(10, [(k, 0) for k in range(1, 10)]), 0),
    ]
    A, end, start = _permuted_path(rs, 12, directed=False)
    cases.append(("n=12, undirected path in shuffled node order, s=an end", A, end))
    A, end, start = _permuted_path(rs, 12, directed=True)
    cases.append(("n=12, directed path in shuffled node order, s=its start", A, start))
    if weighted:
        cases += [
            ("n=3, float tie 0.1+0.2 vs 0.3", _undirected(3, [(0, 1), (1, 2), (0, 2)], [0.1, 0.2, 0.3]), 0),
            ("n=4, longer cheaper path found in round 3", _undirected(4, [(0, 1), (1, 2), (2, 3), (0, 3)],
                                                                     [0.1, 0.1, 0.1, 0.9]), 0),
            ("n=9, 3x3 grid, unit weights (many ties), s=centre",
             _undirected(9, [(r * 3 + c, r * 3 + c + 1) for r in range(3) for c in range(2)]
                         + [(r * 3 + c, r * 3 + c + 3) for r in range(2) for c in range(3)]), 4),
            ("n=10, integer weights 1..3 (ties)", _plain_er(rs, 10, 0.4, False, lambda k: rs.randint(1, 4, k)), 2),
            ("n=7, directed acyclic with negative weights",
             _directed(7, [(0, 1), (0, 2), (1, 3), (2, 3), (3, 4), (4, 5), (2, 6), (6, 5)],
                       [0.5, 0.2, -0.4, 0.1, 0.3, -0.2, 0.6, -0.9]), 0),
            ("n=8, directed, weights in [0.5, 2)", _plain_er(rs, 8, 0.3, True, lambda k: rs.uniform(0.5, 2, k)), 1),
        ]
    else:
        cases += [
            ("n=6, weighted positive entries", _plain_er(rs, 6, 0.5, False, lambda k: rs.uniform(0.1, 3, k)), 2),
            ("n=6, negative entries (A != 0 but not A > 0)",
             _undirected(6, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (0, 5)], [1, -1, 1, 1, -0.5, 1]), 0),
            ("n=7, directed acyclic", _directed(7, [(0, 3), (1, 3), (3, 5), (2, 4), (4, 5), (5, 6)]), 1),
        ]
    # Random graphs: dm-clrs's ER recipe (self-loops, p^2 undirected density) at varied size and density.
    directed = algorithm == "dfs"
    for n, p in ((4, 0.5), (5, 0.9), (7, 0.3), (11, 0.5), (13, 0.2), (16, 0.5), (16, 0.1), (20, 0.7), (9, 0.6)):
        A = _clrs_er(rs, n, p, directed, weighted)
        cases.append((f"clrs-er n={n} p={p}{' directed' if directed else ''}", A, int(rs.randint(n))))
    for n, p in ((8, 0.3), (15, 0.15)):  # the other direction
        A = _clrs_er(rs, n, p, not directed, weighted)
        cases.append((f"clrs-er n={n} p={p}{' directed' if not directed else ''}", A, int(rs.randint(n))))
    return [(label, A, s if src else None) for label, A, s in cases]


def sort_cases(algorithm: str, rs: np.random.RandomState) -> list[tuple[str, np.ndarray]]:
    """(label, keys) per case: tiny arrays, ties, sorted / reversed input, odd values, random keys."""
    cases = [
        ("n=1", np.array([0.3])),
        ("n=2, sorted", np.array([0.1, 0.9])),
        ("n=2, reversed", np.array([0.9, 0.1])),
        ("n=2, equal", np.array([0.5, 0.5])),
    ]
    for perm in ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)):
        cases.append((f"n=3, permutation {perm}", np.array([0.1, 0.2, 0.3])[list(perm)]))
    cases += [
        ("n=3, ties [0.5, 0.5, 0.1]", np.array([0.5, 0.5, 0.1])),
        ("n=3, ties [0.1, 0.5, 0.5]", np.array([0.1, 0.5, 0.5])),
        ("n=3, ties [0.5, 0.1, 0.5]", np.array([0.5, 0.1, 0.5])),
        ("n=5, all equal", np.full(5, 0.25)),
        ("n=8, sorted", np.linspace(0.05, 0.95, 8)),
        ("n=8, reversed", np.linspace(0.95, 0.05, 8)),
        ("n=10, keys from {0, 0.5, 1}", rs.choice([0.0, 0.5, 1.0], 10)),
        ("n=12, half duplicates", np.repeat(rs.uniform(size=6), 2)[rs.permutation(12)]),
        ("n=7, negative and large keys", np.array([-3.5, 1e3, 0.0, -1e-3, 42.0, -3.5, 7.25])),
        ("n=9, sorted but the last", np.r_[np.linspace(0.1, 0.8, 8), 0.0]),
    ]
    for n in (4, 5, 6, 7, 11, 13, 16, 16, 20):
        cases.append((f"uniform n={n}", rs.uniform(size=n)))
    return cases


# --- dm-clrs probes -> arrays ----------------------------------------------------------------------------------------


def _compact(name: str, type_: str, data: np.ndarray) -> np.ndarray:
    """dm-clrs's values with a compact dtype, checked lossless."""
    data = np.asarray(data)
    if type_ in ("pointer", "should_be_permutation", "permutation_pointer"):
        out = data.astype(np.int16)
    elif type_ in ("mask", "mask_one", "categorical"):
        out = data.astype(np.int8)
    else:
        out = data.astype(np.float64)
    if not np.array_equal(out.astype(data.dtype), data):
        raise AssertionError(f"probe {name} ({type_}): conversion to {out.dtype} is lossy")
    return out


def _shape(location: str, type_: str, n: int, num_classes: int | None) -> tuple[int, ...]:
    base = {"node": (n,), "edge": (n, n), "graph": ()}[location]
    return base + ((num_classes,) if type_ == "categorical" else ())


def _sample_arrays(spec, inputs, outputs, hints, b: int, T: int, n: int, num_classes) -> dict[str, np.ndarray]:
    """Probes of sample b of dm-clrs's DataPoint lists (batch axis 0 for inputs/outputs, 1 for hints), restored
    to their natural shapes (dm-clrs squeezes n = 1 arrays) and cut to T steps."""
    out = {}
    for stage, points in (("input", inputs), ("output", outputs), ("hint", hints)):
        for dp in points:
            _, location, type_ = spec[dp.name]
            shape = _shape(location, type_, n, num_classes.get(dp.name))
            if stage == "hint":
                full = np.asarray(dp.data)[:, b]
                if full.shape[0] > T and np.any(full[T:] != 0):
                    raise AssertionError(f"hint {dp.name}: padding past T={T} is not zero")
                data = full[:T].reshape((T,) + shape)
            else:
                data = np.asarray(dp.data)[b].reshape(shape)
            out[f"{stage}/{dp.name}"] = _compact(dp.name, type_, data)
    return out


def _num_classes(spec, points) -> dict[str, int]:
    return {dp.name: int(np.asarray(dp.data).shape[-1]) for dp in points if spec[dp.name][2] == "categorical"}


def run_executor(clrs, algorithm: str, args: tuple):
    algorithms, probing, _, specs = clrs
    spec = specs.SPECS[algorithm]
    _, probes = getattr(algorithms, algorithm)(*[np.copy(a) if isinstance(a, np.ndarray) else a for a in args])
    inputs, outputs, hints = probing.split_stages(probes, spec)  # dm-clrs's own validation of the values
    T = int(np.asarray(hints[0].data).shape[0])
    n = int(np.asarray(args[0]).shape[0])
    return _sample_arrays(spec, inputs, outputs, hints, 0, T, n, _num_classes(spec, hints)), T


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "tests" / "fixtures" / "dmclrs"))
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS))
    args = parser.parse_args(argv)
    clrs = _load_clrs()
    _, _, samplers, specs = clrs
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {
        "generated_by": "tools/make_dmclrs_fixtures.py",
        "command": "/tmp/clrsenv/bin/python tools/make_dmclrs_fixtures.py",
        "venv": ["python3 -m venv /tmp/clrsenv", "/tmp/clrsenv/bin/pip install dm-clrs==2.0.3 --no-deps",
                 "/tmp/clrsenv/bin/pip install jax==0.10.2 jaxlib==0.10.2 numpy==2.4.6 chex attrs absl-py"],
        "versions": {p: metadata.version(p) for p in ("dm-clrs", "numpy", "jax")},
        "date": datetime.date.today().isoformat(),
        "random_cases_seed": SEED,
        "encoding": "dm-clrs's dense encoding; pointers int16, mask/mask_one/categorical int8 (one-hot kept), "
                    "scalars float64; hints [T, ...] cut to the sample's length",
        "clrs30": {split: dict(cfg) for split, cfg in samplers.CLRS30.items()},
        "algorithms": {},
    }
    for algorithm in args.algorithms.split(","):
        rs = np.random.RandomState(SEED + ALGORITHMS.index(algorithm))
        spec = specs.SPECS[algorithm]
        arrays: dict[str, np.ndarray] = {}
        entry = {"spec": {name: "/".join(v) for name, v in spec.items()}, "num_classes": {}, "executor_cases": [],
                 "clrs30": {}}
        cases = (graph_cases(algorithm, rs) if algorithm in ("bfs", "dfs", "bellman_ford")
                 else [(label, key, None) for label, key in sort_cases(algorithm, rs)])
        for k, (label, x, s) in enumerate(cases):
            call = (x,) if s is None else (x, s)
            arg_names = ("key",) if x.ndim == 1 else (("A",) if len(call) == 1 else ("A", "s"))
            for name, value in zip(arg_names, call):
                arrays[f"exec/{k}/arg/{name}"] = np.asarray(value, np.float64 if name != "s" else np.int64)
            case = {"label": label, "n": int(x.shape[0])}
            try:
                probes, T = run_executor(clrs, algorithm, call)
            except Exception as e:  # dm-clrs cannot run this input: recorded, not compared
                case["dmclrs_error"] = f"{type(e).__name__}: {e}"
            else:
                case["T"] = T
                arrays.update({f"exec/{k}/{key}": v for key, v in probes.items()})
                arrays[f"exec/{k}/T"] = np.array(T)
            entry["executor_cases"].append(case)
        for split, cfg in samplers.CLRS30.items():
            num = cfg["num_samples"]
            if split != "train":
                num *= specs.CLRS_30_ALGS_SETTINGS[algorithm]["num_samples_multiplier"]
            # Exactly CLRSDataset._create_data: the whole split, generation order.
            sampler, _ = samplers.build_sampler(algorithm, seed=cfg["seed"], num_samples=num, length=cfg["length"])
            fb = sampler.next()
            head, _ = samplers.build_sampler(algorithm, seed=cfg["seed"], num_samples=SPLIT_SAMPLES,
                                             length=cfg["length"])
            lengths = np.asarray(fb.features.lengths).astype(int)
            if not np.array_equal(np.asarray(head.next().features.lengths).astype(int), lengths[:SPLIT_SAMPLES]):
                raise AssertionError(f"{algorithm} {split}: the first samples depend on num_samples")
            classes = _num_classes(spec, fb.features.hints)
            entry["num_classes"].update(classes)
            for i in range(SPLIT_SAMPLES):
                probes = _sample_arrays(spec, fb.features.inputs, fb.outputs, fb.features.hints, i, int(lengths[i]),
                                        cfg["length"], classes)
                arrays.update({f"clrs30/{split}/{i}/{key}": v for key, v in probes.items()})
                arrays[f"clrs30/{split}/{i}/T"] = np.array(lengths[i])
            entry["clrs30"][split] = {"num_samples": num, "length": cfg["length"], "seed": cfg["seed"],
                                      "stored": SPLIT_SAMPLES, "T": lengths[:SPLIT_SAMPLES].tolist()}
        np.savez_compressed(out / f"{algorithm}.npz", **arrays)
        manifest["algorithms"][algorithm] = entry
        errors = sum("dmclrs_error" in c for c in entry["executor_cases"])
        print(f"{algorithm}: {len(cases)} executor cases ({errors} refused by dm-clrs), "
              f"{SPLIT_SAMPLES} samples x {len(samplers.CLRS30)} splits", file=sys.stderr)
    path = out / "manifest.json"
    if path.exists() and set(manifest["algorithms"]) != set(ALGORITHMS):  # a partial run keeps the others
        old = json.loads(path.read_text())["algorithms"]
        manifest["algorithms"] = {**old, **manifest["algorithms"]}
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
