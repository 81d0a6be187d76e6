"""Hint-ReLIC's regulariser (Bevilacqua et al., ICML 2023, on ReLIC by Mitrovic et al., ICLR 2021), in JAX.

For every certified (sample, processor step t) (`nar.training.causal`), the processor's node states after step t
of the original run (x_i) and of the augmented run (y_j) are compared by cosine similarity over temperature tau,
s_ij = cos(x_i, y_j) / tau, among the nodes of the same sample. Node i's own twin must win:
P_i = softmax_j s_ij (original anchor, augmented candidates), Q_i = softmax_j s_ji (the other direction). Per
anchor node the loss is the mean over the two directions of -log P_ii + alpha KL(P_i || sg Q_i) and
-log Q_ii + alpha KL(Q_i || sg P_i), sg a stop-gradient (the KL's target is held fixed, our reading of ReLIC's
objective); the mean over every real node of every certified step is returned. No projection head (the model
stays the processor's; docs/causal_reg.md).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from nar.data.batch import Batch


class CausalPair(NamedTuple):
    """A training batch with its augmented twin, laid out in one padded shape (so node k of one is node k of the
    other). `nodes` [G - 1, M]: global id of each sample slot's a-th node, -1 beyond its size; `certified` [G - 1]:
    how many processor steps of each sample are certified (steps t < certified[g])."""

    batch: Batch
    augmented: Batch
    nodes: Any
    certified: Any


@dataclasses.dataclass(frozen=True)
class HintRelic:
    """The regulariser's settings (`train.causal_reg_*`), or None from `of` when it is off."""

    weight: float
    tau: float
    alpha: float

    @staticmethod
    def of(train) -> HintRelic | None:
        """From a `TrainConfig`."""
        if train.causal_reg == "none":
            return None
        return HintRelic(train.causal_reg_weight, train.causal_reg_tau, train.causal_reg_alpha)


_MASKED = -1e9  # logit of a slot beyond its sample's size: finite, so a fully masked row stays finite


def hint_relic_loss(hidden, hidden_aug, nodes, certified, tau: float, alpha: float):
    """(mean loss, number of (step, node) anchors it averages). hidden, hidden_aug [T, N, H]: node states per
    processor step of the two runs; nodes [G, M] global node ids per sample slot (-1 beyond its size); certified
    [G]: steps t < certified[g] count. No certified step gives (0, 0), with finite gradients."""
    valid = nodes >= 0  # [G, M]
    safe = jnp.where(valid, nodes, 0)

    def unit(h):  # [T, G, M, H], unit length per node (a zero state stays zero)
        x = h[:, safe]
        return x * jax.lax.rsqrt(jnp.sum(x * x, -1, keepdims=True) + 1e-12)

    x, y = unit(hidden), unit(hidden_aug)
    sim = jnp.einsum("tgih,tgjh->tgij", x, y) / tau  # [T, G, M, M]
    pair = valid[:, :, None] & valid[:, None, :]
    log_p = jax.nn.log_softmax(jnp.where(pair, sim, _MASKED), -1)
    log_q = jax.nn.log_softmax(jnp.where(pair, jnp.swapaxes(sim, -1, -2), _MASKED), -1)

    def direction(lp, lq):  # -log of the own twin + alpha KL(p || sg q), per anchor [T, G, M]
        own = jnp.diagonal(lp, axis1=-2, axis2=-1)
        kl = jnp.sum(jnp.where(pair, jnp.exp(lp) * (lp - jax.lax.stop_gradient(lq)), 0.0), -1)
        return -own + alpha * kl

    per_anchor = 0.5 * (direction(log_p, log_q) + direction(log_q, log_p))
    steps = jnp.arange(hidden.shape[0])[:, None, None]
    weight = (steps < certified[None, :, None]) & valid[None]
    count = jnp.sum(weight)
    return jnp.sum(jnp.where(weight, per_anchor, 0.0)) / jnp.maximum(count, 1), count
