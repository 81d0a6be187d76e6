"""`model.dtype = "bfloat16"`: bfloat16 matmul operands, float32 accumulation, parameters and biases.

The truth is NumPy in float64 on operands rounded to bfloat16 (what the option promises), the lowered program's
dot instructions (which operand and result types XLA is asked for), and the float32 model (same parameters, close
predictions).
"""

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from nar.data import generate
from nar.data.batch import make_batch
from nar.model.net import Model, ModelConfig, use_matmul_dtype


def _bf16(x):
    return np.asarray(jnp.asarray(x, jnp.float32).astype(jnp.bfloat16).astype(jnp.float32), np.float64)


def test_linear_multiplies_rounded_operands_and_adds_the_float32_bias():
    rng = np.random.default_rng(0)
    layer = nnx.Linear(24, 7, rngs=nnx.Rngs(1), bias_init=nnx.initializers.normal(1.0))
    use_matmul_dtype(layer, jnp.bfloat16)
    x = rng.normal(size=(5, 24)).astype(np.float32)
    y = layer(jnp.asarray(x))
    assert y.dtype == jnp.float32 and layer.kernel[...].dtype == jnp.float32
    want = _bf16(x) @ _bf16(layer.kernel[...]) + np.asarray(layer.bias[...], np.float64)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
    # The rounding is real: the float32 product differs by more than float32's own error.
    exact = x.astype(np.float64) @ np.asarray(layer.kernel[...], np.float64) + np.asarray(layer.bias[...])
    assert np.abs(np.asarray(y) - exact).max() > 1e-3


def _dots(hlo: str):
    """(result type, operand types) of each dot_general in a lowered StableHLO module."""
    return re.findall(r"stablehlo\.dot_general.*?:\s*\((tensor<[^)]*)\)\s*->\s*(tensor<[^>]*>)", hlo)


@pytest.mark.parametrize("processor,algorithm", [("mpnn", "bfs"), ("triplet_gmpnn", "bellman_ford")])
def test_model_runs_its_matmuls_in_bfloat16_and_stays_close_to_float32(processor, algorithm):
    tb = generate(algorithm, 3, [5, 8, 6], seed=3).trajectories
    cfg = ModelConfig(algorithm=algorithm, processor=processor, hidden=16)
    b = jax.device_put(make_batch(tb, cfg.graph_kind, num_graphs=len(tb) + 1, triplets=cfg.triplets))

    def build(dtype):
        gd, params = nnx.split(Model(dataclasses.replace(cfg, dtype=dtype), rngs=nnx.Rngs(0)))
        return gd, params, (lambda p, batch: nnx.merge(gd, p)(batch, train=False))

    gd32, p32, f32 = build("float32")
    gd16, p16, f16 = build("bfloat16")
    jax.tree.map(np.testing.assert_array_equal, p32, p16)  # same parameters, float32 both
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(p16))
    assert build("bfloat16")[0] == gd16  # a second model compiles to the same program (no recompilation)

    dots16, dots32 = _dots(jax.jit(f16).lower(p16, b).as_text()), _dots(jax.jit(f32).lower(p32, b).as_text())
    assert len(dots16) == len(dots32) > 0
    # Every linear layer's dot takes bfloat16 operands and returns float32; the float32 model has none.
    bf16_dots = [d for d in dots16 if "bf16" in d[0]]
    assert len(bf16_dots) >= 8 and all(d[1].endswith("xf32>") and "f32" not in d[0] for d in bf16_dots)
    assert not any("bf16" in d[0] for d in dots32)

    out16, out32 = jax.jit(f16)(p16, b), jax.jit(f32)(p32, b)
    for name in out32.outputs:
        a, c = np.asarray(out16.outputs[name]), np.asarray(out32.outputs[name])
        assert a.dtype == np.float32 and np.isfinite(a).all()
        assert not np.array_equal(a, c)  # the option changes the arithmetic ...
        np.testing.assert_allclose(a, c, rtol=0.1, atol=0.1 * np.abs(c).max())  # ... by bfloat16's rounding

    grads = jax.grad(lambda p: sum(jnp.sum(v) for v in f16(p, b).outputs.values()))(p16)
    assert all(g.dtype == jnp.float32 and np.isfinite(g).all() for g in jax.tree.leaves(grads))


def test_unknown_dtype_is_refused():
    with pytest.raises(ValueError, match="dtype must be one of .*'float16'"):
        ModelConfig(dtype="float16")


@pytest.mark.parametrize("processor", ["graphfsa", "dnar"])
def test_fsa_and_discrete_models_refuse_bfloat16_rather_than_ignore_it(processor):
    with pytest.raises(ValueError, match=f"dtype 'bfloat16' applies to the message-passing models; '{processor}'"):
        ModelConfig(algorithm="bfs", processor=processor, dtype="bfloat16")


def test_speed_benchmark_times_the_same_work_in_either_dtype():
    """`nar bench speed --dtype`: the option reaches the model, which does the same work: XLA counts the same dots
    plus one operation per element cast to bfloat16."""
    from nar.bench.speed import bench
    runs = {d: bench("bfs", "mpnn", 6, 2, 8, steps=1, mode="eval", dtype=d) for d in ("float32", "bfloat16")}
    assert [r["dtype"] for r in runs.values()] == ["float32", "bfloat16"]
    f32, bf16 = (runs[d]["eval"]["flops_per_batch"] for d in ("float32", "bfloat16"))
    assert 0 < f32 < bf16 < 1.2 * f32
