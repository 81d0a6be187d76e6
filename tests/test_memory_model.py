"""The memory model (`nar.model.memory.estimate_bytes`) against XLA's own memory analysis of the compiled jitted
evaluation and training steps: within `FACTOR` either way, and linear in edges like the measurement.

Shapes are set by padding one small sample to chosen (nodes, edges, steps): padding rows cost exactly what real
ones do, so the sizes are controlled without generating or running large graphs (compiles only, no execution)."""

from __future__ import annotations

import functools

import jax
import pytest
from flax import nnx

import nar
from nar.config import from_dict
from nar.data import generate
from nar.data.batch import PadSizes, make_batch, pad_sizes_for
from nar.evaluate import Evaluator, hint_probe_count
from nar.model.memory import FOOTPRINTS, estimate_bytes
from nar.processors import PROCESSORS
from nar.train import Trainer, initial_state

FACTOR = 1.5  # the documented accuracy of the model (docs/scaling.md, "Memory model")
H = 32


@functools.lru_cache(maxsize=None)
def _setup(algorithm: str, processor: str, tmp: str):
    cfg = from_dict({"model": {"algorithm": algorithm, "processor": processor, "hidden": H, "message_graph": "input"}})
    tb = generate(algorithm, 1, 120, 0, graph="sparse_er", degree=4.0).trajectories
    trainer = Trainer(cfg, f"{tmp}/{algorithm}_{processor}", progress=False)
    state = initial_state(cfg, trainer.params, trainer.tx)
    return cfg, tb, trainer, state


@functools.lru_cache(maxsize=None)
def measured_and_estimate(tmp, algorithm, processor, train, nodes, edges, steps, triplets=0):
    """(XLA's temporaries + arguments + outputs, the model's estimate) for one padded shape."""
    cfg, tb, trainer, state = _setup(algorithm, processor, str(tmp))
    triplets = max(triplets, pad_sizes_for(tb, "input", 1, True).triplets) if cfg.model.triplets else 0
    pad = PadSizes(nodes, edges, steps, 2, triplets)
    batch = make_batch(tb, cfg.model.graph_kind, pad, 1, None, cfg.model.triplets)
    if train:
        lowered = trainer._step.lower(state["params"], state["opt_state"], batch, jax.random.key(0), 0.0)
    else:
        model = nar.build_model(cfg)
        lowered = Evaluator(model)._counts.lower(nnx.to_pure_dict(nnx.split(model)[1]), batch)
    m = lowered.compile().memory_analysis()
    measured = m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes
    est = estimate_bytes(pad, H, train, cfg.model.triplet_features, hint_probe_count(cfg.model), processor)
    return measured, est


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


def test_every_processor_has_a_footprint():
    assert set(FOOTPRINTS) == set(PROCESSORS)
    with pytest.raises(ValueError, match="no memory footprint for processor 'nope'"):
        estimate_bytes(PadSizes(8, 8, 4, 2), H, False, processor="nope")
    # A caller that names no processor gets MPNN's footprint, Triplet-GMPNN's when the batch carries triplets.
    plain, tri = PadSizes(64, 512, 8, 2), PadSizes(64, 512, 8, 2, 4096)
    for train in (False, True):
        assert estimate_bytes(plain, H, train) == estimate_bytes(plain, H, train, processor="mpnn")
        assert estimate_bytes(tri, H, train) == estimate_bytes(tri, H, train, processor="triplet_gmpnn")


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_mpnn_estimate_is_linear_in_edges_and_within_factor(tmp, train):
    edges = (4096, 8192, 16384)
    points = [measured_and_estimate(tmp, "bfs", "mpnn", train, 1024, e, 12) for e in edges]
    measured = [m for m, _ in points]
    # XLA's memory grows linearly in edges (equal steps of E, equal steps of bytes), as the model says.
    assert (measured[2] - measured[1]) == pytest.approx(2 * (measured[1] - measured[0]), rel=0.05)
    est = [e for _, e in points]
    assert (est[2] - est[1]) == pytest.approx(2 * (est[1] - est[0]), rel=1e-9)
    per_edge_measured = (measured[2] - measured[0]) / (edges[2] - edges[0])
    per_edge_est = (est[2] - est[0]) / (edges[2] - edges[0])
    assert 1 / FACTOR <= per_edge_est / per_edge_measured <= FACTOR
    for m, e in points:
        assert 1 / FACTOR <= e / m <= FACTOR, (m, e)


def test_training_memory_grows_per_step_as_estimated(tmp):
    (m12, e12), (m28, e28) = (measured_and_estimate(tmp, "bfs", "mpnn", True, 1024, 8192, t) for t in (12, 28))
    assert m28 > 2 * m12  # the backward pass keeps every step's activations
    assert 1 / FACTOR <= (e28 - e12) / (m28 - m12) <= FACTOR


@pytest.mark.parametrize("processor", ["triplet_gmpnn", "tropical", "graphfsa", "dnar"])
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_processor_estimate_within_factor(tmp, processor, train):
    m, e = measured_and_estimate(tmp, "bfs", processor, train, 1024, 8192, 12, triplets=16384)
    assert 1 / FACTOR <= e / m <= FACTOR, (m, e)

