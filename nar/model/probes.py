"""Per-probe encoders and decoders, and conversions between a probe's stored form, its feature form and logits.

Feature form (what an encoder reads; soft predictions take the same form): scalar/mask -> float [rows];
mask_one -> float [N] one-hot over each graph's nodes; categorical -> float [rows, C]; node pointer -> float [E]
one-hot over each node's incoming edges (the edge from the target to the node).

Logits (what a decoder writes): scalar -> value [rows]; mask -> logit [rows]; mask_one -> [N]; categorical ->
[rows, C]; pointer and permutation pointer -> [E].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from nar.model.segment import segment_max, segment_onehot_argmax, segment_softmax
from nar.processors.base import EdgeFeatures, Graph, edge_linear
from nar.specs import Location, Type

POINTERS = (Type.POINTER, Type.PERMUTATION_POINTER)


def truth_features(stored, location: str, type_: str, classes: int | None, graph: Graph):
    """Stored batch layout -> feature form (one-hot where needed)."""
    if type_ == Type.CATEGORICAL:
        return jax.nn.one_hot(stored, classes)
    if type_ in POINTERS:
        return (stored[graph.receivers] == jnp.arange(graph.num_edges)).astype(jnp.float32)
    return stored.astype(jnp.float32)


def predicted_features(logits, location: str, type_: str, graph: Graph, hard: bool):
    """Decoder logits -> feature form: soft (softmax/sigmoid, differentiable) or hard (arg-max, no gradient)."""
    if type_ == Type.SCALAR:
        return jax.lax.stop_gradient(logits) if hard else logits
    if type_ == Type.MASK:
        return (logits > 0).astype(jnp.float32) if hard else jax.nn.sigmoid(logits)
    if type_ == Type.CATEGORICAL:
        return jax.nn.one_hot(jnp.argmax(logits, -1), logits.shape[-1]) if hard else jax.nn.softmax(logits, -1)
    seg, num = (graph.node_graph, graph.num_graphs) if type_ == Type.MASK_ONE else (graph.receivers, graph.num_nodes)
    if hard:
        return jax.lax.stop_gradient(segment_onehot_argmax(logits, seg, num, type_ != Type.MASK_ONE))
    return segment_softmax(logits, seg, num, type_ != Type.MASK_ONE)


def _target(location: str, type_: str) -> str:
    """Where a probe's encoding is added: node pointers become edge features."""
    return Location.EDGE if type_ in POINTERS else location


class Encoder(nnx.Module):
    """One linear map per probe (CLRS), summed into node [N, H], edge [E, H] and graph [G, H] features."""

    def __init__(self, probes: dict, hidden: int, *, rngs: nnx.Rngs, small_init: frozenset = frozenset()):
        """`small_init`: probes whose weights start from a truncated normal of std 1/sqrt(hidden) (CLRS's
        'xavier_on_scalars' does this for scalar hints); the rest use LeCun initialisation."""
        self.probes = dict(probes)
        layers = {}
        for name, (_, type_, classes) in self.probes.items():
            init = {}
            if name in small_init:
                init["kernel_init"] = nnx.initializers.truncated_normal(hidden ** -0.5)
            layers[name] = nnx.Linear(classes if type_ == Type.CATEGORICAL else 1, hidden, rngs=rngs, **init)
        self.layers = nnx.Dict(layers)

    def __call__(self, feats: dict, graph: Graph, hidden: int, reverse_E=None):
        """(node [N, H], edge features (`EdgeFeatures`, factored), graph [G, H]). `reverse_E`
        (`nar.model.net.reverse_edges`): move each node pointer's encoding from the edge p_i -> i, where its feature
        form sits, to the edge i -> p_i (`ModelConfig.pointer_encoding = "clrs"`)."""
        out = {Location.NODE: jnp.zeros((graph.num_nodes, hidden)),
               Location.GRAPH: jnp.zeros((graph.num_graphs, hidden))}
        raw = [jnp.zeros((graph.num_edges, 0))]
        for name, (location, type_, _) in self.probes.items():
            x = feats[name]
            if type_ in POINTERS and reverse_E is not None:
                x = x[reverse_E]
            x = x if type_ == Type.CATEGORICAL else x[..., None]
            where = _target(location, type_)
            if where == Location.EDGE:
                raw.append(x.astype(jnp.float32))
            else:
                out[where] = out[where] + self.layers[name](x)
        return out[Location.NODE], self.edge_features(jnp.concatenate(raw, axis=-1), hidden), out[Location.GRAPH]

    def _edge_layers(self):
        """The encoders of the probes that become edge features, in the order of `EdgeFeatures.raw_ExK`'s columns."""
        return [self.layers[name] for name, (location, type_, _) in self.probes.items()
                if _target(location, type_) == Location.EDGE]

    @property
    def edge_width(self) -> int:
        """K: the raw columns of the edge features (`EdgeFeatures.raw_ExK`)."""
        return sum(layer.in_features for layer in self._edge_layers())

    def edge_features(self, raw_ExK, hidden: int) -> EdgeFeatures:
        """The edge features of raw edge-probe columns (laid out as `__call__` lays them out)."""
        layers = self._edge_layers()
        kernel_KxH = jnp.concatenate([jnp.zeros((0, hidden))] + [layer.kernel[...] for layer in layers], axis=0)
        bias_H = sum((layer.bias[...] for layer in layers), jnp.zeros((hidden,)))
        return EdgeFeatures(raw_ExK, kernel_KxH, bias_H)


class _PointerDecoder(nnx.Module):
    """logit(i -> j) = w . max(A h_i, B h_j + C e_ji) over the edges j -> i (CLRS's pointer decoder)."""

    def __init__(self, node_in: int, edge_in: int, hidden: int, *, rngs: nnx.Rngs):
        self.recv = nnx.Linear(node_in, hidden, rngs=rngs)
        self.send = nnx.Linear(node_in, hidden, rngs=rngs)
        self.edge = nnx.Linear(edge_in, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, 1, rngs=rngs)

    def __call__(self, h_NxD, edge, graph: Graph):
        p_ExH = jnp.maximum(self.recv(h_NxD)[graph.receivers],
                            self.send(h_NxD)[graph.senders] + edge_linear(self.edge, edge))
        return self.out(p_ExH)[:, 0]


class _GraphDecoder(nnx.Module):
    """Graph probes: L(max over the graph's nodes of h) + L(graph features)."""

    def __init__(self, node_in: int, hidden: int, size: int, *, rngs: nnx.Rngs):
        self.node = nnx.Linear(node_in, size, rngs=rngs)
        self.graph = nnx.Linear(hidden, size, rngs=rngs)

    def __call__(self, h_NxD, graph_fts, graph: Graph):
        pooled = segment_max(h_NxD, graph.node_graph, graph.num_graphs)
        return self.node(pooled) + self.graph(graph_fts)


class Decoder(nnx.Module):
    """One decoder per probe, reading h = [x || h_prev || h] (3H) per node and the edge features."""

    def __init__(self, probes: dict, hidden: int, edge_in: int, *, rngs: nnx.Rngs):
        self.probes = dict(probes)
        node_in = 3 * hidden
        layers = {}
        for name, (location, type_, classes) in self.probes.items():
            size = classes if type_ == Type.CATEGORICAL else 1
            if location == Location.EDGE:
                raise ValueError(f"probe {name!r}: edge-located hints and outputs are not supported yet")
            if type_ in POINTERS:
                layers[name] = _PointerDecoder(node_in, edge_in, hidden, rngs=rngs)
            elif location == Location.GRAPH:
                layers[name] = _GraphDecoder(node_in, hidden, size, rngs=rngs)
            else:
                layers[name] = nnx.Linear(node_in, size, rngs=rngs)
        self.layers = nnx.Dict(layers)

    def __call__(self, h_NxD, edge, graph_fts, graph: Graph) -> dict:
        """`edge`: `EdgeFeatures` or the [E, D] array."""
        out = {}
        for name, (location, type_, _) in self.probes.items():
            layer = self.layers[name]
            if type_ in POINTERS:
                out[name] = layer(h_NxD, edge, graph)
            elif location == Location.GRAPH:
                y = layer(h_NxD, graph_fts, graph)
                out[name] = y if type_ == Type.CATEGORICAL else y[:, 0]
            else:
                y = layer(h_NxD)
                out[name] = y if type_ == Type.CATEGORICAL else y[:, 0]
        return out
