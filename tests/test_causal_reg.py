"""Hint-ReLIC (train.causal_reg): the executor's certificate, the loss against numpy, its safety without certified
steps, the training hook on several processors, a run that resumes bit for bit, and the refused options."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from test_train import Interrupt, assert_trees_equal, compilation_cache, read_metrics  # noqa: F401 (an autouse fixture)

from nar.algorithms import execute, get_algorithm
from nar.config import load
from nar.data import clrs_train
from nar.model.losses import training_loss
from nar.model.relic import HintRelic, hint_relic_loss
from nar.train import Trainer, build_model
from nar.training.causal import augment, causal_groups, check_causal

ALGORITHMS = ["dfs", "bfs", "bellman_ford", "insertion_sort", "bubble_sort", "heapsort", "quicksort"]


def inputs_of(trajectory, algorithm: str) -> dict:
    """The keyword inputs `execute` takes, read back from a trajectory's dense inputs."""
    ins = trajectory.inputs
    if get_algorithm(algorithm).kind == "sort":
        return {"key": ins["key"]}
    out = {"A": ins["A"]}
    if get_algorithm(algorithm).needs_source:
        out["s"] = int(np.argmax(ins["s"]))
    return out


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_certified_steps_hold_when_the_executor_reruns_the_augmented_inputs(algorithm):
    """Each augmented sample, rerun on its own by `execute`, has hints 0 .. c equal to the original's (c certified
    steps) and, where both trajectories are longer, a different hint at step c + 1 (the certificate is the longest
    one); certified samples really have other inputs, and the batch certifies something."""
    tb = clrs_train(algorithm, 12, seed=5, sizes=[6, 9]).trajectories
    aug, certified, changed = augment(tb, np.random.default_rng(0))
    assert certified.sum() > 0 and (certified <= np.maximum(tb.n_step - 1, 0)).all()
    for i in range(len(tb)):
        orig = tb.trajectory(i)
        again = execute(algorithm, **inputs_of(aug.trajectory(i), algorithm))
        c = int(certified[i])
        if c == 0:
            continue
        assert changed[i]
        assert any(not np.array_equal(v, orig.inputs[k]) for k, v in aug.trajectory(i).inputs.items())
        for name, h in orig.hints.items():
            np.testing.assert_array_equal(again.hints[name][:c + 1], h[:c + 1], err_msg=f"{name} sample {i}")
        if c + 1 < min(orig.length, again.length):
            assert any(not np.array_equal(again.hints[k][c + 1], h[c + 1]) for k, h in orig.hints.items())


def numpy_relic(h, h_aug, nodes, certified, tau, alpha):
    """Hint-ReLIC written out per (step, sample) with explicit softmaxes and KLs."""
    losses = []
    for t in range(h.shape[0]):
        for g, ids in enumerate(nodes):
            ids = ids[ids >= 0]
            if t >= certified[g]:
                continue
            x = h[t, ids] / np.linalg.norm(h[t, ids], axis=1, keepdims=True)
            y = h_aug[t, ids] / np.linalg.norm(h_aug[t, ids], axis=1, keepdims=True)
            s = x @ y.T / tau
            p = np.exp(s) / np.exp(s).sum(1, keepdims=True)
            q = np.exp(s.T) / np.exp(s.T).sum(1, keepdims=True)
            for i in range(len(ids)):
                kl_pq = np.sum(p[i] * np.log(p[i] / q[i]))
                kl_qp = np.sum(q[i] * np.log(q[i] / p[i]))
                losses.append(0.5 * (-np.log(p[i, i]) + alpha * kl_pq - np.log(q[i, i]) + alpha * kl_qp))
    return np.mean(losses), len(losses)


def test_loss_matches_numpy_on_a_tiny_example():
    rng = np.random.default_rng(1)
    h, h_aug = rng.normal(size=(3, 6, 4)), rng.normal(size=(3, 6, 4))  # node 5: padding
    nodes = np.array([[0, 1, 2], [3, 4, -1]])
    certified = np.array([2, 1])
    for tau, alpha in [(0.1, 1.0), (0.5, 0.0), (1.0, 3.0)]:
        got, count = hint_relic_loss(jnp.asarray(h, jnp.float32), jnp.asarray(h_aug, jnp.float32), nodes,
                                     certified, tau, alpha)
        want, n = numpy_relic(h, h_aug, nodes, certified, tau, alpha)
        assert int(count) == n == 3 * 2 + 2
        np.testing.assert_allclose(float(got), want, rtol=1e-4)


def test_no_certified_step_gives_zero_with_finite_gradients():
    h = jnp.zeros((2, 5, 4))  # zero states too: the normalisation must not divide by zero
    nodes, none = np.array([[0, 1, 2], [3, 4, -1]]), np.zeros(2, np.int32)
    loss, count = hint_relic_loss(h, h, nodes, none, 0.1, 1.0)
    grads = jax.grad(lambda a, b: hint_relic_loss(a, b, nodes, none, 0.1, 1.0)[0], argnums=(0, 1))(h, h)
    assert float(loss) == 0.0 and int(count) == 0
    for g in grads:
        assert np.isfinite(np.asarray(g)).all() and not np.asarray(g).any()


TINY = ["model.hidden=8", "train.sizes=[4]", "train.size_mix=per_sample", "train.batch_size=4",
        "train.pad_lookahead=0", "train.val_size=4", "train.val_samples=4", "train.eval_every=100",
        "train.log_every=1", "train.causal_reg=hint_relic"]


@pytest.mark.parametrize("config", ["insertion_sort/pgn", "insertion_sort/triplet_gmpnn", "insertion_sort/g_forgetnet"])
def test_every_encode_process_decode_processor_takes_the_regulariser(config):
    """The loss is the plain training loss of the original batch plus w times the logged regulariser, which is
    positive and averages over certified anchors; gradients are finite."""
    cfg = load(config, TINY)
    pair = jax.tree.map(jnp.asarray, causal_groups(cfg, 0, 1)[1][0])
    graphdef, params = nnx.split(build_model(cfg))
    key = jax.random.key(0)

    def loss(p):
        out = training_loss(nnx.merge(graphdef, p), pair, key, causal=HintRelic(2.0, 0.1, 1.0))
        return out[0], out[2]

    (with_reg, stats), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
    without = jax.jit(lambda p: training_loss(nnx.merge(graphdef, p), pair.batch, key)[0])(params)
    assert float(stats["certified_anchors"]) > 0 and float(stats["hint_relic"]) > 0
    np.testing.assert_allclose(float(with_reg), float(without) + 2.0 * float(stats["hint_relic"]), rtol=1e-5)
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))


def test_a_dfs_mpnn_run_with_hint_relic_trains_and_resumes_bit_for_bit(tmp_path):
    cfg = load("dfs/mpnn", TINY + ["train.steps=5", "train.checkpoint_every=3"])
    ref = Trainer(cfg, tmp_path / "ref", progress=False)
    ref.run()
    logged = [r for r in read_metrics(tmp_path / "ref") if "hint_relic" in r]
    assert len(logged) == 5 and all(r["hint_relic"] > 0 and r["certified_anchors"] > 0 for r in logged)

    def stop(step, loss):
        if step == 4:
            raise Interrupt

    with pytest.raises(Interrupt):
        Trainer(cfg, tmp_path / "cut", progress=False).run(on_step=stop)
    resumed = Trainer(cfg, tmp_path / "cut", resume=True, progress=False)
    assert resumed.run()["resumed_from"] == 3
    assert_trees_equal(resumed.params, ref.params)


@pytest.mark.parametrize("setting, key", [("train.causal_reg=relic", "train.causal_reg"),
                                          ("train.causal_reg_tau=0", "train.causal_reg_tau"),
                                          ("train.causal_reg_weight=-1", "train.causal_reg_weight"),
                                          ("train.causal_reg_alpha=-0.5", "train.causal_reg_alpha")])
def test_bad_values_are_refused_naming_the_key(setting, key):
    with pytest.raises(ValueError, match=key):
        load("dfs/mpnn", [setting])


def test_models_of_their_own_and_data_parallel_runs_are_refused():
    with pytest.raises(ValueError, match="encode-process-decode.*graphfsa"):
        check_causal(load("bfs/graphfsa", ["train.causal_reg=hint_relic"]), 1)
    with pytest.raises(ValueError, match="2 data-parallel groups"):
        check_causal(load("dfs/mpnn", ["train.causal_reg=hint_relic"]), 2)
