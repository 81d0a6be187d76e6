"""Training, checkpoints, evaluation, configuration and the `nar train` / `nar eval` commands, on tiny runs.

Every run here is bfs with a 16-wide PGN on the complete message graph, batches of four graphs of 4 or 5 nodes:
with seed 2 the padded training shape grows exactly once (hint steps 4 -> 6, at batch 13), so a 40-step run
compiles twice and a run resumed from step 20 must continue at the larger shape.

XLA compiles dominate the cost of these tests (about 10 s each on a small CPU), and every Trainer compiles its
own jitted step. The module therefore turns on JAX's persistent compilation cache in a temporary directory: runs
of one config reuse the executable instead of compiling it again. Tracing still happens, so `Trainer.compiles`
and `Evaluator.compiles` (which count traces) mean the same with or without the cache.
"""

import dataclasses
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import jax
import numpy as np
import pytest
from flax import nnx

from nar.algorithms import get_algorithm
from nar.checkpoint import Checkpointer
from nar.cli import main
from nar.config import Config, from_dict, load, parse_set
from nar.data.batch import GrowingPad, PadSizes
from nar.evaluate import Evaluator, batches, evaluate_sizes, format_table
from nar.evaluate import test_set as eval_test_set
from nar.model.memory import check_fits, estimate_bytes
from nar.processors import PROCESSORS
from nar.specs import SPECS
from nar.timing import TIMING_FILE
from nar.train import (
    CHECKPOINTS,
    CONFIG_FILE,
    METRICS_FILE,
    Trainer,
    build_model,
    initial_pad,
    initial_state,
    load_run,
    train_batch,
    train_trajectories,
    validation_batches,
)

SEED = 2
STEPS = 40
INTERRUPT = 25  # between the checkpoints at 20 and 30
# pad_lookahead=0: the padded shape grows batch by batch, as the growth and resume tests below need; sizes mixed per
# sample, so that one stream of shapes grows (the per-batch protocol has its own tests below).
BASE = ["model.processor=pgn", "model.hidden=16", "model.message_graph=complete", "train.sizes=[4, 5]",
        "train.size_mix=per_sample",
        "train.batch_size=4", "train.pad_lookahead=0", "train.val_size=4", "train.val_samples=8",
        "train.eval_every=10", "train.checkpoint_every=10", "train.log_every=1", f"train.seed={SEED}"]
# Records of a run that may legitimately differ between an uninterrupted and a resumed run.
VOLATILE = {"steps_per_s", "compiles"}


def tiny(*overrides: str) -> Config:
    return load(None, BASE + [f"train.steps={STEPS}", *overrides])


@pytest.fixture(scope="module", autouse=True)
def compilation_cache(tmp_path_factory):
    old = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("jax_cache")))
    yield
    jax.config.update("jax_compilation_cache_dir", old)


def read_metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / METRICS_FILE).read_text().splitlines()]


def stable(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in records]


def assert_trees_equal(a, b):
    """Same structure, and every leaf equal bit for bit (dtype and shape included)."""
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb
    assert la, "empty tree"
    for x, y in zip(la, lb):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.array_equal(x, y)


def grown_shapes(config: Config, start: int, stop: int, initial: PadSizes | None = None) -> list[PadSizes]:
    """The padded shape of training batches start..stop-1 when the shape only grows: the running maximum, in each
    dimension, of every batch's own bucket (computed here, not by GrowingPad)."""
    current, out = initial, []
    for s in range(start, stop):
        need = train_batch(config, s).pad_sizes
        current = need if current is None else PadSizes(*np.maximum(dataclasses.astuple(current),
                                                                    dataclasses.astuple(need)).tolist())
        out.append(current)
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 40-step run."""
    cfg = tiny()
    out = tmp_path_factory.mktemp("reference")
    trainer = Trainer(cfg, out, progress=False)
    summary = trainer.run()
    return SimpleNamespace(cfg=cfg, out=out, trainer=trainer, summary=summary, records=read_metrics(out))


# ---------------------------------------------------------------------------------------------------------------
# A training run


def test_loss_falls(reference):
    train = [r for r in reference.records if "loss" in r]
    assert [r["step"] for r in train] == list(range(1, STEPS + 1))  # log_every=1
    losses = np.array([r["loss"] for r in train])
    assert np.isfinite(losses).all()
    # Seeds 0, 2, 3, 7 and 42 all give a ratio of 0.43-0.55 here.
    assert losses[-10:].mean() < 0.75 * losses[:10].mean()


def test_wall_time_is_split_by_phase_and_steps_per_s_counts_training_steps_alone(reference):
    timing = reference.summary["timing"]
    assert timing["sessions"] == 1 and timing["complete"]
    assert set(timing["seconds"]) == {"data", "compile", "train", "validation", "checkpoint"}
    assert all(timing["seconds"][p] > 0 for p in ("compile", "train", "validation", "checkpoint"))
    assert timing["total"] == pytest.approx(sum(timing["seconds"].values()))
    # Every logged rate covers training steps only: together they account for the train phase's seconds.
    rates = [(r["step"], r["steps_per_s"]) for r in reference.records if "loss" in r]
    assert rates[0][1] is None  # step 1 compiled: no training step in its window
    timed = [1 / rate for _, rate in rates if rate is not None]  # log_every=1: one step per window
    assert len(timed) == STEPS - reference.trainer.compiles
    assert sum(timed) == pytest.approx(timing["seconds"]["train"], rel=1e-6)
    # The step whose batch grew the padded shape compiled: its window holds no training step either.
    assert sum(rate is None for _, rate in rates) == reference.trainer.compiles


def test_validation_records_and_best_score(reference):
    val = [r for r in reference.records if "val_score" in r]
    assert [r["step"] for r in val] == [10, 20, 30, 40]
    scores = [r["val_score"] for r in val]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert [r["best_val_score"] for r in val] == pytest.approx(np.maximum.accumulate(scores).tolist(), rel=1e-6)
    s = reference.summary
    assert s["steps"] == STEPS and s["resumed_from"] == 0
    assert s["best_val_score"] == pytest.approx(max(scores), rel=1e-6)
    assert s["best_step"] == val[int(np.argmax(scores))]["step"]  # the first step reaching the best score
    assert json.loads((reference.out / "summary.json").read_text())["best_step"] == s["best_step"]


def test_run_compiles_once_per_grown_shape(reference):
    shapes = grown_shapes(reference.cfg, 0, STEPS)
    assert len(set(shapes)) == 2, "the test config should grow its padded shape exactly once"
    assert reference.summary["compiles"] == reference.trainer.compiles == 2
    assert reference.summary["eval_compiles"] == 1  # the validation batches share one shape
    for r in reference.records:
        if "loss" in r:  # after step s, the steps so far have seen the shapes of batches 0..s-1
            assert r["compiles"] == len(set(shapes[:r["step"]])), r["step"]


def test_pad_lookahead_starts_at_the_cover_of_the_first_batches_and_compiles_once(reference, tmp_path):
    cfg = tiny("train.pad_lookahead=16")
    needs = [train_batch(cfg, s).pad_sizes for s in range(16)]
    assert len(set(grown_shapes(reference.cfg, 0, STEPS))) == 2  # precondition: growing batch by batch compiles twice
    start = initial_pad(cfg)
    for f in ("edges", "steps", "graphs", "triplets"):  # the largest of the first 16 batches in each dimension
        assert getattr(start, f) == max(getattr(n, f) for n in needs), f
    assert all(start.nodes >= n.nodes for n in needs)
    assert initial_pad(tiny()) is None  # pad_lookahead=0: growth from the first batch, as before
    trainer = Trainer(cfg, tmp_path, progress=False)
    summary = trainer.run()
    assert summary["compiles"] == 1  # the growth at batch 13 is inside the look-ahead
    # Padding does not change the maths: the same losses as the run that grew its shape.
    losses = [r["loss"] for r in read_metrics(tmp_path) if "loss" in r]
    np.testing.assert_allclose(losses, [r["loss"] for r in reference.records if "loss" in r], rtol=1e-5)
    with pytest.raises(ValueError, match="pad_lookahead"):
        tiny("train.pad_lookahead=-1")


def test_load_run_returns_the_checkpointed_parameters(reference):
    model, best, cfg = load_run(reference.out)
    assert cfg == reference.cfg
    assert_trees_equal(best, reference.trainer.best_params)
    _, last, _ = load_run(reference.out, "params")
    assert_trees_equal(last, reference.trainer.params)
    # The best parameters are the ones that scored the best validation score.
    score = Evaluator(model)(best, validation_batches(cfg))["score"]
    assert score == pytest.approx(reference.summary["best_val_score"], rel=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# Resume


class Interrupt(Exception):
    pass


def test_resume_after_interruption_is_bitwise_identical(reference, tmp_path):
    cfg = reference.cfg

    def stop(step, loss):
        if step == INTERRUPT:
            raise Interrupt

    with pytest.raises(Interrupt):
        Trainer(cfg, tmp_path, progress=False).run(on_step=stop)
    ckpt = Checkpointer(tmp_path / CHECKPOINTS)
    assert ckpt.latest_step() == 20
    ckpt.close()
    first = json.loads((tmp_path / TIMING_FILE).read_text())  # the time up to the checkpoint of step 20
    assert first["step"] == 20 and first["sessions"] == 1 and first["seconds"]["train"] > 0
    killed = read_metrics(tmp_path)
    assert max(r["step"] for r in killed) == INTERRUPT - 1  # records after the checkpoint, to be dropped

    resumed = Trainer(cfg, tmp_path, resume=True, progress=False)
    summary = resumed.run()
    assert summary["resumed_from"] == 20
    # Wall time sums over both sessions: the first one's, up to its checkpoint, plus all of the second one's.
    timing = summary["timing"]
    assert timing["sessions"] == 2 and timing["complete"]
    for phase, seconds in first["seconds"].items():
        assert timing["seconds"][phase] >= seconds, phase
    assert timing["seconds"]["train"] > first["seconds"]["train"]
    assert_trees_equal(resumed.params, reference.trainer.params)
    assert_trees_equal(resumed.best_params, reference.trainer.best_params)
    assert (summary["best_val_score"], summary["best_step"]) == (reference.summary["best_val_score"],
                                                                 reference.summary["best_step"])
    records = read_metrics(tmp_path)
    assert [(r["step"], r.get("loss")) for r in records] == [(r["step"], r.get("loss")) for r in reference.records]
    assert stable(records) == stable(reference.records)

    # The resumed run continues at the shape its checkpoint was trained at (here the grown one): one compile,
    # where restarting the growth from scratch would compile the small shape again.
    full = grown_shapes(cfg, 0, STEPS)
    assert len(set(grown_shapes(cfg, 20, STEPS))) == 2  # precondition: a fresh start would compile twice
    assert resumed.compiles == len(set(full[20:])) == 1


# ---------------------------------------------------------------------------------------------------------------
# CLRS's protocol: one size per batch, sizes cycled from batch to batch


def test_per_batch_draws_each_batch_at_one_size_in_cycle():
    cfg = load(None, ["model.algorithm=bellman_ford", "train.sizes=[4, 7, 11]", "train.batch_size=6"])
    assert cfg.train.size_mix == "per_batch"  # the default is CLRS's protocol
    batches = [train_trajectories(cfg, s) for s in range(9)]
    assert [sorted(set(b.n_node.tolist())) for b in batches] == [[4], [7], [11]] * 3
    assert len({b.content_hash() for b in batches}) == 9  # every batch is new data
    mixed = load(None, ["model.algorithm=bellman_ford", "train.sizes=[4, 7, 11]", "train.batch_size=6",
                        "train.size_mix=per_sample"])
    assert [train_trajectories(mixed, s).n_node.tolist() for s in range(2)] == [[4, 7, 11] * 2] * 2
    with pytest.raises(ValueError, match="train.size_mix"):
        load(None, ["train.size_mix=per_step"])


def test_per_batch_run_pads_each_size_apart_and_resumes_bitwise(tmp_path):
    """A 4-node batch is not padded to the 5-node batches' shape: one compile per size (plus growth within a size);
    a resumed per-batch run replays the uninterrupted one bit for bit."""
    cfg = load(None, [b for b in BASE if not b.startswith("train.size_mix")] + ["train.steps=12",
                                                                               "train.checkpoint_every=5"])
    ref = Trainer(cfg, tmp_path / "ref", progress=False)
    ref.run()
    running = set()  # (size group, running maximum of the group's batch buckets), computed here on the host
    for k in range(2):
        top = None
        for s in range(k, 12, 2):
            need = np.array(dataclasses.astuple(train_batch(cfg, s).pad_sizes))
            top = need if top is None else np.maximum(top, need)
            running.add((k, tuple(top.tolist())))
    assert ref.compiles == len(running) >= 2

    def stop(step, loss):
        if step == 8:
            raise Interrupt

    with pytest.raises(Interrupt):
        Trainer(cfg, tmp_path / "cut", progress=False).run(on_step=stop)
    resumed = Trainer(cfg, tmp_path / "cut", resume=True, progress=False)
    assert resumed.run()["resumed_from"] == 5
    assert_trees_equal(resumed.params, ref.params)
    assert stable(read_metrics(tmp_path / "cut")) == stable(read_metrics(tmp_path / "ref"))


def test_resume_rejects_a_changed_config(reference):
    with pytest.raises(ValueError, match=r"model\.hidden"):
        Trainer(tiny("model.hidden=8"), reference.out, resume=True, progress=False)
    with pytest.raises(ValueError, match=r"train\.learning_rate"):
        Trainer(tiny("train.learning_rate=0.01"), reference.out, resume=True, progress=False)
    assert load(reference.out / CONFIG_FILE) == reference.cfg  # nothing was written


def test_resume_accepts_a_longer_run(reference, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(reference.out, run)
    Trainer(tiny("train.steps=60", "eval.samples=4"), run, resume=True, progress=False)
    assert load(run / CONFIG_FILE).train.steps == 60


def test_existing_run_needs_resume(reference, tmp_path):
    before = {p: (reference.out / p).read_bytes() for p in (CONFIG_FILE, METRICS_FILE)}
    with pytest.raises(FileExistsError, match="resume"):
        Trainer(reference.cfg, reference.out, progress=False)
    assert {p: (reference.out / p).read_bytes() for p in before} == before
    # A directory holding only checkpoints is a run too.
    (tmp_path / CHECKPOINTS / "10").mkdir(parents=True)
    with pytest.raises(FileExistsError):
        Trainer(reference.cfg, tmp_path, progress=False)


def test_resume_of_a_missing_run(tmp_path):
    with pytest.raises(FileNotFoundError):
        Trainer(tiny(), tmp_path / "nothing", resume=True, progress=False)
    assert not (tmp_path / "nothing").exists()


def test_load_run_needs_a_run(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_run(tmp_path)
    (tmp_path / CONFIG_FILE).write_text(tiny().to_toml())
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        load_run(tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# Compiles


def test_no_recompile_within_a_bucket(reference, tmp_path):
    cfg = reference.cfg
    shapes = grown_shapes(cfg, 0, STEPS)
    small, large = shapes[0], shapes[-1]
    grow = shapes.index(large)  # the first batch that needs the larger shape
    assert grow >= 3 and small != large
    trainer = Trainer(cfg, tmp_path, progress=False)
    state = initial_state(cfg, trainer.params, trainer.tx)
    params, opt = state["params"], state["opt_state"]
    key = jax.random.key(0)
    pad = GrowingPad()
    counts = []
    for s in [0, 1, 2, grow, grow + 1]:
        batch = train_batch(cfg, s, pad)
        assert batch.pad_sizes == (small if s < grow else large)
        params, opt, loss, *_ = trainer.train_step(params, opt, batch, key)
        assert np.isfinite(float(loss))
        counts.append(trainer.compiles)
    assert counts == [1, 1, 1, 2, 2]


def test_evaluator_compiles_once_for_one_batches_call():
    cfg = load(None, ["model.processor=pgn_mask", "model.hidden=16"])  # the sparse input message graph
    model = build_model(cfg)
    params = nnx.to_pure_dict(nnx.split(model)[1])
    eval_cfg = from_dict({"eval": {"sizes": [48], "samples": 6, "graph": "sparse_er", "batch_size": 2}}).eval
    tb = eval_test_set("bfs", 48, eval_cfg)
    batch_list = batches(tb, model.config, 2, eval_cfg.max_edges_per_batch)
    assert len(batch_list) == 3
    assert len({b.pad_sizes for b in batch_list}) == 1
    evaluator = Evaluator(model)
    pooled = evaluator(params, batch_list)
    assert evaluator.compiles == 1

    # evaluate_sizes at the same size batches the same test set the same way: no new compile, same scores.
    results = evaluate_sizes(model, params, eval_cfg, evaluator=evaluator)
    assert evaluator.compiles == 1
    r = results[48]
    assert r["score"] == pooled["score"]
    assert r["graphs"] == 6 and r["family"] == "sparse_er"
    outputs = {f"output/{k}" for k in model.output_probes}
    hints = {f"hint/{k}" for k in model.hint_probes}
    assert outputs and hints
    exacts = {f"exact/{k}" for k in model.output_probes}
    assert {k for k in r if "/" in k} == outputs | hints | exacts
    assert all(0.0 <= r[k] <= 1.0 for k in outputs | hints | exacts | {"exact"})
    assert r["score"] == pytest.approx(np.mean([r[k] for k in outputs]))
    assert r["exact"] == pooled["exact"] == r["exact/pi"]  # BFS: one output, its exact match is the graph's

    results[96] = dict(r, graphs=7)  # format_table needs only the fields; a second row without another compile
    table = format_table(results, "bfs / pgn").splitlines()
    assert table[0] == "bfs / pgn"
    assert all(k in table[1] for k in outputs | hints)
    rows = table[2:]
    assert [row.split()[0] for row in rows] == ["48", "96"]
    assert table[1].split()[:5] == ["n", "family", "graphs", "score", "exact"]
    assert rows[0].split()[1:5] == ["sparse_er", "6", f"{r['score']:.4f}", f"{r['exact']:.4f}"]
    assert rows[1].split()[2] == "7"


# ---------------------------------------------------------------------------------------------------------------
# Memory check


def test_check_fits():
    pad = PadSizes(nodes=2048, edges=2048 * 2048, steps=32, graphs=2)
    need = estimate_bytes(pad, 128, True)
    check_fits(pad, 128, True, "complete", limit=need)  # exactly enough
    with pytest.raises(MemoryError) as e:
        check_fits(pad, 128, True, "complete", limit=need - 1)
    assert "GiB" in str(e.value) and "message_graph='input'" in str(e.value)
    with pytest.raises(MemoryError) as e:
        check_fits(pad, 128, False, "input", limit=1 << 20)
    assert "GiB" in str(e.value) and "message_graph='input'" not in str(e.value)
    # Training keeps tensors per hint step for the backward pass: more than evaluation, growing with the steps.
    assert estimate_bytes(pad, 128, False) < need < estimate_bytes(dataclasses.replace(pad, steps=64), 128, True)


def test_estimate_counts_stored_hints_and_evaluation_batches_fit(monkeypatch):
    """Every step's hint predictions are kept ((T - 1) x (4 N + E) floats per hint probe), and evaluation
    batches shrink to fit half the memory instead of dying in the allocator (DFS at n=1,024 was OOM-killed)."""
    pad = PadSizes(nodes=100, edges=1000, steps=11, graphs=2)
    for train in (True, False):
        extra = estimate_bytes(pad, 16, train, hint_probes=3) - estimate_bytes(pad, 16, train)
        assert extra == 4 * 10 * 3 * (4 * 100 + 1 * 1000)
    cfg = load(None, ["model.algorithm=dfs", "model.processor=pgn_mask", "model.hidden=16"])
    tb = eval_test_set("dfs", 16, dataclasses.replace(cfg.eval, samples=8, graph="sparse_er"))
    assert [int((b.lengths > 0).sum()) for b in batches(tb, cfg.model, 8, 1 << 20)] == [8]
    one = batches(tb.select([0]), cfg.model, 1, 1 << 20)[0].pad_sizes
    per_graph = estimate_bytes(one, 16, False, hint_probes=len([p for p in SPECS["dfs"].values() if p[0] == "hint"]))
    monkeypatch.setattr("nar.evaluate.available_bytes", lambda: 2 * 3 * per_graph + 1)  # room for 3 graphs
    small = batches(tb, cfg.model, 8, 1 << 20)
    assert [int((b.lengths > 0).sum()) for b in small] == [3, 3, 2]
    assert sum(int((b.lengths > 0).sum()) for b in small) == len(tb)


# ---------------------------------------------------------------------------------------------------------------
# Configuration


def test_file_then_sections_then_overrides_in_order(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[model]\nalgorithm = "dfs"\nhidden = 8\n\n[train]\nsteps = 7\nsizes = [4, 8]\n')
    cfg = load(path)
    assert (cfg.model.algorithm, cfg.model.hidden, cfg.train.steps, cfg.train.sizes) == ("dfs", 8, 7, (4, 8))
    assert cfg.train.batch_size == Config().train.batch_size  # untouched keys keep the defaults
    cfg = load(path, ["train.steps=9", "model.hidden=32", "train.steps=11"], model={"hidden": 4}, train={"seed": 5})
    assert (cfg.model.algorithm, cfg.model.hidden, cfg.train.steps, cfg.train.seed) == ("dfs", 32, 11, 5)
    assert load(path, [], model={"hidden": 4}).model.hidden == 4
    cfg = load(None, ["model.processor=pgn", "train.learning_rate=1", "eval.graph=sparse_er"])
    assert cfg.model.processor == "pgn" and cfg.eval.graph == "sparse_er"  # bare strings
    assert cfg.train.learning_rate == 1.0 and isinstance(cfg.train.learning_rate, float)


@pytest.mark.parametrize("item, key", [
    ("train.stepz=3", "train.stepz"),
    ('train.steps="abc"', "train.steps"),
    ("train.steps=abc", "train.steps"),
    ("model.hidden=1.5", "model.hidden"),
    ("train.random_pos=1", "train.random_pos"),
    ("train.sizes=[4, 5.5]", "train.sizes"),
    ("train.learning_rate=true", "train.learning_rate"),
    ("model.processor=3", "model.processor"),
    ("train.steps=0", "train.steps"),
])
def test_bad_key_or_value_names_the_key(item, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        load(None, [item])


def test_bad_section_and_bad_set_syntax(tmp_path):
    with pytest.raises(ValueError, match="trian"):
        load(None, ["trian.steps=3"])
    with pytest.raises(ValueError, match="section"):
        from_dict({"optimizer": {"lr": 1}})
    for item in ("steps=3", "train.steps"):
        with pytest.raises(ValueError, match="section.key=value"):
            parse_set([item])
    with pytest.raises(ValueError, match="does not exist"):
        load(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("[train\nsteps = 3\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load(tmp_path / "bad.toml")


def test_to_toml_round_trips(tmp_path):
    cfg = load(None, ["model.algorithm=dfs", "model.processor=pgn", "model.message_graph=input",
                      "model.teacher_forcing=0.5", "model.hint_repred=hard", "train.learning_rate=0.0003",
                      "train.sizes=[4, 9]", "train.random_pos=false", "eval.degree=3.5", "eval.graph=er"])
    assert cfg != Config()
    path = tmp_path / "cfg.toml"
    path.write_text(cfg.to_toml())
    assert load(path) == cfg
    path.write_text(Config().to_toml())  # message_graph None is left out and comes back as None
    assert load(path) == Config()


SUPPORTED = {"graphfsa": ("bfs", "dfs"), "dnar": ("bfs", "bellman_ford")}  # the rest run every algorithm
CONFIG_NAMES = [f"{a}/{p}" for a in SPECS for p in PROCESSORS if a in SUPPORTED.get(p, SPECS)]


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_config_name_loads_and_matches_its_name(name, tmp_path):
    cfg = load(name)
    algorithm, processor = name.split("/")
    assert (cfg.model.algorithm, cfg.model.processor) == (algorithm, processor)
    if get_algorithm(algorithm).kind == "sort":
        assert cfg.model.graph_kind == "complete"
    else:
        assert cfg.model.graph_kind == cfg.model.core.default_message_graph
    copy = tmp_path / "copy.toml"
    copy.write_text(cfg.to_toml())
    assert load(copy) == cfg


# ---------------------------------------------------------------------------------------------------------------
# Command line


def test_cli_train_then_eval(tmp_path, capsys):
    run = tmp_path / "run"
    sets = [a for item in BASE if not item.startswith("train.seed") for a in ("--set", item)]
    argv = ["train", "--algorithm", "bfs", "--processor", "pgn", "--steps", "10", "--seed", str(SEED), *sets,
            "--out", str(run), "--quiet"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["steps"] == 10 and summary["resumed_from"] == 0
    assert "/10 loss" not in captured.err  # --quiet: no progress bar (it would print at step 1)
    assert load(run / CONFIG_FILE) == tiny("train.steps=10")
    records = read_metrics(run)
    assert [r["step"] for r in records if "loss" in r] == list(range(1, 11))
    assert [r["step"] for r in records if "val_score" in r] == [10]
    ckpt = Checkpointer(run / CHECKPOINTS)
    assert ckpt.latest_step() == 10
    ckpt.close()

    assert main(["eval", str(run), "--sizes", "8,16", "--samples", "4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["algorithm"], report["processor"]) == ("bfs", "pgn")
    assert report["eval"]["sizes"] == [8, 16] and report["eval"]["samples"] == 4
    assert set(report["results"]) == {"8", "16"}
    for r in report["results"].values():
        assert r["graphs"] == 4 and r["family"] == "er"
        assert all(0.0 <= v <= 1.0 for k, v in r.items() if k in ("score", "exact") or "/" in k)
        assert "exact" in r and r["exact"] == r["exact/pi"]  # graph-level exact match beside the node-level score

    # The same run again without --resume is refused, naming the fix.
    assert main(argv) == 2
    assert "--resume" in capsys.readouterr().err


def test_cli_bad_config_key(tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", "--algorithm", "bfs", "--set", "train.stepz=3", "--out", str(run), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "nar train: error:" in err and "train.stepz" in err
    assert not run.exists()


def test_cli_eval_of_a_missing_run(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nothing"), "--sizes", "8"]) == 2
    assert "nar eval: error:" in capsys.readouterr().err
