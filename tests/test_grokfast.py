"""Grokfast's filters against the paper's equations in numpy, step by step; their place next to gradient clipping; the
config keys; and in training: off by default (the optimiser of the CLRS protocol, bit for bit), and a run with a
filter resumed from a checkpoint ends exactly as an uninterrupted one.

The numpy references follow the authors' description, not nar's code: EMA m <- alpha m + (1 - alpha) g seeded with
the first gradient, g_hat = g + lambda m; MA over a list of the last w gradients, g_hat = g + lambda mean(list),
nothing added (with warm-up) until the list holds w.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from test_train import BASE, assert_trees_equal, compilation_cache  # noqa: F401 (a fixture)

from nar import grokfast
from nar.checkpoint import Checkpointer
from nar.config import load
from nar.train import CHECKPOINTS, Trainer, build_model, initial_state, make_optimizer

SHAPES = {"w": (3, 2), "b": (2,)}


def gradient_stream(steps: int, seed: int = 0) -> list[dict]:
    """Gradients of a two-leaf pytree, a fresh draw per step (float32, as training's)."""
    rng = np.random.default_rng(seed)
    return [{k: rng.normal(size=s).astype(np.float32) for k, s in SHAPES.items()} for _ in range(steps)]


def run_filter(tx, grads: list[dict], jit: bool) -> list[dict]:
    update = jax.jit(tx.update) if jit else tx.update
    state, out = tx.init({k: jnp.zeros(s, jnp.float32) for k, s in SHAPES.items()}), []
    for g in grads:
        g_hat, state = update(g, state)
        out.append({k: np.asarray(v) for k, v in g_hat.items()})
    return out


def ema_reference(grads: list[dict], alpha: float, lamb: float) -> list[dict]:
    out, m = [], None
    for g in grads:
        m = {k: np.float64(g[k]) for k in g} if m is None else m
        m = {k: alpha * m[k] + (1 - alpha) * g[k] for k in g}
        out.append({k: g[k] + lamb * m[k] for k in g})
    return out


def ma_reference(grads: list[dict], window: int, lamb: float, warmup: bool) -> list[dict]:
    out, recent = [], []
    for g in grads:
        recent = (recent + [g])[-window:]
        add = len(recent) == window or not warmup
        out.append({k: g[k] + (lamb * np.mean([r[k] for r in recent], axis=0) if add else 0) for k in g})
    return out


def assert_close(got: list[dict], want: list[dict]):
    assert len(got) == len(want)
    for step, (a, b) in enumerate(zip(got, want)):
        for k in SHAPES:
            np.testing.assert_allclose(a[k], b[k], rtol=2e-6, atol=2e-6, err_msg=f"step {step + 1}, leaf {k}")


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("alpha,lamb", [(0.98, 2.0), (0.5, 1.0)])
def test_ema_follows_the_equations(alpha, lamb, jit):
    grads = gradient_stream(6)
    got = run_filter(grokfast.ema(alpha, lamb), grads, jit)
    assert_close(got, ema_reference(grads, alpha, lamb))
    # The first step amplifies the gradient by 1 + lambda (the average starts at the first gradient, not at 0).
    np.testing.assert_allclose(got[0]["w"], (1 + lamb) * grads[0]["w"], rtol=1e-6)


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("warmup", [True, False])
def test_ma_follows_the_equations_across_the_window_wrapping(warmup, jit):
    grads = gradient_stream(8, seed=1)  # window 3: full at step 3, the oldest slot overwritten from step 4 on
    got = run_filter(grokfast.ma(3, 5.0, warmup=warmup), grads, jit)
    assert_close(got, ma_reference(grads, 3, 5.0, warmup))
    if warmup:  # nothing added before the window is full
        assert all(np.array_equal(got[s]["w"], grads[s]["w"]) for s in range(2))


def test_paper_defaults_and_bad_hyperparameters():
    t = load(None, ["train.grokfast=ema"]).train
    assert (t.grokfast_alpha, t.grokfast_ema_lambda, t.grokfast_window, t.grokfast_ma_lambda) == (0.98, 2.0, 100, 5.0)
    assert (t.grokfast_order, load(None).train.grokfast) == ("clip_first", "none")
    for item, key in [("train.grokfast=sma", "train.grokfast"), ("train.grokfast_order=last", "train.grokfast_order"),
                      ("train.grokfast_alpha=1.5", "train.grokfast_alpha"),
                      ("train.grokfast_ema_lambda=-1", "train.grokfast_ema_lambda"),
                      ("train.grokfast_window=0", "train.grokfast_window"),
                      ("train.grokfast_ma_lambda=nan", "train.grokfast_ma_lambda")]:
        with pytest.raises(ValueError, match=re.escape(key)):
            load(None, [item])
    for bad in (lambda: grokfast.ema(alpha=-0.1), lambda: grokfast.ma(window=0), lambda: grokfast.ma(lamb=-1.0)):
        with pytest.raises(ValueError, match="grokfast"):
            bad()


@pytest.mark.parametrize("order,norm", [("clip_first", 3.0), ("filter_first", 1.0)])
def test_order_relative_to_clipping(order, norm):
    """A gradient of norm 10 under clip 1.0 and EMA lambda 2: clipped then filtered keeps the step-1 amplification
    (1 + lambda) * 1; filtered then clipped is cut back to norm 1."""
    t = load(None, ["train.grokfast=ema", f"train.grokfast_order={order}"]).train
    clip = optax.clip_by_global_norm(1.0)
    assert grokfast.with_clip(load(None).train, clip) == [clip]  # off: clipping alone
    tx = optax.chain(*grokfast.with_clip(t, clip))
    g = {"w": jnp.full((4,), 5.0), "b": jnp.zeros((2,))}  # norm 10
    out, _ = tx.update(g, tx.init(g))
    assert np.linalg.norm(np.concatenate([np.ravel(x) for x in jax.tree.leaves(out)])) == pytest.approx(norm, rel=1e-6)


def test_off_by_default_is_the_clrs_optimiser_bit_for_bit():
    """With grokfast off, make_optimizer is CLRS's clip -> Adam -> -lr: same state layout (old checkpoints load)
    and the same updates, bit for bit, over a few steps on a real model's parameters."""
    cfg = load(None, BASE)
    params = nnx.to_pure_dict(nnx.split(build_model(cfg))[1])
    ours = make_optimizer(cfg)
    clrs = optax.chain(optax.clip_by_global_norm(cfg.train.grad_clip), optax.scale_by_adam(),
                       optax.scale(-cfg.train.learning_rate))
    s1, s2 = ours.init(params), clrs.init(params)
    assert jax.tree.structure(s1) == jax.tree.structure(s2)
    rng = np.random.default_rng(0)
    for _ in range(3):
        g = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params)
        (u1, s1), (u2, s2) = ours.update(g, s1, params), clrs.update(g, s2, params)
        assert_trees_equal(u1, u2)
    assert_trees_equal(s1, s2)
    on = make_optimizer(load(None, BASE + ["train.grokfast=ema"]))
    u3, _ = on.update(g, on.init(params), params)
    assert not np.array_equal(np.asarray(jax.tree.leaves(u3)[0]), np.asarray(jax.tree.leaves(u1)[0]))


class Interrupt(Exception):
    pass


def final_state(cfg, run) -> dict:
    params = nnx.to_pure_dict(nnx.split(build_model(cfg))[1])
    ckpt = Checkpointer(run / CHECKPOINTS)
    try:
        return ckpt.restore_intact(initial_state(cfg, params, make_optimizer(cfg)))
    finally:
        ckpt.close()


@pytest.mark.parametrize("variant", [["train.grokfast=ema"], ["train.grokfast=ma", "train.grokfast_window=3"]])
def test_resumed_run_with_grokfast_is_bitwise_identical(variant, tmp_path):
    """Interrupted after the checkpoint of step 5 (the MA window already full and wrapped), resumed: the final
    checkpoint, filter state included, equals the uninterrupted run's bit for bit. A filter state lost or reset at
    the resume would change every later step."""
    cfg = load(None, BASE + ["train.steps=10", "train.checkpoint_every=5", "train.eval_every=5", *variant])
    ref = Trainer(cfg, tmp_path / "ref", progress=False)
    ref.run()

    def stop(step, loss):
        if step == 7:
            raise Interrupt

    with pytest.raises(Interrupt):
        Trainer(cfg, tmp_path / "cut", progress=False).run(on_step=stop)
    resumed = Trainer(cfg, tmp_path / "cut", resume=True, progress=False)
    assert resumed.run()["resumed_from"] == 5
    want, got = final_state(cfg, tmp_path / "ref"), final_state(cfg, tmp_path / "cut")
    filters = [s for s in want["opt_state"] if isinstance(s, (grokfast.EmaState, grokfast.MaState))]
    assert len(filters) == 1 and int(filters[0][0]) >= 1  # the filter's state is in the checkpoint
    assert_trees_equal(got, want)
    assert_trees_equal(resumed.params, ref.params)
