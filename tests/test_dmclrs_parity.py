"""Probe-for-probe parity with dm-clrs 2.0.3, without dm-clrs: nar's executors and its `stream="clrs"` generator
against trajectories dm-clrs itself wrote (tests/fixtures/dmclrs/, made by tools/make_dmclrs_fixtures.py in a
throwaway virtualenv; see docs/benchmarks.md, "Parity with dm-clrs").

Compared per case: the spec (probe names, stages, locations, types, class counts), T, and every probe's values —
exactly for pointers, masks, mask_one and categoricals, to float32 precision for scalars (nar stores float32).
A mismatch names the algorithm, the case, the probe and the first differing position.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest

from nar.algorithms import execute
from nar.data import generate
from nar.specs import GRAPH_ALGORITHMS, NUM_CLASSES, SORTING_ALGORITHMS, SPECS, Type

FIXTURES = Path(__file__).parent / "fixtures" / "dmclrs"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
ALGORITHMS = list(MANIFEST["algorithms"])
SPLITS = list(MANIFEST["clrs30"])
STAGES = ("input", "output", "hint")
# nar stores scalars as float32; dm-clrs computes in float64.
RTOL, ATOL = 1e-6, 1e-7


@functools.lru_cache(maxsize=None)
def _arrays(algorithm: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / f"{algorithm}.npz") as z:
        return {k: z[k] for k in z.files}


def _expected(algorithm: str, prefix: str) -> tuple[dict[str, dict[str, np.ndarray]], int]:
    """dm-clrs's probes {stage: {name: array}} and T stored under `prefix` (e.g. 'exec/3' or 'clrs30/test/0')."""
    arrays = _arrays(algorithm)
    probes = {stage: {} for stage in STAGES}
    for key, value in arrays.items():
        head, _, rest = key.partition(prefix + "/")
        if head or not rest:
            continue
        stage, _, name = rest.partition("/")
        if stage in probes:
            probes[stage][name] = value
    return probes, int(arrays[f"{prefix}/T"])


def _axes(stage: str, location: str, type_: str) -> list[str]:
    axes = ["step"] if stage == "hint" else []
    axes += {"node": ["node"], "edge": ["row", "col"], "graph": []}[location]
    return axes + (["class"] if type_ == Type.CATEGORICAL else [])


def compare_trajectory(algorithm: str, where: str, spec: dict, expected: dict, T: int, traj) -> list[str]:
    """Differences between dm-clrs's probes (`expected`, {stage: {name: array}}, length T, spec from the manifest)
    and nar's `Trajectory`, one message per differing item; [] when identical."""
    at = f"{algorithm} {where}"
    msgs = []
    if traj.length != T:
        msgs.append(f"{at}: trajectory length T: dm-clrs {T}, nar {traj.length}")
    got_stages = {"input": traj.inputs, "output": traj.outputs, "hint": traj.hints}
    for stage in STAGES:
        want, got = expected[stage], got_stages[stage]
        if set(want) != set(got):
            msgs.append(f"{at}: {stage} probes differ: only in dm-clrs {sorted(set(want) - set(got))}, "
                        f"only in nar {sorted(set(got) - set(want))}")
        for name in sorted(set(want) & set(got)):
            _, location, type_ = spec[name].split("/")
            w, g = np.asarray(want[name]), np.asarray(got[name])
            what = f"{at}: {stage} probe {name!r} ({type_})"
            if w.shape != g.shape:
                msgs.append(f"{what}: shape dm-clrs {w.shape}, nar {g.shape}")
                if w.ndim != g.ndim:
                    continue
                common = tuple(slice(0, min(a, b)) for a, b in zip(w.shape, g.shape))
                w, g = w[common], g[common]
            if type_ == Type.SCALAR:
                same = np.isclose(g.astype(np.float64), w.astype(np.float64), rtol=RTOL, atol=ATOL)
            else:
                same = g.astype(np.float64) == w.astype(np.float64)
            if not same.all():
                first = tuple(int(i) for i in np.argwhere(~same)[0])
                pos = ", ".join(f"{a} {i}" for a, i in zip(_axes(stage, location, type_), first)) or "the value"
                msgs.append(f"{what}: first difference at {pos}: dm-clrs {w[first].item()!r}, nar {g[first].item()!r} "
                            f"({int((~same).sum())} of {same.size} entries differ)")
    return msgs


def _exec_args(algorithm: str, k: int) -> dict:
    arrays = _arrays(algorithm)
    return {name: (int(arrays[key]) if name == "s" else arrays[key])
            for name in ("A", "s", "key") if (key := f"exec/{k}/arg/{name}") in arrays}


def _spec(algorithm: str) -> dict:
    return MANIFEST["algorithms"][algorithm]["spec"]


# --- fixtures are what they claim --------------------------------------------------------------------------------


def test_fixtures_cover_every_builtin_algorithm():
    assert MANIFEST["versions"]["dm-clrs"] == "2.0.3"
    assert set(ALGORITHMS) == set(GRAPH_ALGORITHMS + SORTING_ALGORITHMS)
    for algorithm in ALGORITHMS:
        cases = MANIFEST["algorithms"][algorithm]["executor_cases"]
        assert len(cases) >= 25, algorithm
        assert {c["n"] for c in cases} >= {1, 2, 3}, algorithm


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_spec_matches_dmclrs(algorithm):
    """Probe names, stages, locations and types, and the class count of each categorical probe."""
    entry = MANIFEST["algorithms"][algorithm]
    assert {name: "/".join(v) for name, v in SPECS[algorithm].items()} == entry["spec"]
    nar_classes = {name: c for (alg, name), c in NUM_CLASSES.items() if alg == algorithm}
    assert nar_classes == entry["num_classes"]


# --- executors --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_executor_matches_dmclrs(algorithm):
    """nar's executor on every stored input gives dm-clrs's trajectory, probe for probe."""
    msgs, compared = [], 0
    for k, case in enumerate(MANIFEST["algorithms"][algorithm]["executor_cases"]):
        if "dmclrs_error" in case:
            continue
        traj = execute(algorithm, **_exec_args(algorithm, k))
        expected, T = _expected(algorithm, f"exec/{k}")
        msgs += compare_trajectory(algorithm, f"case {k} ({case['label']})", _spec(algorithm), expected, T, traj)
        compared += 1
    assert compared >= 25
    assert not msgs, "\n".join(msgs)


def test_cases_dmclrs_refuses_are_recorded():
    """dm-clrs cannot run quicksort on one key (its executor pushes no hint and stacking none fails); nar returns
    a trajectory of T = 0 there. Recorded, not compared: parity covers what dm-clrs can produce."""
    refused = {(alg, c["label"]) for alg in ALGORITHMS for c in MANIFEST["algorithms"][alg]["executor_cases"]
               if "dmclrs_error" in c}
    assert refused == {("quicksort", "n=1")}
    traj = execute("quicksort", key=np.array([0.3]))
    assert traj.length == 0 and traj.outputs["pred"].tolist() == [0]


# --- CLRS30 splits via stream="clrs" -----------------------------------------------------------------------------


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_clrs_stream_reproduces_clrs30(algorithm, split):
    """`generate(..., stream='clrs')` with a split's size and seed gives the split's first samples: inputs, hints,
    outputs and T; a range starting later gives the same samples."""
    info = MANIFEST["algorithms"][algorithm]["clrs30"][split]
    stored, n, seed = info["stored"], info["length"], info["seed"]
    data = generate(algorithm, stored, n, seed=seed, stream="clrs")
    tail = generate(algorithm, stored - 2, n, seed=seed, start=2, stream="clrs")
    msgs = []
    for i in range(stored):
        expected, T = _expected(algorithm, f"clrs30/{split}/{i}")
        assert T == info["T"][i]
        msgs += compare_trajectory(algorithm, f"CLRS30 {split} sample {i}", _spec(algorithm), expected, T, data[i])
        if i >= 2:
            msgs += compare_trajectory(algorithm, f"CLRS30 {split} sample {i} (start=2)", _spec(algorithm), expected,
                                       T, tail[i - 2])
    assert not msgs, "\n".join(msgs)


# --- the comparison catches a regression --------------------------------------------------------------------------


def _perturbed(algorithm: str, prefix: str, stage: str, name: str, change) -> tuple[dict, int]:
    """A copy of a stored trajectory with one probe changed in memory (the fixture files stay untouched)."""
    expected, T = _expected(algorithm, prefix)
    expected = {st: dict(p) for st, p in expected.items()}
    expected[stage][name] = change(expected[stage][name].copy())
    return expected, T


def _first_case(algorithm: str, min_T: int) -> int:
    return next(k for k, c in enumerate(MANIFEST["algorithms"][algorithm]["executor_cases"])
                if c.get("T", 0) >= min_T and c["n"] >= 4)


def test_comparison_reports_a_flipped_pointer():
    k = _first_case("bfs", 3)
    traj = execute("bfs", **_exec_args("bfs", k))
    expected, T = _expected("bfs", f"exec/{k}")
    assert compare_trajectory("bfs", f"case {k}", _spec("bfs"), expected, T, traj) == []

    def flip(pi_h):
        pi_h[2, 3] = (pi_h[2, 3] + 1) % pi_h.shape[1]
        return pi_h

    bad, T = _perturbed("bfs", f"exec/{k}", "hint", "pi_h", flip)
    msgs = compare_trajectory("bfs", f"case {k}", _spec("bfs"), bad, T, traj)
    assert len(msgs) == 1
    assert msgs[0].startswith(f"bfs case {k}: hint probe 'pi_h' (pointer): first difference at step 2, node 3:")
    assert "(1 of " in msgs[0]


def _bump_last(x):
    x = x.astype(np.float64)
    x.reshape(-1)[-1] += 1e-4
    return x


@pytest.mark.parametrize("algorithm, sample, stage, name, change, expect", [
    ("bellman_ford", None, "hint", "d", _bump_last, "hint probe 'd' (scalar): first difference at step "),
    ("dfs", None, "hint", "color", lambda c: c[:, :, ::-1], "hint probe 'color' (categorical): first difference "
                                                            "at step 0, node 0, class 0"),
    ("heapsort", None, "output", "pred", lambda p: p[::-1], "output probe 'pred' (should_be_permutation): first "
                                                            "difference at node 0"),
    ("quicksort", None, "hint", "pred_h", lambda h: h[:-1], "hint probe 'pred_h' (pointer): shape dm-clrs"),
    ("insertion_sort", 1, "input", "key", lambda x: x * 1.001, "input probe 'key' (scalar): first difference"),
])
def test_comparison_reports_other_regressions(algorithm, sample, stage, name, change, expect):
    """A changed scalar, categorical, output pointer, hint length or CLRS30 input is reported, naming the probe."""
    if sample is None:
        k = _first_case(algorithm, 3)
        prefix, where, traj = f"exec/{k}", f"case {k}", execute(algorithm, **_exec_args(algorithm, k))
    else:
        info = MANIFEST["algorithms"][algorithm]["clrs30"]["test"]
        prefix, where = f"clrs30/test/{sample}", f"CLRS30 test sample {sample}"
        traj = generate(algorithm, sample + 1, info["length"], seed=info["seed"], stream="clrs")[sample]
    expected, T = _expected(algorithm, prefix)
    assert compare_trajectory(algorithm, where, _spec(algorithm), expected, T, traj) == []
    bad, T = _perturbed(algorithm, prefix, stage, name, change)
    msgs = compare_trajectory(algorithm, where, _spec(algorithm), bad, T, traj)
    assert msgs and all(m.startswith(f"{algorithm} {where}: {stage} probe {name!r}") for m in msgs), msgs
    assert any(expect in m for m in msgs), msgs


def test_comparison_reports_a_wrong_length_and_a_missing_probe():
    k = _first_case("bfs", 3)
    traj = execute("bfs", **_exec_args("bfs", k))
    expected, T = _expected("bfs", f"exec/{k}")
    msgs = compare_trajectory("bfs", f"case {k}", _spec("bfs"), expected, T + 1, traj)
    assert msgs == [f"bfs case {k}: trajectory length T: dm-clrs {T + 1}, nar {T}"]
    expected = {st: dict(p) for st, p in expected.items()}
    del expected["hint"]["reach_h"]
    msgs = compare_trajectory("bfs", f"case {k}", _spec("bfs"), expected, T, traj)
    assert msgs == [f"bfs case {k}: hint probes differ: only in dm-clrs [], only in nar ['reach_h']"]
