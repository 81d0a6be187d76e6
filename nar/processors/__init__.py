"""Processors by name: the one place a processor name is resolved.

Each entry gives the constructor (`hidden`, `rngs=`, options), the message graph it uses by default (CLRS:
MPNN and PGN on the complete graph, so that pointers are decoded over every node; `pgn_mask` on the sparse input
graph plus self-loops), the `ModelConfig` fields it takes as options, whether its batches must carry triplets, and
whether its messages are masked to CLRS's adjacency (`adjacency`: PGN; see `nar.model.net.adjacency`). A wrapper
(`wraps=True`: ForgetNet, G-ForgetNet) is built around the processor named by `ModelConfig.base_processor`, whose
message graph, triplets and adjacency mask it inherits. An automaton
(GraphFSA) replaces the whole encode-process-decode model (`nar.model.fsa.FSAModel`), and so does a discrete step
(dnar: `nar.model.discrete.DiscreteModel`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

from nar.processors.base import Graph, Processor
from nar.processors.discrete import DiscreteStep
from nar.processors.forget import Forget
from nar.processors.graphfsa import GraphFSA
from nar.processors.mpnn import MPNN
from nar.processors.tropical import Tropical


@dataclasses.dataclass(frozen=True)
class ProcessorEntry:
    name: str
    build: Callable[..., Processor]
    default_message_graph: str | None  # None for a wrapper: its base processor's
    description: str
    options: tuple[str, ...] = ()  # ModelConfig fields passed to `build` as keyword arguments
    triplets: bool = False  # batches carry triplets (`make_batch(..., triplets=True)`)
    wraps: bool = False  # built as build(hidden, rngs=, base=<the base processor>)
    automaton: bool = False  # not an encode-process-decode processor: `nar.model.fsa.FSAModel` runs it
    adjacency: bool = False  # messages masked to CLRS's adjacency (self-loops, input edges, pointers) per step
    discrete: bool = False  # a discrete step between hint states: `nar.model.discrete.DiscreteModel` runs it

    def options_of(self, config) -> dict:
        """The keyword arguments `build` takes from a `ModelConfig`: its fields named in `options`."""
        return {name: getattr(config, name) for name in self.options}


PROCESSORS: dict[str, ProcessorEntry] = {}


def register(name: str, build: Callable[..., Processor], default_message_graph: str | None, description: str,
             options: tuple[str, ...] = (), triplets: bool = False, wraps: bool = False,
             automaton: bool = False, adjacency: bool = False, discrete: bool = False) -> None:
    """Add a processor under `name`: after this, `model.processor = name` (configs, `--processor`) builds it.

    `build(hidden, rngs=..., layer_norm=..., **options)` returns a `Processor`; `options` names `ModelConfig`
    fields passed on; `default_message_graph` is 'complete' or 'input'; with `adjacency`, the model sets
    `Graph.edge_mask` to CLRS's adjacency on the complete graph at every step (the processor must honour it). A
    taken name is a ValueError. See docs/extending.md.
    """
    if name in PROCESSORS:
        raise ValueError(f"processor {name!r} is already registered")
    PROCESSORS[name] = ProcessorEntry(name, build, default_message_graph, description, tuple(options), triplets,
                                      wraps, automaton, adjacency, discrete)


def get_processor(name: str) -> ProcessorEntry:
    """The registry entry of `name`, or a ValueError listing the known processors."""
    if name not in PROCESSORS:
        raise ValueError(f"unknown processor {name!r}; known: {', '.join(sorted(PROCESSORS))}")
    return PROCESSORS[name]


register("mpnn", MPNN, "complete", "CLRS's MPNN: max aggregation, layer norm (gate with gated=true)")
register("pgn", MPNN, "complete", "CLRS's PGN: MPNN with messages masked to the input graph, the pointers and "
         "self-loops; pointers decoded over every node", adjacency=True)
register("pgn_mask", MPNN, "input", "masked, neighbours-only PGN (in the spirit of CLRS's pgn_mask): messages and "
         "pointer candidates over the sparse input graph plus self-loops, so it scales with edges, not n^2; no "
         "published figure belongs to it")
register("gmpnn", functools.partial(MPNN, gated=True), "complete", "MPNN with the update gate (Ibarz et al. 2022)")
register("triplet_mpnn", functools.partial(MPNN, triplets=True), "complete",
         "MPNN with triplet edge latents for the decoders (Ibarz et al. 2022)", ("triplet_features",), True)
register("triplet_gmpnn", functools.partial(MPNN, gated=True, triplets=True), "complete",
         "Triplet-GMPNN: update gate and triplet edge latents (Ibarz et al. 2022)", ("triplet_features",), True)
register("tropical", Tropical, "input", "tropical max-plus attention over in-neighbours (Hashemi et al. 2025), "
         "per-head max-plus maps as the released code",
         ("heads", "valuation", "tropical_maps", "tropical_bias", "tropical_skip"))
register("forgetnet", Forget, None, "ForgetNet: the base processor with no history (Bohde et al. 2024)",
         wraps=True)
register("g_forgetnet", functools.partial(Forget, history_gate=True), None,
         "G-ForgetNet: the base processor with a learned gate on the history (Bohde et al. 2024)", wraps=True)
register("graphfsa", GraphFSA, "input", "GraphFSA: a learned finite-state automaton on each node (Grötschla et al. "
         "2024), for finite node hints (BFS, DFS); BFS's pointer pi is decoded from the learned reach trajectory by "
         "a fixed rule (lowest-index in-neighbour reached earlier), not learned", ("fsa_states", "fsa_bound"),
         automaton=True)
register("dnar", DiscreteStep, "input", "discrete step (after Rodionov & Prokhorenkova's DNAR): discrete node and "
         "edge states, hard attention to one in-edge, scalars only in the attention logits; BFS and Bellman-Ford",
         ("dnar_attention",), discrete=True)

__all__ = ["PROCESSORS", "Graph", "Processor", "ProcessorEntry", "get_processor", "register"]
