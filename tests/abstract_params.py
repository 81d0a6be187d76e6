"""Random parameters for a module built abstractly (`nnx.eval_shape`: no device work), shared by the tests:
running the library's initialisers eagerly would compile dozens of small programs, and the tests do not depend
on the initialisation."""

import jax
import numpy as np
from flax import nnx


def random_params(build, seed: int = 0, bias_std: float = 0.1):
    """(abstract module, graphdef, parameters as a pure dict of NumPy arrays) for `build()`: kernels
    N(0, 1/fan_in), layer-norm scales and the tropical shift 1, the tropical max-plus weights W_Q/K/V N(0, 1) (as
    the library initialises them), other parameters (biases) N(0, bias_std^2)."""
    abstract = nnx.eval_shape(build)
    graphdef, state = nnx.split(abstract)
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = str(getattr(path[-1], "key", path[-1]))
        if name == "kernel":
            return (rng.normal(size=leaf.shape) / np.sqrt(leaf.shape[0])).astype(np.float32)
        if name in ("w_q", "w_k", "w_v"):
            return rng.normal(size=leaf.shape).astype(np.float32)
        if name in ("scale", "shift"):
            return np.ones(leaf.shape, np.float32)
        return (bias_std * rng.normal(size=leaf.shape)).astype(np.float32)

    return abstract, graphdef, jax.tree_util.tree_map_with_path(fill, nnx.to_pure_dict(state))
