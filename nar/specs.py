"""Probe specifications: the (stage, location, type) of every probe, with CLRS's exact strings.

A spec maps probe name -> (stage, location, type). The strings are CLRS's own, so trajectories, metrics and
published numbers line up probe for probe (reference: dm-clrs 2.0.3 `specs.py`). `SPECS` and `NUM_CLASSES` are
read-only views; `add_spec` (called by `nar.algorithms.register`) is the one way a new algorithm's spec enters them.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType


class Stage:
    """Where a probe sits in a trajectory: given (input), per step (hint) or the answer (output)."""

    INPUT = "input"
    OUTPUT = "output"
    HINT = "hint"


class Location:
    """What a probe's values are attached to: one per node, per edge (an n x n matrix densely) or per graph."""

    NODE = "node"
    EDGE = "edge"
    GRAPH = "graph"


class Type:
    """How a probe's values are encoded, decoded and scored (CLRS's types; see docs/data_format.md)."""

    SCALAR = "scalar"
    CATEGORICAL = "categorical"
    MASK = "mask"
    MASK_ONE = "mask_one"
    POINTER = "pointer"
    SHOULD_BE_PERMUTATION = "should_be_permutation"
    PERMUTATION_POINTER = "permutation_pointer"
    SOFT_POINTER = "soft_pointer"


Spec = Mapping[str, tuple[str, str, str]]

_I, _O, _H = Stage.INPUT, Stage.OUTPUT, Stage.HINT
_N, _E, _G = Location.NODE, Location.EDGE, Location.GRAPH
_SC, _CAT, _M, _M1, _P = Type.SCALAR, Type.CATEGORICAL, Type.MASK, Type.MASK_ONE, Type.POINTER
_PERM = Type.SHOULD_BE_PERMUTATION

_SORT_INPUTS = {"pos": (_I, _N, _SC), "key": (_I, _N, _SC)}
_GRAPH_INPUTS = {"pos": (_I, _N, _SC), "A": (_I, _E, _SC), "adj": (_I, _E, _M)}

_SIMPLE_SORT = {
    **_SORT_INPUTS,
    "pred": (_O, _N, _PERM),
    "pred_h": (_H, _N, _P),
    "i": (_H, _N, _M1),
    "j": (_H, _N, _M1),
}

_SPECS: dict[str, Spec] = {
    "bfs": MappingProxyType({
        "pos": (_I, _N, _SC), "s": (_I, _N, _M1), "A": (_I, _E, _SC), "adj": (_I, _E, _M),
        "pi": (_O, _N, _P),
        "reach_h": (_H, _N, _M), "pi_h": (_H, _N, _P),
    }),
    "dfs": MappingProxyType({
        **_GRAPH_INPUTS,
        "pi": (_O, _N, _P),
        "pi_h": (_H, _N, _P), "color": (_H, _N, _CAT), "d": (_H, _N, _SC), "f": (_H, _N, _SC),
        "s_prev": (_H, _N, _P), "s": (_H, _N, _M1), "u": (_H, _N, _M1), "v": (_H, _N, _M1),
        "s_last": (_H, _N, _M1), "time": (_H, _G, _SC),
    }),
    "bellman_ford": MappingProxyType({
        "pos": (_I, _N, _SC), "s": (_I, _N, _M1), "A": (_I, _E, _SC), "adj": (_I, _E, _M),
        "pi": (_O, _N, _P),
        "pi_h": (_H, _N, _P), "d": (_H, _N, _SC), "msk": (_H, _N, _M),
    }),
    "insertion_sort": MappingProxyType(dict(_SIMPLE_SORT)),
    "bubble_sort": MappingProxyType(dict(_SIMPLE_SORT)),
    "heapsort": MappingProxyType({
        **_SORT_INPUTS,
        "pred": (_O, _N, _PERM),
        "pred_h": (_H, _N, _P), "parent": (_H, _N, _P),
        "i": (_H, _N, _M1), "j": (_H, _N, _M1), "largest": (_H, _N, _M1), "heap_size": (_H, _N, _M1),
        "phase": (_H, _G, _CAT),
    }),
    "quicksort": MappingProxyType({
        **_SORT_INPUTS,
        "pred": (_O, _N, _PERM),
        "pred_h": (_H, _N, _P),
        "p": (_H, _N, _M1), "r": (_H, _N, _M1), "i": (_H, _N, _M1), "j": (_H, _N, _M1),
    }),
}
SPECS: Mapping[str, Spec] = MappingProxyType(_SPECS)

# Number of classes of each categorical probe.
_NUM_CLASSES: dict[tuple[str, str], int] = {
    ("dfs", "color"): 3,
    ("heapsort", "phase"): 3,
}
NUM_CLASSES: Mapping[tuple[str, str], int] = MappingProxyType(_NUM_CLASSES)

GRAPH_ALGORITHMS = ("bfs", "dfs", "bellman_ford")
SORTING_ALGORITHMS = ("insertion_sort", "bubble_sort", "heapsort", "quicksort")


_STAGES = (Stage.INPUT, Stage.OUTPUT, Stage.HINT)
_LOCATIONS = (Location.NODE, Location.EDGE, Location.GRAPH)
# Types an executor may emit (the others are CLRS types nar's models derive or do not use).
_TYPES = (Type.SCALAR, Type.CATEGORICAL, Type.MASK, Type.MASK_ONE, Type.POINTER, Type.SHOULD_BE_PERMUTATION)


def add_spec(algorithm: str, spec: Mapping[str, tuple[str, str, str]],
             num_classes: Mapping[str, int] | None = None) -> None:
    """Register a new algorithm's spec (and the class count of each categorical probe), after checking it.

    Refuses, with a ValueError naming the problem: a name already taken, an unknown stage, location or type, a
    pointer or mask_one probe that is not on nodes, an edge probe that is not an input, a categorical probe
    without its class count (or a class count for a probe that is not categorical), a spec without outputs or
    hints, a probe named `<output>_mask` next to a permutation output (the model's name for its head).
    """
    if algorithm in _SPECS:
        raise ValueError(f"algorithm {algorithm!r} already has a spec")
    num_classes = dict(num_classes or {})
    checked = {}
    for name, probe in spec.items():
        if not isinstance(probe, tuple) or len(probe) != 3:
            raise ValueError(f"{algorithm}: probe {name!r} must be a (stage, location, type) tuple, got {probe!r}")
        stage, location, type_ = probe
        for value, valid, what in ((stage, _STAGES, "stage"), (location, _LOCATIONS, "location"),
                                   (type_, _TYPES, "type")):
            if value not in valid:
                raise ValueError(f"{algorithm}: probe {name!r} has {what} {value!r}; valid: {', '.join(valid)}")
        if type_ in (Type.POINTER, Type.MASK_ONE, Type.SHOULD_BE_PERMUTATION) and location != Location.NODE:
            raise ValueError(f"{algorithm}: probe {name!r} of type {type_} must be on nodes, got location {location}")
        if location == Location.EDGE and stage != Stage.INPUT:
            raise ValueError(f"{algorithm}: edge probe {name!r} must be an input (edge hints and outputs are not "
                             f"supported), got stage {stage}")
        if (type_ == Type.CATEGORICAL) != (name in num_classes):
            raise ValueError(f"{algorithm}: probe {name!r} of type {type_} "
                             + ("needs its number of classes in num_classes" if type_ == Type.CATEGORICAL
                                else "is not categorical but has a class count"))
        if type_ == Type.CATEGORICAL and not (isinstance(num_classes[name], int) and num_classes[name] >= 2):
            raise ValueError(f"{algorithm}: categorical probe {name!r} needs at least 2 classes, got "
                             f"{num_classes[name]!r}")
        if type_ == Type.SHOULD_BE_PERMUTATION and f"{name}_mask" in spec:
            raise ValueError(f"{algorithm}: probe name {name}_mask is reserved for the head of permutation {name!r}")
        checked[name] = (stage, location, type_)
    unknown = set(num_classes) - set(checked)
    if unknown:
        raise ValueError(f"{algorithm}: num_classes names probes not in the spec: {sorted(unknown)}")
    for stage in (Stage.OUTPUT, Stage.HINT):
        if not any(st == stage for st, _, _ in checked.values()):
            raise ValueError(f"{algorithm}: a spec needs at least one {stage} probe")
    _SPECS[algorithm] = MappingProxyType(checked)
    _NUM_CLASSES.update({(algorithm, name): int(c) for name, c in num_classes.items()})


def probes_of(algorithm: str, stage: str) -> list[str]:
    """Names of the probes of one stage, in spec order."""
    return [name for name, (st, _, _) in SPECS[algorithm].items() if st == stage]
