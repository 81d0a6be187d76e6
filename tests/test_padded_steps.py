"""Hint steps that no sample reaches are skipped in the model's scan: more padded steps change nothing scored.

A training batch is padded to its pad group's step bucket, so its last steps are often beyond every sample's
length; the model skips them (`lax.cond`) unless `model.skip_padded_steps = false`. The truth here is the same
batch padded to its own longest trajectory: the predictions of every real step, the training loss and its gradient
must be the same.
"""

import dataclasses

import jax
import numpy as np
import pytest
from flax import nnx

from nar.data import generate
from nar.data.batch import make_batch
from nar.model.losses import training_loss
from nar.model.net import Model, ModelConfig


@pytest.mark.parametrize("algorithm,processor,skip", [("bfs", "mpnn", True), ("bellman_ford", "pgn_mask", True),
                                                      ("insertion_sort", "mpnn", True), ("bfs", "mpnn", False)])
def test_extra_padded_steps_change_no_prediction_loss_or_gradient(algorithm, processor, skip):
    tb = generate(algorithm, 3, [5, 8, 6], seed=3).trajectories
    cfg = ModelConfig(algorithm=algorithm, processor=processor, hidden=8, skip_padded_steps=skip)
    model = Model(cfg, rngs=nnx.Rngs(0))
    gd, params = nnx.split(model)
    bucket = make_batch(tb, cfg.graph_kind).pad_sizes
    own = dataclasses.replace(bucket, steps=int(tb.n_step.max()))  # the truth: no step beyond the longest trajectory
    longer = dataclasses.replace(own, steps=own.steps + 3)
    batches = [jax.device_put(make_batch(tb, cfg.graph_kind, pad=pad)) for pad in (own, longer)]

    @jax.jit
    def run(p, batch):
        def loss(p):
            return training_loss(nnx.merge(gd, p), batch, jax.random.key(1))[0]
        value, grad = jax.value_and_grad(loss)(p)
        return value, grad, nnx.merge(gd, p)(batch, train=False)

    (loss_a, grad_a, pred_a), (loss_b, grad_b, pred_b) = (run(params, b) for b in batches)
    np.testing.assert_allclose(loss_b, loss_a, rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6), grad_a, grad_b)
    for name in pred_a.outputs:
        np.testing.assert_allclose(pred_b.outputs[name], pred_a.outputs[name], rtol=1e-5, atol=1e-5)
    steps = own.steps - 1  # the hint predictions of steps 1 .. T-1
    for name in pred_a.hints:
        np.testing.assert_allclose(pred_b.hints[name][:steps], pred_a.hints[name], rtol=1e-5, atol=1e-5)
        assert np.asarray(pred_b.hints[name][steps:]).any() != skip  # skipped steps output zeros, computed ones not
