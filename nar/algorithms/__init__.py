"""CLRS-exact executors: BFS, DFS, Bellman-Ford and four sorts, producing typed hint trajectories.

`execute(name, **inputs)` runs one sample and returns a `Trajectory` in CLRS's dense encoding; `run_batch` runs
many at once (vectorised over the batch where the algorithm allows) and returns a compact `TrajectoryBatch`.
Every trajectory matches dm-clrs 2.0.3 probe for probe: names, stages, locations, types, T and values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from nar.algorithms.bellman_ford import bellman_ford
from nar.algorithms.bfs import bfs
from nar.algorithms.dfs import dfs
from nar.algorithms.inputs import GraphBatch, check_keys, check_source
from nar.algorithms.sorting import bubble_sort, heapsort, insertion_sort, quicksort
from nar.specs import SPECS
from nar.trajectory import Trajectory, TrajectoryBatch


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """A registered executor: `kind` is 'graph' (takes A, maybe a source s) or 'sort' (takes key)."""

    name: str
    kind: str
    needs_source: bool
    run: Callable[..., TrajectoryBatch]

    @property
    def input_names(self) -> tuple[str, ...]:
        if self.kind == "sort":
            return ("key",)
        return ("A", "s") if self.needs_source else ("A",)


ALGORITHMS: Mapping[str, Algorithm] = {
    a.name: a
    for a in [
        Algorithm("bfs", "graph", True, bfs),
        Algorithm("dfs", "graph", False, dfs),
        Algorithm("bellman_ford", "graph", True, bellman_ford),
        Algorithm("insertion_sort", "sort", False, insertion_sort),
        Algorithm("bubble_sort", "sort", False, bubble_sort),
        Algorithm("heapsort", "sort", False, heapsort),
        Algorithm("quicksort", "sort", False, quicksort),
    ]
}


def get_algorithm(name: str) -> Algorithm:
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


def execute(name: str, **inputs) -> Trajectory:
    """Run one sample; e.g. `execute('bfs', A=A, s=0)` or `execute('heapsort', key=x)`. Never mutates inputs."""
    algo = get_algorithm(name)
    given, wanted = set(inputs), set(algo.input_names)
    if given != wanted:
        missing, extra = sorted(wanted - given), sorted(given - wanted)
        raise ValueError(f"{name} takes inputs {sorted(wanted)}: missing {missing}, unexpected {extra}")
    if algo.kind == "sort":
        batch = run_batch(name, keys=check_keys(inputs["key"])[None])
    else:
        graphs = GraphBatch.from_dense([inputs["A"]])  # validates A
        batch = run_batch(name, graphs=graphs, sources=[inputs["s"]] if algo.needs_source else None)
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
    "run_batch",
]
