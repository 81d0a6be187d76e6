"""Every notebook runs top to bottom at its small budget (NAR_NOTEBOOK_SMALL=1), and is committed without outputs.

The kernel is this interpreter (a kernelspec written to a temporary JUPYTER_PATH), so the notebooks see the nar
under test, whatever kernels the machine has installed. Each notebook runs in its own temporary directory.
"""

import json
import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
KERNEL = "nar-test-python"
CELL_TIMEOUT_S = 600


def test_there_are_four_notebooks():
    assert [p.name[:3] for p in NOTEBOOKS] == ["01_", "02_", "03_", "04_"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} hold outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_at_small_budget(path, tmp_path, monkeypatch):
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "nar (test interpreter)", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("NAR_NOTEBOOK_SMALL", "1")
    monkeypatch.delenv("NAR_INSTALL", raising=False)  # the set-up cell must not pip-install: this venv is under test
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(path.parents[1]),
                                                                   os.environ.get("PYTHONPATH")])))
    work = tmp_path / "work"
    work.mkdir()
    nb = nbformat.read(path, as_version=4)
    # A cell error raises CellExecutionError naming the cell and the traceback: the test fails on it.
    client = NotebookClient(nb, kernel_name=KERNEL, timeout=CELL_TIMEOUT_S, resources={"metadata": {"path": str(work)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    setup = next(c for c in nb.cells if c.cell_type == "code")
    assert "SMALL_BUDGET = True" in "".join(o.get("text", "") for o in setup.outputs), "small budget not taken"
