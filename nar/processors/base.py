"""The processor interface shared by every processor.

A processor runs one step of message passing:

    hidden, edge_latent = processor(node_fts [N, H], edge_fts [E, H], graph_fts [G, H], graph, hidden [N, H])

`graph` is a `Graph` (the padded processing graph). A processor whose class sets `factored_edges = True` receives
the edge features as `EdgeFeatures` instead of an array, and applies its edge weights with
`edge_linear(layer, edge_fts)`, which never builds the [E, H] features (a large saving on complete graphs) and
takes an array as well. `edge_latent` is `None` or [E, L] extra edge features for the
decoders (Triplet-GMPNN's). The model loop only carries what the processor returns.

Before each step the model asks `history(node_fts, hidden, closed=...)` what may cross from the previous step. That
history is what the processor receives as `hidden` and what the decoders see as h_prev (CLRS decoders read
[x, h_prev, h]). Plain processors pass it through; ForgetNet drops it and G-ForgetNet gates it
(`nar.processors.forget`), so one override removes the history everywhere it enters.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp
from flax import nnx


class Graph(NamedTuple):
    """Processing graph of a padded batch: edges sorted by receiver; padding lives in the last graph slot."""

    senders: Any  # [E] int32
    receivers: Any  # [E] int32
    node_graph: Any  # [N] int32 graph slot of each node
    edge_graph: Any  # [E] int32 graph slot of each edge: its receiver's, node_graph[receivers]
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


class EdgeFeatures(NamedTuple):
    """Edge features kept factored: [E, H] = raw [E, K] @ kernel [K, H] + bias [H], then the processor's edge latents
    [E, L] (if any) as further columns.

    raw holds the edge-located probes' feature forms side by side (K is their width: 1 per scalar, mask or pointer
    probe, C per categorical one), kernel their encoders' stacked kernels and bias the sum of their biases: exactly
    the sum of the per-probe encodings. Every consumer applies a linear map first (a processor's edge weight, a
    pointer decoder's edge term), and `linear` folds that map into the kernel (K x H x H' once) instead of
    multiplying the [E, H] features (E x H x H'): on a complete message graph, n^2 H^2 per step and consumer
    saved, half of MPNN's evaluation FLOPs at n = 256 (docs/benchmarks.md). `dense()` is the [E, H (+ L)] array."""

    raw_ExK: Any
    kernel_KxH: Any
    bias_H: Any
    latent_ExL: Any = None

    def dense(self):
        """The features as one array [E, H (+ L)]."""
        x = self.raw_ExK @ self.kernel_KxH + self.bias_H
        return x if self.latent_ExL is None else jnp.concatenate([x, self.latent_ExL], axis=-1)

    def linear(self, layer: nnx.Linear):
        """layer(self.dense()), computed without materialising the encoded features."""
        w = layer.kernel[...]
        H = self.kernel_KxH.shape[1]
        w_KxD, K = self.kernel_KxH @ w[:H], self.raw_ExK.shape[1]
        y = jnp.broadcast_to(self.bias_H @ w[:H], (self.raw_ExK.shape[0], w.shape[1]))
        if K > 8:
            y = y + self.raw_ExK @ w_KxD
        else:  # a few columns (K <= 3 for every built-in algorithm) as broadcast products: elementwise, so XLA fuses
            for k in range(K):  # them into the consumer's sums instead of writing an [E, D] product first
                y = y + self.raw_ExK[:, k, None] * w_KxD[k]
        if layer.bias is not None:
            y = y + layer.bias[...]
        return y if self.latent_ExL is None else y + self.latent_ExL @ w[H:]


def edge_linear(layer: nnx.Linear, edge_fts):
    """layer(edge_fts) for edge features given as an [E, H] array or factored (`EdgeFeatures`, folded)."""
    return edge_fts.linear(layer) if isinstance(edge_fts, EdgeFeatures) else layer(edge_fts)


class Processor(nnx.Module):
    """Base class: subclasses implement `__call__` with the signature in the module docstring."""

    #: Width of the edge latent returned to the decoders (0: none).
    edge_latent_size: int = 0
    #: Whether `__call__` takes the edge features factored (`EdgeFeatures`), not as [E, H].
    factored_edges: bool = False

    def history(self, node_fts, hidden, *, closed: bool = False):
        """(the history the step may use [N, H], {name: [N] per-node statistic}). `closed` shuts a learned gate."""
        del node_fts, closed
        return hidden, {}
