"""Checkpoints are verified: flipped or truncated bytes are caught on restore, a resumed run or `load_run` falls
back to the newest intact checkpoint (and says so), and a checkpoint of another config is a clear error.

One tiny 12-step run (test_train's configuration, checkpoints at 4, 8 and 12, the newest two kept) is the
reference; every test damages a copy of it. A recovered run is held to the reference's own final parameters,
bit for bit.
"""

import shutil
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx
from test_train import BASE, assert_trees_equal, compilation_cache, read_metrics, stable  # noqa: F401 (a fixture)

from nar.checkpoint import CHECKSUM_FILE, Checkpointer, CorruptCheckpointError
from nar.cli import main
from nar.config import load
from nar.data.batch import PadSizes
from nar.train import CHECKPOINTS, CONFIG_FILE, Trainer, build_model, initial_state, load_run, make_optimizer

STEPS, EVERY = 12, 4
# A failed Orbax restore leaves TensorStore reads behind that Python reports when it collects them.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def config(*overrides: str):
    return load(None, BASE + [f"train.steps={STEPS}", f"train.checkpoint_every={EVERY}", "train.eval_every=4",
                              *overrides])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run, with checkpoints 8 and 12 on disk."""
    out = tmp_path_factory.mktemp("reference") / "run"
    trainer = Trainer(config(), out, progress=False)
    trainer.run()
    return SimpleNamespace(out=out, trainer=trainer, records=read_metrics(out))


def copy_run(reference, tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(reference.out, run)
    return run


def array_file(run: Path, step: int) -> Path:
    """The largest of a checkpoint's array data files (it holds the arrays; the others hold small ones)."""
    files = (run / CHECKPOINTS / str(step) / "default").glob("ocdbt.process_*/d/*")
    return max(files, key=lambda p: p.stat().st_size)


def template(cfg) -> dict:
    params = nnx.to_pure_dict(nnx.split(build_model(cfg))[1])
    return initial_state(cfg, params, make_optimizer(cfg))


def orbax_restore(run: Path, step: int) -> list:
    """The arrays of a checkpoint as Orbax alone restores them (no checksum)."""
    manager = ocp.CheckpointManager(run / CHECKPOINTS)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template(config()))
    state = manager.restore(step, args=ocp.args.StandardRestore(abstract))
    manager.close()
    return jax.tree.leaves(state)


def flip(run: Path, step: int) -> None:
    """Flip one byte of checkpoint `step`'s array data where Orbax restores the change without complaint: the first
    of 32 evenly spaced places that changes a restored array (elsewhere a flip may break the compression's framing,
    and the file's tail holds index nodes that a restore does not read)."""
    path = array_file(run, step)
    data = path.read_bytes()
    intact = orbax_restore(run, step)
    for i in range(len(data) // 64, len(data), len(data) // 32):
        flipped = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
        trial = run.parent / f"trial{i}"
        shutil.copytree(run, trial)
        (trial / path.relative_to(run)).write_bytes(flipped)
        try:
            changed = any(not np.array_equal(a, b) for a, b in zip(orbax_restore(trial, step), intact))
        except Exception:
            changed = False
        shutil.rmtree(trial)
        if changed:
            path.write_bytes(flipped)
            return
    raise AssertionError(f"no byte of {path} changes what Orbax restores")


def truncate(run: Path, step: int) -> None:
    """Cut checkpoint `step`'s array data file to its first eighth."""
    path = array_file(run, step)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 8])


def checkpoint_state(run: Path, step: int) -> dict:
    ckpt = Checkpointer(run / CHECKPOINTS)
    state = ckpt.restore(template(config()), step)
    ckpt.close()
    return state


def snapshot(run: Path) -> dict:
    return {p.relative_to(run): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def test_flipped_bytes_pass_orbax_but_not_the_checksum(reference, tmp_path):
    run = copy_run(reference, tmp_path)
    flip(run, 12)  # restored by Orbax without complaint, one array changed: the checksum is what catches it
    ckpt = Checkpointer(run / CHECKPOINTS)
    with pytest.raises(CorruptCheckpointError, match=r"step 12 .* is corrupt: its arrays differ from the checksum"):
        ckpt.restore(template(config()), 12)
    ckpt.close()


@pytest.mark.parametrize("damage, reason", [(flip, "is corrupt"), (truncate, "is unreadable")])
def test_resume_falls_back_to_the_newest_intact_checkpoint(reference, tmp_path, damage, reason):
    run = copy_run(reference, tmp_path)
    damage(run, 12)
    with pytest.warns(UserWarning, match=rf"skipping the checkpoint of step 12 in .*{CHECKPOINTS} {reason}"):
        trainer = Trainer(config(), run, resume=True, progress=False)
    summary = trainer.run()
    assert summary["resumed_from"] == 8
    assert_trees_equal(trainer.params, reference.trainer.params)
    assert_trees_equal(trainer.best_params, reference.trainer.best_params)
    assert stable(read_metrics(run)) == stable(reference.records)
    assert_trees_equal(checkpoint_state(run, 12), checkpoint_state(reference.out, 12))  # rewritten, intact


def test_no_intact_checkpoint_is_an_error_naming_the_directory(reference, tmp_path, capsys):
    run = copy_run(reference, tmp_path)
    flip(run, 8)
    truncate(run, 12)
    before = snapshot(run)
    where = str(run / CHECKPOINTS)
    with pytest.warns(UserWarning) as warned, pytest.raises(CorruptCheckpointError) as e:
        Trainer(config(), run, resume=True, progress=False)
    skipped = [f"skipping the checkpoint of step {s}" for s in (12, 8)]
    assert [str(w.message).split(" in ")[0] for w in warned] == skipped
    assert f"no intact checkpoint in {where}" in str(e.value) and "12, 8" in str(e.value)
    with pytest.warns(UserWarning), pytest.raises(CorruptCheckpointError, match="no intact checkpoint"):
        load_run(run)
    assert snapshot(run) == before  # nothing written
    # The command line reports it as an error, naming the directory.
    with pytest.warns(UserWarning):
        assert main(["train", "--resume", "--out", str(run), "--quiet"]) == 2
        assert main(["eval", str(run), "--sizes", "5"]) == 2
    err = capsys.readouterr().err
    assert err.count(f"error: no intact checkpoint in {where}") == 2
    assert snapshot(run) == before


def test_load_run_falls_back_with_a_warning(reference, tmp_path):
    run = copy_run(reference, tmp_path)
    flip(run, 12)
    with pytest.warns(UserWarning, match=r"skipping the checkpoint of step 12 .* is corrupt"):
        _, params, _ = load_run(run, "params")
    assert_trees_equal(params, checkpoint_state(reference.out, 8)["params"])


def test_a_checkpoint_without_checksum_restores_with_a_warning(reference, tmp_path):
    """Checkpoints written before checksums existed stay usable, flagged as unverified."""
    run = copy_run(reference, tmp_path)
    (run / CHECKPOINTS / "12" / CHECKSUM_FILE).unlink()
    with pytest.warns(UserWarning, match=r"step 12 .* has no checksum .* restored unverified"):
        _, params, _ = load_run(run, "params")
    assert_trees_equal(params, reference.trainer.params)


def old_pad(run: Path) -> str:
    """A newest checkpoint (16) with `pad` as runs stored it before it had one row per pad group."""
    state = checkpoint_state(run, 12)
    state["pad"] = np.zeros(len(fields(PadSizes)), np.int32)
    ckpt = Checkpointer(run / CHECKPOINTS)
    ckpt.save(16, state)
    ckpt.close()
    return rf"pad is int32\[{len(fields(PadSizes))}\] in the checkpoint, int32\[1, {len(fields(PadSizes))}\]"


def edited_processor(run: Path) -> str:
    """Edit the run's config.toml to another processor (other parameters)."""
    (run / CONFIG_FILE).write_text(config("model.processor=gmpnn").to_toml())
    return r"params\.\S+ is (not )?in the checkpoint"


def edited_hidden(run: Path) -> str:
    (run / CONFIG_FILE).write_text(config("model.hidden=8").to_toml())
    return r"params\.\S+ is float32\[\d+, 16\] in the checkpoint, float32\[\d+, 8\] for the config"


@pytest.mark.parametrize("change", [old_pad, edited_processor, edited_hidden])
def test_a_checkpoint_of_another_config_is_a_clear_error(reference, tmp_path, change, capsys):
    run = copy_run(reference, tmp_path)
    entry = change(run)
    before = snapshot(run)
    pattern = rf"the checkpoint of step 1[26] in .* does not match the run's config: .*{entry}"
    with pytest.raises(ValueError, match=pattern) as e:
        load_run(run)
    assert not isinstance(e.value, CorruptCheckpointError)  # no fall-back: an older checkpoint would not fit either
    with pytest.raises(ValueError, match=pattern):
        Trainer(load(run / CONFIG_FILE), run, resume=True, progress=False)
    assert main(["eval", str(run), "--sizes", "5"]) == 2
    assert "does not match the run's config" in capsys.readouterr().err
    assert snapshot(run) == before
