"""CLRS-Text export (Markeeva et al. 2024): a trajectory as the question/answer strings of the CLRS-Text benchmark.

The strings are, character for character, what dm-clrs's `clrs_text.clrs_utils.format_clrs_example` writes for the
same sample (tests/test_clrs_text.py checks this against strings dm-clrs itself wrote):

    question = "{algorithm}:\\n{inputs}\\n{output names}:\\n",  answer = "{outputs}\\n\\n"

Inputs are `name: value` in spec order, joined by ", " (`pos` is left out, and `adj`, which repeats A); a mask_one
is its index, node values `[v0 v1 ...]`, an edge matrix `[[row 0], [row 1], ...]`, each number as NumPy's `str`
prints it (so integer adjacency prints `1`, float weights `0.0`). Pointers and masks print as integers; a sorting
output (a predecessor chain) prints the key values in sorted order. With hints, only the hint `<output>_h` is
shown: its first step joins the inputs as `initial_trace: ...`, the names become `trace | <names>` and the answer
lists the steps strictly between the first and the last, then ` | `, then the output.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from nar.algorithms import execute, get_algorithm
from nar.specs import SPECS, Location, Stage, Type
from nar.trajectory import Trajectory, TrajectoryBatch

_HIDDEN_INPUTS = ("pos", "adj")  # CLRS-Text leaves out positions, and adj where A carries the same graph


def clrs_text(algorithm: str, use_hints: bool = False, truncate_decimals: int | None = None,
              **inputs) -> tuple[str, str]:
    """(question, answer) of CLRS-Text for one sample: nar's executor runs `algorithm` on `inputs` (A and s for a
    graph algorithm, key for a sort, as `nar.execute` takes them) and the probes are formatted as dm-clrs does.

    Numbers print with the dtype they are given in (an integer A prints `1`, a float one `1.0`), as dm-clrs prints
    its sampler's arrays. `truncate_decimals=d` cuts every float input to d decimals (toward zero) before the
    algorithm runs, as CLRS-Text's sampler does, so hints and outputs belong to the printed inputs.
    """
    get_algorithm(algorithm)  # an unknown name is a ValueError listing the known ones
    shown = {name: np.asarray(value) for name, value in inputs.items()}
    if truncate_decimals is not None:
        if isinstance(truncate_decimals, bool) or not isinstance(truncate_decimals, int) or truncate_decimals < 1:
            raise ValueError(f"truncate_decimals must be a positive integer or None, got {truncate_decimals!r} "
                             "(dm-clrs reads 0 as 'no truncation')")
        scale = 10.0**truncate_decimals
        shown = {name: np.trunc(x * scale) / scale if np.issubdtype(x.dtype, np.floating) else x
                 for name, x in shown.items()}
    return _format(execute(algorithm, **shown), shown, use_hints)


def format_trajectory(trajectory: Trajectory, use_hints: bool = False,
                      truncate_decimals: int | None = None) -> tuple[str, str]:
    """(question, answer) of an existing nar trajectory (e.g. one sample of a stored dataset).

    Float inputs print as nar stores them (float32, shortest form: `0.5488135`); the adjacency of an unweighted
    algorithm (BFS, DFS) prints as integers, as dm-clrs's int adjacency does. With `truncate_decimals` the inputs
    are cut and the algorithm is run again on them, so the trace belongs to the printed values.
    """
    shown = _stored_inputs(trajectory)
    if truncate_decimals is not None:
        return clrs_text(trajectory.algorithm, use_hints, truncate_decimals, **shown)
    return _format(trajectory, shown, use_hints)


def write_jsonl(trajectories: TrajectoryBatch | Iterable[Trajectory], path: str | os.PathLike,
                use_hints: bool = False, truncate_decimals: int | None = None) -> Path:
    """Write one JSON line per trajectory, with CLRS-Text's fields: question, answer, algo_name and length (the
    number of nodes). Written to `<path>.partial` and renamed, so a half-written file never has the final name."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "w") as f:
        for trajectory in trajectories:
            question, answer = format_trajectory(trajectory, use_hints, truncate_decimals)
            f.write(json.dumps({"question": question, "answer": answer, "algo_name": trajectory.algorithm,
                                "length": trajectory.num_nodes}) + "\n")
    os.replace(tmp, path)
    return path


def _stored_inputs(trajectory: Trajectory) -> dict[str, np.ndarray]:
    """The executor inputs of a stored trajectory, typed as dm-clrs's sampler types them: integer adjacency for
    unweighted algorithms, floats as the decimal value of their float32 (so truncation cuts what is printed)."""
    algo = get_algorithm(trajectory.algorithm)
    shown = {}
    for name in algo.input_names:
        x = trajectory.inputs[name]
        if name == "s":
            shown[name] = np.argmax(x)
        elif name == "A" and not algo.graph_defaults.get("weighted", True) and (x == np.round(x)).all():
            shown[name] = x.astype(np.int64)
        else:
            shown[name] = x.astype(str).astype(np.float64)
    return shown


def _format(trajectory: Trajectory, shown: Mapping[str, np.ndarray], use_hints: bool) -> tuple[str, str]:
    """The question and answer of `trajectory`, its inputs printed from `shown` (the arrays as given)."""
    algorithm = trajectory.algorithm
    spec = SPECS[algorithm]
    # A permutation prints key values: their strings are made once and picked per step.
    key = np.array(list(map(str, _values(shown["key"]))), object) if "key" in shown else None
    inputs = [f"{name}: {_input_str(shown[name], type_, location)}"
              for name, (stage, location, type_) in spec.items()
              if stage == Stage.INPUT and name not in _HIDDEN_INPUTS]
    outputs = [name for name, (stage, _, _) in spec.items() if stage == Stage.OUTPUT]
    names = ", ".join(outputs)
    answer = ", ".join(_node_str(trajectory.outputs[name][None], spec[name], key)[0] for name in outputs)
    traced = [name for name in trajectory.hints if name.endswith("_h") and name[:-2] in outputs]
    if use_hints and traced and trajectory.length:  # (quicksort of one key has no hint step at all)
        # Each trace is printed as the output it shadows; the last step equals the output and is left out.
        steps = [_node_str(trajectory.hints[h], spec[h[:-2]], key) for h in traced]
        inputs.append("initial_trace: " + ", ".join(s[0] for s in steps))
        names = f"trace | {names}"
        answer = ", ".join(", ".join(step) for step in zip(*(s[1:-1] for s in steps))) + " | " + answer
    return f"{algorithm}:\n{', '.join(inputs)}\n{names}:\n", f"{answer}\n\n"


def _input_str(x: np.ndarray, type_: str, location: str) -> str:
    if type_ == Type.MASK_ONE:
        return str(int(x))
    if location == Location.EDGE:
        return "[" + ", ".join(map(_bracket, _values(x))) + "]"
    if location == Location.NODE and type_ == Type.SCALAR:
        return _bracket(_values(x.reshape(-1)))
    raise ValueError(f"CLRS-Text export does not format {location} {type_} inputs")


def _node_str(steps: np.ndarray, probe: tuple[str, str, str], key: np.ndarray | None) -> list[str]:
    """One string per row of `steps` [T, n], a node output (or the hint shadowing it) in dense encoding."""
    _, location, type_ = probe
    if location != Location.NODE:
        raise ValueError(f"CLRS-Text export does not format {location} outputs")
    if type_ == Type.SHOULD_BE_PERMUTATION:
        cells = key[_chain_orders(steps.astype(np.int64))].tolist()
    elif type_ in (Type.POINTER, Type.MASK):
        cells = steps.astype(np.int64).tolist()
    else:
        raise ValueError(f"CLRS-Text export does not format {type_} outputs")
    return [_bracket(row) for row in cells]


def _chain_orders(pred: np.ndarray) -> np.ndarray:
    """[T, n] predecessor chains (the head points to itself) -> [T, n] the nodes from head to tail: from the tail
    (the node no other node points to), follow the pointers back, all T steps at once."""
    steps, n = pred.shape
    flat, base = pred.reshape(-1), np.arange(steps) * n
    pointed = np.zeros(steps * n, bool)
    pointed[(base[:, None] + pred)[pred != np.arange(n)]] = True
    order = np.empty((n, steps), np.int64)
    order[-1] = np.argmin(pointed.reshape(steps, n), axis=1)
    for i in range(n - 2, -1, -1):
        order[i] = flat[base + order[i + 1]]
    order = order.T
    if not (np.sort(order, axis=1) == np.arange(n)).all():
        raise ValueError("a permutation probe is not a single predecessor chain")
    return order


def _values(x: np.ndarray) -> list:
    """`x` as nested lists of values whose Python `str` is NumPy's `str` of the element: Python ints, bools and
    floats for those dtypes (a float64 prints in the same shortest round-trip form, far faster), else strings."""
    return x.tolist() if x.dtype == np.float64 or x.dtype.kind in "biu" else x.astype(str).tolist()


def _bracket(cells: Iterable) -> str:
    return "[" + " ".join(map(str, cells)) + "]"
