"""Processors by name: the one place a processor name is resolved.

Each entry gives the constructor (`hidden`, `rngs=`, options) and the message graph it uses by default (CLRS:
MPNN on the complete graph, PGN on the input graph plus self-loops).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from nar.processors.base import Graph, Processor
from nar.processors.mpnn import MPNN


@dataclasses.dataclass(frozen=True)
class ProcessorEntry:
    name: str
    build: Callable[..., Processor]
    default_message_graph: str
    description: str


PROCESSORS: dict[str, ProcessorEntry] = {}


def register(name: str, build: Callable[..., Processor], default_message_graph: str, description: str) -> None:
    if name in PROCESSORS:
        raise ValueError(f"processor {name!r} is already registered")
    PROCESSORS[name] = ProcessorEntry(name, build, default_message_graph, description)


def get_processor(name: str) -> ProcessorEntry:
    if name not in PROCESSORS:
        raise ValueError(f"unknown processor {name!r}; known: {', '.join(sorted(PROCESSORS))}")
    return PROCESSORS[name]


register("mpnn", MPNN, "complete", "CLRS's MPNN: max aggregation, layer norm (gate with gated=true)")
register("pgn", MPNN, "input", "CLRS's PGN: MPNN's equations over the input graph plus self-loops")

__all__ = ["PROCESSORS", "Graph", "Processor", "ProcessorEntry", "get_processor", "register"]
