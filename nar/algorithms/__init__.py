"""CLRS-exact executors: BFS, DFS, Bellman-Ford and four sorts, producing typed hint trajectories.

`execute(name, **inputs)` runs one sample and returns a `Trajectory` in CLRS's dense encoding; `run_batch` runs
many at once (vectorised over the batch where the algorithm allows) and returns a compact `TrajectoryBatch`.
Every trajectory matches dm-clrs 2.0.3 probe for probe: names, stages, locations, types, T and values.
`register` adds an algorithm of your own (its executor and spec); `nar.algorithms.validate.check_executor` checks
that an executor keeps the contract the rest of nar relies on (docs/extending.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

import numpy as np

from nar.algorithms.bellman_ford import bellman_ford
from nar.algorithms.bfs import bfs
from nar.algorithms.dfs import dfs
from nar.algorithms.inputs import GraphBatch, check_adjacency, check_keys, check_source
from nar.algorithms.sorting import bubble_sort, heapsort, insertion_sort, quicksort
from nar.specs import SPECS, Location, Stage, Type, add_spec
from nar.trajectory import Trajectory, TrajectoryBatch


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """A registered executor: `kind` is 'graph' (takes A, maybe a source s) or 'sort' (takes key).
    `graph_defaults`: the sampler options a graph algorithm's graphs are drawn with unless told otherwise
    (CLRS's per algorithm: directed or not, weighted or not)."""

    name: str
    kind: str
    needs_source: bool
    run: Callable[..., TrajectoryBatch]
    graph_defaults: Mapping[str, bool]

    @property
    def input_names(self) -> tuple[str, ...]:
        """The keyword arguments `execute` takes for this algorithm."""
        if self.kind == "sort":
            return ("key",)
        return ("A", "s") if self.needs_source else ("A",)


_ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in [
        # CLRS's sampler defaults per graph algorithm (reference: dm-clrs 2.0.3 samplers).
        Algorithm("bfs", "graph", True, bfs, MappingProxyType({"directed": False, "weighted": False})),
        Algorithm("dfs", "graph", False, dfs, MappingProxyType({"directed": True, "weighted": False})),
        Algorithm("bellman_ford", "graph", True, bellman_ford,
                  MappingProxyType({"directed": False, "weighted": True})),
        Algorithm("insertion_sort", "sort", False, insertion_sort, MappingProxyType({})),
        Algorithm("bubble_sort", "sort", False, bubble_sort, MappingProxyType({})),
        Algorithm("heapsort", "sort", False, heapsort, MappingProxyType({})),
        Algorithm("quicksort", "sort", False, quicksort, MappingProxyType({})),
    ]
}
ALGORITHMS: Mapping[str, Algorithm] = MappingProxyType(_ALGORITHMS)
KINDS = ("graph", "sort")
# The inputs every trajectory of a kind carries: the data pipeline and the batcher read them by name.
_REQUIRED_INPUTS = {
    "graph": {"pos": (Location.NODE, Type.SCALAR), "A": (Location.EDGE, Type.SCALAR),
              "adj": (Location.EDGE, Type.MASK)},
    "sort": {"pos": (Location.NODE, Type.SCALAR), "key": (Location.NODE, Type.SCALAR)},
}


def register(name: str, run: Callable[..., TrajectoryBatch], spec: Mapping[str, tuple[str, str, str]], *,
             kind: str, needs_source: bool = False, num_classes: Mapping[str, int] | None = None,
             directed: bool = False, weighted: bool = False) -> Algorithm:
    """Add an algorithm: after this, `execute`, `run_batch`, `TrajectoryBatch`, `make_batch`, models and (for the
    sort kind) `nar.data.generate` and training accept `name` like a built-in one (docs/extending.md).

    `run` has the signature of the built-in executors: `run(graphs: GraphBatch, sources)` (graph kind, `sources`
    only with `needs_source`) or `run(keys [B, n])` (sort kind: inputs are real keys), and returns a
    `TrajectoryBatch` (build it with `nar.algorithms.probing.graph_trajectories` / `sort_trajectories`, which add
    the shared inputs). `spec` maps probe name -> (stage, location, type) with the strings of `nar.specs`; it must
    hold the kind's shared inputs (graph: pos, A, adj, and a node mask_one `s` with a source; sort: pos, key).
    A graph algorithm's graphs are drawn `directed` and `weighted` or not, unless a dataset asks otherwise.
    A bad spec or a taken name is a ValueError naming the problem. Check the executor with
    `nar.algorithms.validate.check_executor`.
    """
    if name in _ALGORITHMS:
        raise ValueError(f"algorithm {name!r} is already registered")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if needs_source and kind != "graph":
        raise ValueError(f"only graph algorithms take a source; {name!r} is of kind {kind!r}")
    if not callable(run):
        raise ValueError(f"run must be a callable executor, got {run!r}")
    required = dict(_REQUIRED_INPUTS[kind])
    if needs_source:
        required["s"] = (Location.NODE, Type.MASK_ONE)
    for probe, (location, type_) in required.items():
        if spec.get(probe) != (Stage.INPUT, location, type_):
            raise ValueError(f"{name}: a {kind} algorithm{' with a source' if needs_source else ''} needs the input "
                             f"probe {probe!r} = {(Stage.INPUT, location, type_)}, got {spec.get(probe)!r}")
    extra_edges = [p for p, (st, loc, _) in spec.items() if loc == Location.EDGE and p not in required]
    if kind == "sort" and extra_edges:
        raise ValueError(f"{name}: a sort algorithm has no edges, but the spec has edge probes {extra_edges}")
    add_spec(name, spec, num_classes)
    defaults = {"directed": bool(directed), "weighted": bool(weighted)} if kind == "graph" else {}
    _ALGORITHMS[name] = Algorithm(name, kind, needs_source, run, MappingProxyType(defaults))
    return _ALGORITHMS[name]


def get_algorithm(name: str) -> Algorithm:
    """The registered algorithm `name`, or a ValueError listing the known ones."""
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; known: {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name]


def run_batch(
    name: str,
    *,
    graphs: GraphBatch | None = None,
    sources: Sequence[int] | None = None,
    keys: np.ndarray | None = None,
) -> TrajectoryBatch:
    """Run many samples at once. Graph algorithms take a `GraphBatch` (and `sources` for bfs/bellman_ford, local
    node indices); sorts take `keys` [B, n]. Inputs are validated; the result is compact (`TrajectoryBatch`)."""
    algo = get_algorithm(name)
    if algo.kind == "sort":
        if keys is None or graphs is not None or sources is not None:
            raise ValueError(f"{name} takes keys=[B, n] only")
        keys = np.asarray(keys)
        if keys.ndim != 2:
            raise ValueError(f"keys must be 2-D [batch, n], got shape {keys.shape}")
        return algo.run(check_keys(keys.reshape(-1)).reshape(keys.shape))  # one check for the whole batch
    if graphs is None or keys is not None:
        raise ValueError(f"{name} takes graphs=GraphBatch{' and sources' if algo.needs_source else ''}")
    if not algo.needs_source:
        if sources is not None:
            raise ValueError(f"{name} takes no source")
        return algo.run(graphs)
    if sources is None or len(sources) != graphs.n_node.size:
        raise ValueError(f"{name} needs one source per graph ({graphs.n_node.size}), got "
                         f"{None if sources is None else len(sources)}")
    sources = np.array([check_source(s, n) for s, n in zip(sources, graphs.n_node.tolist())], np.int64)
    return algo.run(graphs, sources)


def check_inputs(name: str, inputs: Mapping) -> dict:
    """One sample's keyword inputs for `name`, validated: {'key'} for a sort, else {'A'} plus the source 's' where
    the algorithm takes one; a missing, unexpected or bad input is a ValueError naming it."""
    algo = get_algorithm(name)
    given, wanted = set(inputs), set(algo.input_names)
    if given != wanted:
        missing, extra = sorted(wanted - given), sorted(given - wanted)
        raise ValueError(f"{name} takes inputs {sorted(wanted)}: missing {missing}, unexpected {extra}")
    if algo.kind == "sort":
        return {"key": check_keys(inputs["key"])}
    A = check_adjacency(inputs["A"], weighted=algo.graph_defaults.get("weighted", True))
    return {"A": A, "s": check_source(inputs["s"], A.shape[0])} if algo.needs_source else {"A": A}


def execute(name: str, **inputs) -> Trajectory:
    """Run one sample; e.g. `execute('bfs', A=A, s=0)` or `execute('heapsort', key=x)`. Never mutates inputs."""
    checked = check_inputs(name, inputs)
    if "key" in checked:
        batch = run_batch(name, keys=checked["key"][None])
    else:
        batch = run_batch(name, graphs=GraphBatch.from_dense([checked["A"]]),
                          sources=[checked["s"]] if "s" in checked else None)
    return batch.trajectory(0)


__all__ = [
    "ALGORITHMS",
    "SPECS",
    "Algorithm",
    "GraphBatch",
    "Trajectory",
    "TrajectoryBatch",
    "execute",
    "get_algorithm",
    "register",
    "run_batch",
]
