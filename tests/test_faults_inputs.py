"""Bad input is refused up front with a message naming it, never silently changed, and nothing is allocated
before a refusal: config values (every numeric key), executor inputs (dtypes, float32's range), runs too large
for the memory model (`nar train`, `nar eval`), and a dataset folder that cannot be written (`nar generate`)."""

from __future__ import annotations

import dataclasses
import importlib
import math
import os
import re
import sys
import time

import jax
import numpy as np
import pytest
from flax import nnx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nar
from nar.algorithms import GraphBatch, execute, run_batch
from nar.bench import scale
from nar.cli import main
from nar.config import RANGES, Config, EvalConfig, TrainConfig, from_dict, load
from nar.data import generate, store
from nar.evaluate import Evaluator, batches
from nar.model.memory import parameter_bytes, plan_bytes
from nar.model.net import ModelConfig
from nar.train import initial_state, train_batch

# ---------------------------------------------------------------------------------------------------------------
# Config values


@pytest.mark.parametrize("item, message", [
    ("train.learning_rate=nan", "train.learning_rate must be a finite number > 0, got nan"),
    ("train.learning_rate=inf", "train.learning_rate must be a finite number > 0, got inf"),
    ("train.learning_rate=-1e-3", "train.learning_rate must be a finite number > 0, got -0.001"),
    ("train.grad_clip=nan", "train.grad_clip must be a finite number > 0, got nan"),
    ("model.sinkhorn_temperature=0", "model.sinkhorn_temperature must be a finite number > 0, got 0.0"),
    ("model.sinkhorn_temperature=-inf", "model.sinkhorn_temperature must be a finite number > 0, got -inf"),
    ("model.teacher_forcing=1.5", "model.teacher_forcing must be a finite number in [0, 1], got 1.5"),
    ("model.teacher_forcing=nan", "model.teacher_forcing must be a finite number in [0, 1], got nan"),
    ("model.sinkhorn_steps=0", "model.sinkhorn_steps must be an integer >= 1, got 0"),
    ("model.heads=0", "model.heads must be an integer >= 1, got 0"),
    ("train.gate_penalty_weight=nan", "train.gate_penalty_weight must be a finite number >= 0, got nan"),
    ("train.seed=-1", "train.seed must be an integer in [0, 2147483647], got -1"),
    ("eval.seed=4294967296", "eval.seed must be an integer in [0, 2147483647], got 4294967296"),
    ("eval.degree=inf", "eval.degree must be a finite number >= 0, got inf"),
    ("train.sizes=[4, 1]", "train.sizes must be a non-empty list of integers >= 2, got (4, 1)"),
    ("eval.sizes=[]", "eval.sizes must be a non-empty list of integers >= 2, got ()"),
    ("model.teacher_forcing=" + "9" * 400, "model.teacher_forcing must be a finite number, got 999"),
])
def test_out_of_range_config_values_are_refused_with_key_value_and_range(item, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        load(None, [item])


def test_directly_built_sections_are_checked_too():
    """A TrainConfig / EvalConfig built in Python, and a ModelConfig once inside a Config, meet the same ranges."""
    with pytest.raises(ValueError, match=re.escape("train.learning_rate must be a finite number > 0, got nan")):
        TrainConfig(learning_rate=float("nan"))
    with pytest.raises(ValueError, match=re.escape("eval.samples must be an integer >= 1, got 2.5")):
        EvalConfig(samples=2.5)
    with pytest.raises(ValueError, match=re.escape("model.sinkhorn_temperature must be a finite number > 0")):
        Config(model=ModelConfig(sinkhorn_temperature=0.0))


# The valid values of every numeric key, written out here independently of nar.config.RANGES, plus the one
# constraint between keys at the defaults (hidden 128, heads 4: heads must divide hidden).
POSITIVE = {"model.hidden", "model.sinkhorn_steps", "model.sinkhorn_eval_steps", "model.triplet_features",
            "model.heads", "model.fsa_bound", "train.steps", "train.batch_size", "train.eval_every",
            "train.val_samples", "train.val_size", "train.checkpoint_every", "train.log_every", "eval.samples",
            "eval.max_edges_per_batch", "eval.batch_size", "train.grokfast_window"}
NON_NEGATIVE = {"model.fsa_states", "train.pad_lookahead", "train.gate_penalty_warmup"}
SEEDS = {"train.seed", "eval.seed"}
SIZES = {"train.sizes", "eval.sizes"}
ABOVE_ZERO = {"model.sinkhorn_temperature", "train.learning_rate", "train.grad_clip", "train.causal_reg_tau"}
AT_LEAST_ZERO = {"train.gate_penalty_weight", "eval.degree", "train.grokfast_ema_lambda", "train.grokfast_ma_lambda",
                 "train.causal_reg_weight", "train.causal_reg_alpha"}
UNIT = {"model.teacher_forcing", "train.grokfast_alpha"}
INTS, FLOATS = POSITIVE | NON_NEGATIVE | SEEDS, ABOVE_ZERO | AT_LEAST_ZERO | UNIT
NUMERIC = sorted(INTS | FLOATS | SIZES)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def expected_valid(key: str, value) -> bool:
    """Whether `key = value` (all else default) is a valid config, by the rules written out above."""
    if key in SIZES:
        return isinstance(value, list) and bool(value) and all(_is_int(x) and x >= 2 for x in value)
    if key in INTS:
        if not _is_int(value):
            return False
        low = {**dict.fromkeys(POSITIVE, 1), **dict.fromkeys(NON_NEGATIVE | SEEDS, 0)}[key]
        ok = low <= value <= (2**31 - 1 if key in SEEDS else math.inf)
        if key == "model.hidden":
            ok = ok and value % 4 == 0
        if key == "model.heads":
            ok = ok and 128 % value == 0
        return ok
    if not (_is_int(value) or isinstance(value, float)) or abs(value) > sys.float_info.max or not math.isfinite(value):
        return False
    if _is_int(value) and float(value) != value:  # an integer a float cannot hold exactly is refused, not rounded
        return False
    return value > 0 if key in ABOVE_ZERO else 0 <= value <= 1 if key in UNIT else value >= 0


def test_the_rules_above_cover_every_numeric_key():
    """No numeric key of the three sections goes unchecked: every int, float and list-of-int field is listed here
    and has a range in nar's table."""
    numeric = {f"{s}.{f.name}" for s, cls in (("model", ModelConfig), ("train", TrainConfig), ("eval", EvalConfig))
               for f in dataclasses.fields(cls) if str(f.type) in ("int", "float") or str(f.type).startswith("tuple")}
    assert numeric == set(NUMERIC) == set(RANGES)


VALUES = st.one_of(st.integers(), st.integers(-3, 300), st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from([0, 1, 0.0, 1.0, -0.0, 1e-300, 2**31 - 1, 2**31, 10**400, float("nan")]),
                   st.booleans(), st.text(max_size=3), st.none(), st.lists(st.integers(-2, 40), max_size=3))


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(NUMERIC), value=VALUES)
def test_fuzzed_config_values_give_a_config_or_a_value_error_naming_the_key(key, value):
    """Any value for any numeric key: the config holding it exactly when the rules above allow it, else a ValueError
    naming the key (never another exception)."""
    section, name = key.split(".")
    try:
        config = from_dict({section: {name: value}})
    except ValueError as e:
        assert not expected_valid(key, value), f"{key} = {value!r} refused: {e}"
        assert name in str(e)
        return
    assert expected_valid(key, value), f"{key} = {value!r} accepted"
    got = getattr(getattr(config, section), name)
    assert got == (tuple(value) if key in SIZES else value)


# ---------------------------------------------------------------------------------------------------------------
# Executor inputs


BIG = 1e39  # a float64 beyond float32's range (3.4e38): as float32 it would be inf
COMPLEX_A = np.array([[0, 1 + 2j], [1 - 2j, 0]])


@pytest.mark.parametrize("run, message", [
    (lambda: execute("bfs", A=COMPLEX_A, s=0), "A must be a matrix of real edge weights, got dtype complex128"),
    (lambda: execute("bellman_ford", A=np.eye(2, dtype=bool), s=0),
     "A must be a matrix of real edge weights, got dtype bool"),
    (lambda: execute("dfs", A=np.array([[0, 1], [1, 0]], dtype=object)),
     "A must be a matrix of real edge weights, got dtype object"),
    (lambda: execute("bellman_ford", A=np.array([[0, BIG], [BIG, 0]]), s=0), "A holds 1e+39, beyond float32's range"),
    (lambda: execute("bellman_ford", A=np.array([[0, 3e38, 0], [3e38, 0, 3e38], [0, 3e38, 0]]), s=0),
     "bellman_ford: a distance from source 0 (graph 0 of the batch) reaches 6e+38, beyond float32's range"),
    (lambda: execute("insertion_sort", key=np.array([0.5, 1j])), "key must be real numbers, got dtype complex128"),
    (lambda: execute("heapsort", key=np.array([0.5, -BIG])), "key holds -1e+39, beyond float32's range"),
    (lambda: execute("quicksort", key=np.array([True, False])), "key must be real numbers, got dtype bool"),
    (lambda: run_batch("bubble_sort", keys=np.array([[0.1, BIG]])), "key holds 1e+39, beyond float32's range"),
    (lambda: GraphBatch.from_edges([(2, [0], [1], [1 + 1j])]), "weights must be real edge weights, got dtype complex"),
    (lambda: GraphBatch.from_edges([(2, [0], [1], [True])]), "weights must be real edge weights, got dtype bool"),
    (lambda: GraphBatch.from_edges([(2, [0], [1], [BIG])]), "weights holds 1e+39, beyond float32's range"),
    (lambda: GraphBatch.from_edges([(2, [0.0], [1.7], [1.0])]), "senders must be integers, got dtype float64"),
    (lambda: GraphBatch.from_arrays([2.5], [1], [0], [1], [1.0]), "n_node must be integers, got dtype float64"),
])
def test_bad_executor_inputs_are_refused_naming_argument_and_problem(run, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        run()


DTYPES = [np.int8, np.int64, np.uint8, np.float16, np.float32, np.float64, np.complex64, np.complex128, bool,
          object, str]
ENTRIES = st.sampled_from([0, 0, 0, 1, 2, -1, 0.5, 3e38, BIG, -BIG, float("nan"), float("inf")])


def _array(values, dtype, shape):
    """`values` as an array of `dtype` and `shape`, as a caller might build it (None: that dtype cannot hold them)."""
    with np.errstate(all="ignore"):
        try:
            return np.array(values, dtype=object if dtype is object else float).astype(dtype).reshape(shape)
        except (ValueError, OverflowError, TypeError):
            return None


def _bad(x, name: str) -> bool:
    """Independently: x is not a real array float32 represents (a wrong dtype, NaN, inf or beyond 3.4e38); a boolean
    adjacency is an unweighted graph, fine for BFS and DFS, which read no weights."""
    if x.dtype == bool:
        return name not in ("bfs", "dfs") or x.ndim != 2
    if x.dtype.kind not in "iuf":
        return True
    v = x.astype(np.float64)
    return not np.isfinite(v).all() or bool((np.abs(v) > np.finfo(np.float32).max).any())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(name=st.sampled_from(["bfs", "dfs", "bellman_ford", "insertion_sort", "heapsort"]),
       dtype=st.sampled_from(DTYPES), shape=st.sampled_from([(3,), (3, 3), (2, 2), (1, 1), (2, 3), (0,), ()]),
       data=st.data())
def test_fuzzed_executor_inputs_give_a_trajectory_or_a_value_error(name, dtype, shape, data):
    """Any dtype, shape and value: a trajectory whose input holds exactly the values given (in float32), or a
    ValueError; wrong dtypes and values float32 cannot hold are always refused, naming the argument."""
    x = _array(data.draw(st.lists(ENTRIES, min_size=math.prod(shape), max_size=math.prod(shape))), dtype, shape)
    if x is None:
        return
    sort = name in ("insertion_sort", "heapsort")
    arg = "key" if sort else "A"
    inputs = {arg: x, **({"s": data.draw(st.integers(-1, 3))} if name in ("bfs", "bellman_ford") else {})}
    try:
        traj = execute(name, **inputs)
    except ValueError as e:
        assert arg in str(e) or any(w in str(e) for w in ("source", "negative", "float32")), str(e)
        return
    assert not _bad(x, name), f"{name} accepted {x!r}"
    np.testing.assert_array_equal(traj.inputs[arg], x.astype(np.float32))
    for probe, value in {**traj.inputs, **traj.hints, **traj.outputs}.items():
        assert np.isfinite(value).all(), f"{name}: {probe} holds inf from {x!r}"  # e.g. a distance beyond float32


@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 3), dtypes=st.tuples(*[st.sampled_from(DTYPES)] * 3), length=st.integers(0, 3),
       data=st.data())
def test_fuzzed_edge_lists_give_a_trajectory_or_a_value_error(n, dtypes, length, data):
    """`GraphBatch.from_edges` and `run_batch` with senders, receivers and weights of any dtype and value: DFS's
    trajectory, whose `A` holds exactly the weights given, or a ValueError; index arrays that are not integers
    and weights float32 cannot hold are always refused."""
    arrays = [_array(data.draw(st.lists(ENTRIES, min_size=length, max_size=length)), d, (length,)) for d in dtypes]
    if any(x is None for x in arrays):
        return
    senders, receivers, weights = arrays
    try:
        traj = run_batch("dfs", graphs=GraphBatch.from_edges([(n, senders, receivers, weights)])).trajectory(0)
    except ValueError:
        return
    want = np.zeros((n, n), np.float32)
    if length:
        assert not (_bad(weights, "weights") or senders.dtype.kind not in "iu" or receivers.dtype.kind not in "iu")
        want[senders.astype(int), receivers.astype(int)] = weights.astype(np.float32)
    np.testing.assert_array_equal(traj.inputs["A"], want)


def test_a_duplicate_edge_is_refused_even_with_a_zero_weight():
    # Found by the fuzz test above: the zero-weight copy used to be dropped first, so the duplicate went unnoticed
    # and the first weight silently won.
    with pytest.raises(ValueError, match="duplicate edges"):
        GraphBatch.from_edges([(1, np.array([0, 0]), np.array([0, 0]), np.array([1, 0], np.int8))])


# ---------------------------------------------------------------------------------------------------------------
# The memory model: refused before anything is allocated


def _forbid(monkeypatch, *targets):
    """Make each "module:function" raise if called: the refusal must come first."""
    for target in targets:
        module, name = target.split(":")

        def fail(*_, _what=target, **__):
            raise AssertionError(f"{_what} ran before the refusal")
        monkeypatch.setattr(importlib.import_module(module), name, fail)  # (nar.train is also a function's name)


def test_eval_of_a_huge_size_is_refused_before_the_model_or_test_graphs(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text(Config().to_toml())  # no checkpoint needed: nothing gets that far
    _forbid(monkeypatch, "nar.train:load_run", "nar.train:build_model", "nar.evaluate:test_set")
    t0 = time.perf_counter()
    assert main(["eval", str(run), "--sizes", "10000000"]) == 2
    assert time.perf_counter() - t0 < 20
    err = capsys.readouterr().err
    assert err.startswith("nar eval: error: evaluating bfs / mpnn (hidden 128) on batches of 1 graph of 10000000 "
                          "nodes needs at least "), err
    need, _, _, limit = (float(x.replace(",", "")) for x in re.findall(r"([\d,]+\.\d) GiB", err))
    assert need > limit  # the estimate, its two parts, the limit
    fit = int(re.search(r"graphs of at most about (\d+) nodes fit", err).group(1))
    assert 2 < fit < 10_000_000
    assert "message_graph='input'" in err  # the complete graph is what costs n^2


def test_training_a_huge_hidden_size_is_refused_before_files_data_or_parameters(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    _forbid(monkeypatch, "nar.train:build_model", "nar.training.data:clrs_train", "nar.train:Checkpointer")
    t0 = time.perf_counter()
    assert main(["train", "--algorithm", "bfs", "--set", "model.hidden=30000", "--out", str(out), "--quiet"]) == 2
    assert time.perf_counter() - t0 < 30
    err = capsys.readouterr().err
    assert "nar train: error: training bfs / mpnn (hidden 30000) on batches of 32 graphs of 16 nodes" in err
    assert re.search(r"parameters and optimiser state [\d,]+\.\d GiB", err)
    hidden = int(re.search(r"model\.hidden up to (\d+) fits", err).group(1))
    assert 4 <= hidden < 30000 and hidden % 4 == 0
    assert not out.exists()


def test_parameter_count_is_that_of_the_built_model():
    """`parameter_bytes` (shapes only) equals the bytes of a really built model's variables (`Model` and GraphFSA's
    `FSAModel`)."""
    for processor in ("triplet_gmpnn", "graphfsa"):
        cfg = from_dict({"model": {"processor": processor, "hidden": 16}})
        built = nnx.split(nar.build_model(cfg))[1]
        assert parameter_bytes(cfg.model) == sum(x.nbytes for x in jax.tree.leaves(built))


def _xla_bytes(lowered) -> int:
    m = lowered.compile().memory_analysis()
    return m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes


@pytest.mark.parametrize("algorithm", scale.DEFAULT["algorithms"])
def test_planned_estimate_within_2x_of_xla_at_bench_scale_sizes(algorithm):
    """The estimate made before any graph is drawn (parameters plus the planned batch) against XLA's memory
    analysis of the compiled evaluation on the drawn graphs, with `make bench-scale`'s settings. Only its two
    smaller sizes (1,024 and 4,096 nodes; 16,384 and 65,536 take too long for a unit test)."""
    d = scale.DEFAULT
    cfg = from_dict({"model": {"algorithm": algorithm, "processor": "mpnn", "hidden": d["hidden"],
                               "message_graph": "input"}})
    model = nar.build_model(cfg)
    params = nnx.to_pure_dict(nnx.split(model)[1])
    for n in d["sizes"][:2]:
        tb = generate(algorithm, d["graphs"], n, 0, graph="sparse_er", degree=d["degree"]).trajectories
        batch = batches(tb, cfg.model, d["graphs"], 1 << 30)
        assert len(batch) == 1  # as bench-scale runs it: every graph in one batch
        measured = _xla_bytes(Evaluator(model)._counts.lower(params, batch[0]))
        estimate = sum(plan_bytes(cfg.model, False, n, d["graphs"], d["degree"]))
        assert 0.5 <= estimate / measured <= 2, (n, estimate, measured)


def test_training_estimate_counts_parameters_and_optimiser_state(tmp_path):
    """Where the parameters dominate (hidden 512, one 4-node graph), the training estimate is within 2x of XLA's
    analysis of the compiled training step (parameters and Adam's moments in and out)."""
    cfg = from_dict({"model": {"hidden": 512}, "train": {"batch_size": 1, "sizes": [4]}})
    trainer = nar.Trainer(cfg, tmp_path / "run", progress=False)
    state = initial_state(cfg, trainer.params, trainer.tx)
    batch = train_batch(cfg, 0)
    measured = _xla_bytes(trainer._step.lower(state["params"], state["opt_state"], batch, jax.random.key(0), 0.0))
    params, rest = plan_bytes(cfg.model, True, 4, 1)
    assert params > 10 * rest  # the parameters dominate, as intended
    assert 0.5 <= (params + rest) / measured <= 2, (params + rest, measured)


# ---------------------------------------------------------------------------------------------------------------
# A dataset folder that cannot be written


def _unwritable(tmp_path):
    """A cache folder no dataset can be written under: read-only for a normal user; for root, whom chmod does not
    stop, a file where the folder should be. Returns (cache, restore)."""
    cache = tmp_path / "cache"
    if os.geteuid() == 0:
        cache.write_text("a file, not a folder")
        return cache, lambda: None
    cache.mkdir()
    cache.chmod(0o555)
    return cache, lambda: cache.chmod(0o755)


def test_generate_into_an_unwritable_folder_names_it_before_generating(tmp_path, monkeypatch, capsys):
    cache, restore = _unwritable(tmp_path)
    _forbid(monkeypatch, "nar.data.store:generate")
    try:
        with pytest.raises(SystemExit) as exit_:
            main(["generate", "clrs30", "--cache", str(cache), "--algorithms", "bfs", "--workers", "1"])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert f"error: cannot write the dataset folder {cache}/clrs30/bfs/train: " in err, err
        assert "Traceback" not in err
    finally:
        restore()


def test_saving_into_an_unwritable_folder_names_it(tmp_path):
    cache, restore = _unwritable(tmp_path)
    try:
        with pytest.raises(store.DatasetWriteError, match=re.escape(f"cannot write the dataset folder {cache}/bfs")):
            store.save(generate("bfs", 2, 4, 0), cache / "bfs")
    finally:
        restore()


@pytest.mark.parametrize("name, extra", [("bfs", {"s": 0}), ("dfs", {})])
def test_a_boolean_adjacency_is_an_unweighted_graph_where_no_weights_are_read(name, extra):
    rng = np.random.default_rng(0)
    A = rng.random((6, 6)) < 0.4
    got, want = execute(name, A=A, **extra), execute(name, A=A.astype(float), **extra)
    for probes in ("inputs", "hints", "outputs"):
        for key, value in getattr(want, probes).items():
            np.testing.assert_array_equal(getattr(got, probes)[key], value, err_msg=f"{probes}/{key}")
