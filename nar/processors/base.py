"""The processor interface shared by every processor.

A processor runs one step of message passing:

    hidden, edge_latent = processor(node_fts [N, H], edge_fts [E, H], graph_fts [G, H], graph, hidden [N, H])

`graph` is a `Graph` (the padded processing graph). `edge_latent` is `None` or [E, L] extra edge features for the
decoders (Triplet-GMPNN's). The model loop only carries what the processor returns.

Before each step the model asks `history(node_fts, hidden, closed=...)` what may cross from the previous step. That
history is what the processor receives as `hidden` and what the decoders see as h_prev (CLRS decoders read
[x, h_prev, h]). Plain processors pass it through; ForgetNet drops it and G-ForgetNet gates it
(`nar.processors.forget`), so one override removes the history everywhere it enters.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from flax import nnx


class Graph(NamedTuple):
    """Processing graph of a padded batch: edges sorted by receiver; padding lives in the last graph slot."""

    senders: Any  # [E] int32
    receivers: Any  # [E] int32
    node_graph: Any  # [N] int32 graph slot of each node
    edge_graph: Any  # [E] int32 graph slot of each edge
    n_node: Any  # [G] int32
    triplets: Any = None  # [P, 3] int32 (i->j, i->k, j->k) edge indices sorted by j->k, padding rows -1
    dense_nodes: Any = None  # [G - 1, M] int32 node ids per sample slot (-1: none): dense complete-graph triplets
    # [E] bool: the edges messages may pass over (None: every edge). The model sets it per step for a processor
    # registered with `adjacency=True` (PGN): CLRS's adjacency mask on the complete message graph.
    edge_mask: Any = None

    @property
    def num_nodes(self) -> int:
        """Padded node count N."""
        return self.node_graph.shape[0]

    @property
    def num_edges(self) -> int:
        """Padded edge count E."""
        return self.senders.shape[0]

    @property
    def num_graphs(self) -> int:
        """Graph slots G, the padding graph included."""
        return self.n_node.shape[0]


class Processor(nnx.Module):
    """Base class: subclasses implement `__call__` with the signature in the module docstring."""

    #: Width of the edge latent returned to the decoders (0: none).
    edge_latent_size: int = 0

    def history(self, node_fts, hidden, *, closed: bool = False):
        """(the history the step may use [N, H], {name: [N] per-node statistic}). `closed` shuts a learned gate."""
        del node_fts, closed
        return hidden, {}
