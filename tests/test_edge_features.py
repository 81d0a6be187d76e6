"""Factored edge features (`nar.processors.base.EdgeFeatures`): the folded products equal the plain ones.

The model keeps the encoded edge features as raw probe columns times the encoders' kernels, and folds each
consumer's linear map into those kernels. These tests check that against the unfactored definition: NumPy sums of
the per-probe encodings, and the whole model run with `fold_edge_weights = false` (each consumer multiplies the
materialised features), on batches with padding (extra graph slots, padded nodes, edges and steps).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from nar.data import generate
from nar.data.batch import make_batch
from nar.model.net import Model, ModelConfig, graph_of
from nar.model.probes import truth_features
from nar.processors.base import EdgeFeatures


def _linear(d_in, d_out, use_bias, seed):
    return nnx.Linear(d_in, d_out, use_bias=use_bias, rngs=nnx.Rngs(seed),
                      bias_init=nnx.initializers.normal(1.0) if use_bias else nnx.initializers.zeros)


@pytest.mark.parametrize("K", [0, 2, 12])  # no edge probe; the broadcast form; the matmul form (K > 8)
@pytest.mark.parametrize("latent", [0, 3])
@pytest.mark.parametrize("use_bias", [True, False])
def test_linear_equals_the_layer_applied_to_the_dense_features(K, latent, use_bias):
    rng = np.random.default_rng(K + 10 * latent)
    E, H, D = 7, 5, 4
    raw, kernel, bias = rng.normal(size=(E, K)), rng.normal(size=(K, H)), rng.normal(size=H)
    lat = rng.normal(size=(E, latent)) if latent else None
    layer = _linear(H + latent, D, use_bias, seed=K)
    ef = EdgeFeatures(jnp.asarray(raw, jnp.float32), jnp.asarray(kernel, jnp.float32), jnp.asarray(bias, jnp.float32),
                      None if lat is None else jnp.asarray(lat, jnp.float32))
    dense = raw @ kernel + bias
    if latent:
        dense = np.concatenate([dense, lat], axis=-1)
    np.testing.assert_allclose(ef.dense(), dense, rtol=1e-5, atol=1e-5)
    w = np.asarray(layer.kernel[...])
    want = dense @ w + (np.asarray(layer.bias[...]) if use_bias else 0.0)
    np.testing.assert_allclose(ef.linear(layer), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("algorithm", ["bfs", "bellman_ford", "insertion_sort"])
def test_encoder_edge_features_are_the_sum_of_each_edge_probe_encoding(algorithm):
    """dense() is the sum, over the edge-located probes (node pointers included), of each probe's own linear map of
    its feature form, as CLRS's encoder adds them."""
    tb = generate(algorithm, 3, [5, 7, 4], seed=1).trajectories
    model = Model(ModelConfig(algorithm=algorithm, processor="mpnn", hidden=8, pointer_encoding="child"),
                  rngs=nnx.Rngs(2))
    b = make_batch(tb, model.config.graph_kind, num_graphs=len(tb) + 2)
    graph = jax.tree.map(jnp.asarray, graph_of(b))
    feats = {**{n: truth_features(b.inputs[n], *p, graph) for n, p in model.input_probes.items()},
             **{n: truth_features(b.hints[n][1], *p, graph) for n, p in model.hint_probes.items()}}
    _, edge, _ = model.encoder(feats, graph, 8)
    want = np.zeros((graph.num_edges, 8))
    edge_probes = 0
    for name, (location, type_, _) in model.encoder.probes.items():
        if location == "edge" or type_ in ("pointer", "permutation_pointer"):
            layer = model.encoder.layers[name]
            x = np.asarray(feats[name])[:, None]
            want += x @ np.asarray(layer.kernel[...]) + np.asarray(layer.bias[...])
            edge_probes += 1
    assert edge_probes == edge.raw_ExK.shape[1] >= 1
    np.testing.assert_allclose(edge.dense(), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("processor,algorithm", [("mpnn", "bfs"), ("pgn", "bellman_ford"),
                                                 ("triplet_gmpnn", "bfs"), ("tropical", "bellman_ford"),
                                                 ("g_forgetnet", "insertion_sort")])
def test_model_predictions_equal_the_unfactored_computation(processor, algorithm):
    """Outputs, hint logits and node states, padding included, match the same parameters run with
    `fold_edge_weights = false`, whose edge consumers multiply the materialised [E, H] features."""
    tb = generate(algorithm, 3, [5, 8, 6], seed=3).trajectories
    cfg = ModelConfig(algorithm=algorithm, processor=processor, hidden=8)
    need = make_batch(tb, cfg.graph_kind, triplets=cfg.triplets).pad_sizes
    pad = dataclasses.replace(need, nodes=need.nodes + 8, edges=need.edges + 64, steps=need.steps + 2,
                              graphs=need.graphs + 2)
    b = jax.device_put(make_batch(tb, cfg.graph_kind, pad=pad, num_graphs=len(tb) + 2, triplets=cfg.triplets))

    def run(fold):
        model = Model(dataclasses.replace(cfg, fold_edge_weights=fold), rngs=nnx.Rngs(0))
        gd, params = nnx.split(model)
        f = jax.jit(lambda p, batch: nnx.merge(gd, p)(batch, train=False, trace=True),
                    compiler_options={"xla_backend_optimization_level": 0})
        return params, jax.tree.map(np.asarray, f(params, b))

    params, factored = run(True)
    plain_params, plain = run(False)
    jax.tree.map(np.testing.assert_array_equal, params, plain_params)  # the option changes no parameter
    for what in ("outputs", "hints"):
        for name in getattr(plain, what):
            np.testing.assert_allclose(getattr(factored, what)[name], getattr(plain, what)[name], rtol=1e-4,
                                       atol=1e-4, err_msg=f"{processor} {algorithm} {what} {name}")
    np.testing.assert_allclose(factored.hidden, plain.hidden, rtol=1e-4, atol=1e-4)
    assert np.isfinite(factored.hidden).all()


@pytest.mark.parametrize("field", ["fold_edge_weights", "skip_padded_steps"])
def test_switches_must_be_bools(field):
    with pytest.raises(ValueError, match="fold_edge_weights and skip_padded_steps must be true or false.*'yes'"):
        ModelConfig(**{field: "yes"})
