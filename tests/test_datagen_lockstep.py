"""Lockstep executors: a batch run at once equals each sample run alone.

The batched executors step every sample together, padding samples that are smaller (graphs of fewer nodes) or
finish sooner (data-dependent sorts) until the longest is done. Each single run is checked against textbook
oracles and dm-clrs fixtures elsewhere (test_algorithms.py, test_dmclrs_parity.py); here the padding must never
leak into a trajectory: every sample of a mixed batch must equal its own single run, probe for probe.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nar.algorithms import GraphBatch, execute, run_batch
from nar.specs import GRAPH_ALGORITHMS, SORTING_ALGORITHMS


def _assert_same(batch, k, single):
    got = batch.trajectory(k)
    for stage in ("inputs", "hints", "outputs"):
        for name, value in getattr(single, stage).items():
            np.testing.assert_array_equal(getattr(got, stage)[name], value, err_msg=f"sample {k}: {name}")


@st.composite
def graphs(draw):
    """1-5 graphs of 1-9 nodes each (sizes mixed), random density, signed weights and maybe self-loops."""
    out = []
    for _ in range(draw(st.integers(1, 5))):
        n = draw(st.integers(1, 9))
        seed = draw(st.integers(0, 2**31))
        rng = np.random.default_rng(seed)
        A = (rng.random((n, n)) < draw(st.sampled_from([0.0, 0.2, 0.5, 1.0]))) * rng.choice([1.0, 0.5, 2.0], (n, n))
        out.append((A, int(rng.integers(n))))
    return out


@pytest.mark.parametrize("algorithm", GRAPH_ALGORITHMS)
@settings(max_examples=60, deadline=None)
@given(graphs())
def test_mixed_size_graph_batch_equals_single_runs(algorithm, samples):
    with_source = algorithm != "dfs"
    batch = run_batch(algorithm, graphs=GraphBatch.from_dense([A for A, _ in samples]),
                      sources=[s for _, s in samples] if with_source else None)
    for k, (A, s) in enumerate(samples):
        _assert_same(batch, k, execute(algorithm, A=A, s=s) if with_source else execute(algorithm, A=A))


@pytest.mark.parametrize("algorithm", SORTING_ALGORITHMS)
@settings(max_examples=60, deadline=None)
@given(st.integers(1, 12), st.integers(1, 6), st.integers(0, 2**31), st.booleans())
def test_sort_batch_equals_single_runs(algorithm, n, num, seed, ties):
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 3, (num, n)).astype(float) if ties else rng.random((num, n))
    batch = run_batch(algorithm, keys=keys)
    for k in range(num):
        _assert_same(batch, k, execute(algorithm, key=keys[k]))
