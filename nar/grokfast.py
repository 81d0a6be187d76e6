"""Grokfast (Lee et al. 2024, "Grokfast: Accelerated Grokking by Amplifying Slow Gradients") as optax transformations.

Both filters add an amplified low-pass of the gradient history to the current gradient, g_hat = g + lambda * slow(g),
and go before the optimiser (Adam sees g_hat; weight decay inside the optimiser is not filtered):

- `ema`: slow(g) is an exponential moving average m <- alpha * m + (1 - alpha) * g, started from the first gradient
  (so step 1 gives (1 + lambda) * g, as the authors' code does). Defaults alpha = 0.98, lambda = 2.
- `ma`: slow(g) is the mean of the last `window` gradients, the current one included; with `warmup` (the default)
  nothing is added until the window is full. Defaults window = 100, lambda = 5. It keeps `window` copies of the
  gradients.

The state is a named tuple of arrays (a pytree), so it lives in the optimiser state: jitted, sharded and
checkpointed with it. `with_clip` places the filter a run's `train.grokfast*` keys ask for next to gradient clipping.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


class EmaState(NamedTuple):
    """`started`: 1 once a gradient has seeded `ema` (int32 scalar); `ema`: the moving average, like the params."""

    started: jax.Array
    ema: Any


class MaState(NamedTuple):
    """`filled`: how many of the `window` slots hold a gradient; `next`: the slot the next gradient overwrites;
    `window`: the last gradients, each leaf with a leading axis of the window's length."""

    filled: jax.Array
    next: jax.Array
    window: Any


def ema(alpha: float = 0.98, lamb: float = 2.0) -> optax.GradientTransformation:
    """Grokfast-EMA: g + lamb * EMA_alpha(g), the average seeded with the first gradient."""
    if not 0 <= alpha <= 1:
        raise ValueError(f"grokfast alpha must be in [0, 1], got {alpha!r}")
    if not lamb >= 0:
        raise ValueError(f"grokfast lambda must be >= 0, got {lamb!r}")

    def init(params):
        return EmaState(jnp.zeros([], jnp.int32), jax.tree.map(jnp.zeros_like, params))

    def update(grads, state, params=None):
        del params
        seeded = state.started > 0
        # Before the first update the average is the first gradient itself, then it is updated with that gradient,
        # as the authors' code does (the result is g up to rounding).
        avg = jax.tree.map(lambda m, g: alpha * jnp.where(seeded, m, g) + (1 - alpha) * g, state.ema, grads)
        out = jax.tree.map(lambda g, m: g + lamb * m, grads, avg)
        return out, EmaState(jnp.ones([], jnp.int32), avg)

    return optax.GradientTransformation(init, update)


def ma(window: int = 100, lamb: float = 5.0, warmup: bool = True) -> optax.GradientTransformation:
    """Grokfast-MA: g + lamb * (mean of the last `window` gradients, g included); with `warmup`, g unchanged until
    `window` gradients have been seen."""
    if not (isinstance(window, int) and window >= 1):
        raise ValueError(f"grokfast window must be an integer >= 1, got {window!r}")
    if not lamb >= 0:
        raise ValueError(f"grokfast lambda must be >= 0, got {lamb!r}")

    def init(params):
        slots = jax.tree.map(lambda p: jnp.zeros((window, *jnp.shape(p)), jnp.result_type(p)), params)
        return MaState(jnp.zeros([], jnp.int32), jnp.zeros([], jnp.int32), slots)

    def update(grads, state, params=None):
        del params
        slots = jax.tree.map(lambda w, g: w.at[state.next].set(g), state.window, grads)
        filled = jnp.minimum(state.filled + 1, window)
        active = (filled == window) if warmup else jnp.bool_(True)
        out = jax.tree.map(lambda g, w: jnp.where(active, g + lamb * (jnp.sum(w, axis=0) / filled), g), grads, slots)
        return out, MaState(filled, (state.next + 1) % window, slots)

    return optax.GradientTransformation(init, update)


def with_clip(train, clip: optax.GradientTransformation) -> list[optax.GradientTransformation]:
    """The stages before the optimiser for a `TrainConfig`: `clip` alone when `train.grokfast` is "none", else
    `clip` and the filter ("ema" or "ma", with its hyperparameters) in `train.grokfast_order`. "clip_first" (the
    default, the authors' order where they clip) keeps the amplification: the clipped gradient is filtered and not
    clipped again. "filter_first" clips the amplified gradient, which shrinks lambda's effect when the norm exceeds
    the clip."""
    if train.grokfast == "none":
        return [clip]
    if train.grokfast == "ema":
        slow = ema(train.grokfast_alpha, train.grokfast_ema_lambda)
    else:  # "ma" (TrainConfig checks the name)
        slow = ma(train.grokfast_window, train.grokfast_ma_lambda)
    return [clip, slow] if train.grokfast_order == "clip_first" else [slow, clip]
