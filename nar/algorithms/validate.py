"""Checks that an executor keeps the contract the rest of nar relies on, for algorithms of your own.

`check_executor(name, samples)` runs a registered algorithm on the given inputs and raises a ValueError naming the
first broken rule: probes and shapes as the spec says, values in their type's range (pointers and mask_one index
a node of the sample, masks and one-hots hold 0/1, categorical values a class, scalars are finite), the shared
inputs (`pos`, `A`, `adj`, `s`, `key`) as nar writes them, inputs not mutated, one run per sample equal to one
batched run (what `nar.data.generate` does) and two runs equal (determinism: sample i must be a pure function
of its inputs). The built-in executors pass it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from nar.algorithms import GraphBatch, check_inputs, execute, get_algorithm, run_batch
from nar.specs import NUM_CLASSES, SPECS, Location, Stage, Type
from nar.trajectory import Trajectory, TrajectoryBatch


def check_executor(name: str, samples: Sequence[Mapping[str, np.ndarray]]) -> dict:
    """Run `name` on every sample (keyword inputs of `execute`: {'A': ..., 's': ...} or {'key': ...}) and check
    the contract (module docstring). Returns {'samples', 'steps_min', 'steps_max'} when all holds."""
    algo = get_algorithm(name)
    if not samples:
        raise ValueError("check_executor needs at least one sample")
    for k, inputs in enumerate(samples):  # bad inputs are the caller's error, named before anything runs
        try:
            check_inputs(name, inputs)
        except ValueError as e:
            raise ValueError(f"{name}: sample {k}: {e}") from None
    if algo.kind == "sort":
        by_size: dict[int, list[int]] = {}
        for k, inputs in enumerate(samples):
            by_size.setdefault(len(inputs["key"]), []).append(k)
        groups = [(idx, run_batch(name, keys=np.stack([samples[k]["key"] for k in idx]))) for idx in by_size.values()]
    else:
        graphs = GraphBatch.from_dense([s["A"] for s in samples])
        sources = [s["s"] for s in samples] if algo.needs_source else None
        groups = [(list(range(len(samples))), run_batch(name, graphs=graphs, sources=sources))]
    for _, batch in groups:
        _check_indices(name, batch)  # before densifying, which would fail on a bad index with a bare IndexError
    singles = []
    for k, inputs in enumerate(samples):
        copies = {key: np.array(v, copy=True) for key, v in inputs.items()}
        traj = execute(name, **inputs)
        for key, v in inputs.items():
            if not np.array_equal(np.asarray(v), copies[key]):
                raise ValueError(f"{name}: sample {k}: the executor changed its input {key!r}")
        _check_trajectory(name, traj, inputs, k)
        singles.append(traj)
    for idx, batch in groups:
        for j, k in enumerate(idx):
            _check_equal(name, singles[k], batch.trajectory(j), f"sample {k}: one run and a batched run")
            _check_equal(name, singles[k], execute(name, **samples[k]), f"sample {k}: two runs")
    steps = [t.length for t in singles]
    return {"samples": len(singles), "steps_min": min(steps), "steps_max": max(steps)}


def _check_indices(name: str, tb: TrajectoryBatch) -> None:
    """Pointers and mask_one indices of the compact batch index a node of their sample; classes are in range."""
    for probe, (_, _, type_) in SPECS[name].items():
        if type_ not in (Type.POINTER, Type.SHOULD_BE_PERMUTATION, Type.MASK_ONE, Type.CATEGORICAL):
            continue
        values = tb.probes[probe].astype(np.int64)
        limit = np.repeat(tb.n_node, np.diff(tb.offsets(probe)))
        if type_ == Type.CATEGORICAL:
            limit = np.full(values.shape, NUM_CLASSES[(name, probe)])
        bad = (values < 0) | (values >= limit)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{name}: {type_} probe {probe!r} holds {values[k]}, out of range [0, {limit[k]})")


def _check_trajectory(name: str, traj: Trajectory, inputs: Mapping, k: int) -> None:
    spec = SPECS[name]
    where = f"{name}: sample {k}"
    n = traj.num_nodes
    got = {**traj.inputs, **traj.hints, **traj.outputs}
    if set(got) != set(spec):
        raise ValueError(f"{where}: probes {sorted(got)} differ from the spec's {sorted(spec)}")
    for stage, probes in ((Stage.INPUT, traj.inputs), (Stage.HINT, traj.hints), (Stage.OUTPUT, traj.outputs)):
        for probe, value in probes.items():
            if spec[probe][0] != stage:
                raise ValueError(f"{where}: probe {probe!r} is a {stage} but the spec says {spec[probe][0]}")
            _check_values(f"{where}: {stage} {probe!r}", value, spec[probe], n, traj.length if stage == Stage.HINT
                          else None, NUM_CLASSES.get((name, probe)))
    if not np.allclose(traj.inputs["pos"], np.arange(n) / n, rtol=0, atol=1e-7):
        raise ValueError(f"{where}: input 'pos' must be i / n")
    if "key" in inputs and not np.array_equal(traj.inputs["key"], np.asarray(inputs["key"], np.float32)):
        raise ValueError(f"{where}: input 'key' differs from the keys given")
    if "A" in inputs:
        A = np.asarray(inputs["A"], np.float64)
        if not np.array_equal(traj.inputs["A"], A.astype(np.float32)):
            raise ValueError(f"{where}: input 'A' differs from the adjacency given")
        if not np.array_equal(traj.inputs["adj"], ((A + np.eye(n)) != 0).astype(np.float32)):
            raise ValueError(f"{where}: input 'adj' must be (A + I) != 0")
    if "s" in inputs and int(np.argmax(traj.inputs["s"])) != int(inputs["s"]):
        raise ValueError(f"{where}: input 's' does not mark the source {inputs['s']}")


def _check_values(where: str, value: np.ndarray, probe: tuple[str, str, str], n: int, steps: int | None,
                  classes: int | None) -> None:
    _, location, type_ = probe
    shape = {Location.NODE: (n,), Location.EDGE: (n, n), Location.GRAPH: ()}[location]
    if type_ == Type.CATEGORICAL:
        shape += (classes,)
    if type_ == Type.MASK_ONE:
        shape = (n,)
    if steps is not None:
        shape = (steps,) + shape
    if value.shape != shape:
        raise ValueError(f"{where} has shape {value.shape}, expected {shape}")
    if type_ in (Type.POINTER, Type.SHOULD_BE_PERMUTATION):
        if value.size and (value.min() < 0 or value.max() >= n):
            raise ValueError(f"{where}: pointers must index a node in [0, {n}), got values in "
                             f"[{value.min()}, {value.max()}]")
        return
    if not np.isfinite(value).all():
        raise ValueError(f"{where} holds NaN or infinite values")
    if type_ in (Type.MASK, Type.MASK_ONE, Type.CATEGORICAL) and not np.isin(value, (0.0, 1.0)).all():
        raise ValueError(f"{where}: a {type_} holds only 0 and 1, got {np.unique(value)[:5]}")
    if type_ in (Type.MASK_ONE, Type.CATEGORICAL) and value.size and not (value.sum(-1) == 1).all():
        raise ValueError(f"{where}: a {type_} holds exactly one 1 per row")


def _check_equal(name: str, a: Trajectory, b: Trajectory, what: str) -> None:
    for stage in ("inputs", "hints", "outputs"):
        x, y = getattr(a, stage), getattr(b, stage)
        for probe in x:
            if x[probe].shape != y[probe].shape or not np.array_equal(x[probe], y[probe]):
                raise ValueError(f"{name}: {what} differ in {stage[:-1]} {probe!r}")
