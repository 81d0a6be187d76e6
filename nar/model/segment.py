"""Segment reductions over a padded batch: softmax over a node's edges, over a graph's nodes, and Sinkhorn.

Empty segments (padding nodes with no edges, empty graph slots) are safe: their max is 0, not -inf, so nothing
becomes NaN, and they are masked out of every loss and metric.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def segment_max(x, seg, num_segments: int, sorted_: bool = False):
    """Max per segment; empty segments give 0."""
    m = jax.ops.segment_max(x, seg, num_segments, indices_are_sorted=sorted_)
    return jnp.where(jnp.isfinite(m), m, 0.0)


def segment_logsumexp(x, seg, num_segments: int, sorted_: bool = False, extra=None):
    """log sum exp per segment; `extra` [num_segments]: one more logit per segment, an option outside its elements
    (the discrete step's "no edge"), counted in the sum."""
    m = segment_max(x, seg, num_segments, sorted_)
    m = jax.lax.stop_gradient(m if extra is None else jnp.maximum(m, extra))
    s = jax.ops.segment_sum(jnp.exp(x - m[seg]), seg, num_segments, indices_are_sorted=sorted_)
    if extra is not None:
        s = s + jnp.exp(extra - m)
    return m + jnp.log(jnp.maximum(s, 1e-30))


def segment_log_softmax(x, seg, num_segments: int, sorted_: bool = False, extra=None):
    return x - segment_logsumexp(x, seg, num_segments, sorted_, extra)[seg]


def segment_softmax(x, seg, num_segments: int, sorted_: bool = False, extra=None):
    """Softmax over each segment's elements (and its `extra` logit, whose probability is left out of the result)."""
    return jnp.exp(segment_log_softmax(x, seg, num_segments, sorted_, extra))


def segment_argmax(x, seg, num_segments: int, sorted_: bool = False):
    """Index of the (first) largest element of each segment, per trailing column; empty segments give 0."""
    m = jax.ops.segment_max(x, seg, num_segments, indices_are_sorted=sorted_)
    idx = jnp.arange(x.shape[0]).reshape((-1,) + (1,) * (x.ndim - 1))
    cand = jnp.where(x == m[seg], idx, x.shape[0])
    first = jax.ops.segment_min(cand, seg, num_segments, indices_are_sorted=sorted_)
    return jnp.where(first >= x.shape[0], 0, first)


def segment_max_pick(x, seg, num_segments: int, sorted_: bool = False):
    """Max per segment (empty segments give 0) whose gradient goes to one arg-max, the first, instead of being
    split among ties: a max-plus sub-gradient that stays finite and sparse."""
    first = segment_argmax(jax.lax.stop_gradient(x), seg, num_segments, sorted_)
    empty = jax.ops.segment_sum(jnp.ones(x.shape[0]), seg, num_segments, indices_are_sorted=sorted_) == 0
    empty = empty.reshape(empty.shape + (1,) * (x.ndim - 1))
    return jnp.where(empty, 0.0, jnp.take_along_axis(x, first, axis=0))


def segment_onehot_argmax(x, seg, num_segments: int, sorted_: bool = False):
    """One-hot (float) of each segment's first arg-max."""
    first = segment_argmax(x, seg, num_segments, sorted_)
    return (jnp.arange(x.shape[0]) == first[seg]).astype(x.dtype)


def log_sinkhorn(logits_E, rows, cols, num_nodes: int, steps: int, temperature: float, noise_key=None):
    """Log-domain Sinkhorn over the edges of complete graphs: alternately normalise each node's row (the edges it
    receives: its pointer candidates) and column (the edges it sends). CLRS's permutation decoder, sparse."""
    x = logits_E
    if noise_key is not None:
        u = jax.random.uniform(noise_key, x.shape, minval=1e-12, maxval=1.0)
        x = x - jnp.log(-jnp.log(u + 1e-12) + 1e-12)  # Gumbel noise
    x = x / temperature

    def body(_, x):
        x = segment_log_softmax(x, rows, num_nodes, sorted_=True)
        return segment_log_softmax(x, cols, num_nodes)

    return jax.lax.fori_loop(0, steps, body, x)
