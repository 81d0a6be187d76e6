"""ForgetNet and G-ForgetNet (Bohde et al., ICLR 2024): history-free and gated-history wrappers of a processor.

Algorithm execution is Markov in its hints, so the previous hidden state h_prev is a pathway the task does not
need. Both wrappers act through `Processor.history`, the one place h_prev enters a step:

    ForgetNet:    hist = 0                                   (processor input, gate residual, decoders: all 0)
    G-ForgetNet:  g_i = sigmoid(G2 ReLU(G1 [x_i || h_prev_i])),  hist_i = g_i * h_prev_i        (g in (0, 1)^H)

and `hist` is what the wrapped processor receives as its hidden state and what the decoders see as h_prev. With
`closed=True` G-ForgetNet's gate is shut (g = 0): the model is then exactly ForgetNet with the same parameters,
the pure Markov model the paper evaluates. The mean gate is reported as the per-node statistic `gate` (the model
averages it over real nodes and steps, for logging and for the gate penalty).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from nar.processors.base import Graph, Processor


class Forget(Processor):
    """Wraps `base` (built by the model from `ModelConfig.base_processor`); `history_gate=False` is ForgetNet,
    `history_gate=True` G-ForgetNet. The gate is a 2-layer MLP in the style of Triplet-GMPNN's update gate."""

    def __init__(self, hidden: int, *, rngs: nnx.Rngs, base: Processor, history_gate: bool = False):
        self.base = base
        self.edge_latent_size = base.edge_latent_size
        self.factored_edges = base.factored_edges
        self.gated = history_gate
        if history_gate:
            self.gate_in = nnx.Linear(2 * hidden, hidden, rngs=rngs)
            self.gate_out = nnx.Linear(hidden, hidden, rngs=rngs)

    def history(self, node_fts, hidden, *, closed: bool = False):
        """ForgetNet: zeros; G-ForgetNet: g * h_prev (zeros when `closed`), with the gate as statistic `gate`."""
        if not self.gated or closed:
            zero = jnp.zeros_like(hidden)
            return zero, ({"gate": zero[:, 0]} if self.gated else {})
        gate_NxH = jax.nn.sigmoid(self.gate_out(jax.nn.relu(self.gate_in(jnp.concatenate([node_fts, hidden], -1)))))
        return gate_NxH * hidden, {"gate": gate_NxH.mean(-1)}

    def __call__(self, node_fts, edge_fts, graph_fts, graph: Graph, hidden):
        return self.base(node_fts, edge_fts, graph_fts, graph, hidden)
