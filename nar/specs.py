"""Probe specifications: the (stage, location, type) of every probe, with CLRS's exact strings.

A spec maps probe name -> (stage, location, type). The strings are CLRS's own, so trajectories, metrics and
published numbers line up probe for probe (reference: dm-clrs 2.0.3 `specs.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType


class Stage:
  INPUT = "input"
  OUTPUT = "output"
  HINT = "hint"


class Location:
  NODE = "node"
  EDGE = "edge"
  GRAPH = "graph"


class Type:
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

SPECS: Mapping[str, Spec] = MappingProxyType({
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
})

# Number of classes of each categorical probe.
NUM_CLASSES: Mapping[tuple[str, str], int] = MappingProxyType({
    ("dfs", "color"): 3,
    ("heapsort", "phase"): 3,
})

GRAPH_ALGORITHMS = ("bfs", "dfs", "bellman_ford")
SORTING_ALGORITHMS = ("insertion_sort", "bubble_sort", "heapsort", "quicksort")


def probes_of(algorithm: str, stage: str) -> list[str]:
  """Names of the probes of one stage, in spec order."""
  return [name for name, (st, _, _) in SPECS[algorithm].items() if st == stage]
