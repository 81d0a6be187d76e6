"""`nar.bench.profile.op_times`: XLA's per-instruction times of a jitted call, matched to its compiled program."""

import jax
import jax.numpy as jnp
import pytest

from nar.bench.profile import format_op_times, op_times


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="trace events are named after instructions on CPU only")
def test_the_loop_body_matmul_is_found_with_its_shape_and_one_call_per_iteration():
    """A 3-iteration loop around a [512, 512] matmul and a cheap elementwise op: the matmul's instruction is
    reported with its shape, its JAX operation and 3 executions, and it takes most of the time."""
    def f(a, b):
        return jax.lax.fori_loop(0, 3, lambda i, x: jnp.tanh(x @ b), a)

    a = jnp.ones((512, 512)) / 512
    rows = op_times(jax.jit(f), a, a, top=50)
    dots = [r for r in rows if r["op"] == "dot_general"]
    assert dots, rows
    assert dots[0]["shape"] == "f32[512,512]" and dots[0]["calls"] == 3, dots
    assert rows[0]["op"] == "dot_general" and rows[0]["share"] > 0.5, rows
    assert abs(sum(r["share"] for r in rows) - 1.0) < 1e-6
    assert "dot_general" in format_op_times(rows, "f")
