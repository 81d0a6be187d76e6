"""The notebooks' install cell: nothing to edit, one function shared by all four, and the pip command it runs in
each case (checkout present or absent x NVIDIA GPU present or absent), checked without network by replacing pip and
the GPU probe. The repository URL is written once in pyproject.toml's [project.urls]; every copy of it matches."""

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
URLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
REPOSITORY = URLS["Repository"]


def _setup_cell(path: Path) -> str:
    return next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code").source


def _install_nar_source(path: Path) -> str:
    """The text of `def install_nar` in the notebook's first code cell."""
    cell = _setup_cell(path)
    defs = [n for n in ast.parse(cell).body if isinstance(n, ast.FunctionDef) and n.name == "install_nar"]
    assert len(defs) == 1, f"{path.name}: the first code cell defines no install_nar"
    return ast.get_source_segment(cell, defs[0])


def test_project_urls_name_one_repository():
    assert re.fullmatch(r"https://github\.com/[\w.-]+/nar", REPOSITORY), REPOSITORY
    assert URLS == {"Repository": REPOSITORY, "Documentation": f"{REPOSITORY}#readme", "Issues": f"{REPOSITORY}/issues"}


def test_every_copy_of_the_repository_url_matches_pyproject():
    """Notebooks, README (its citation) and docs: any github.com/<owner>/nar is the repository of pyproject.toml."""
    files = [*NOTEBOOKS, ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    found = {f.name: re.findall(r"https?://github\.com/[^/\s\"'}]+/nar(?![\w-])", f.read_text()) for f in files}
    assert all(url == REPOSITORY for urls in found.values() for url in urls), found
    assert all(found[p.name] == [REPOSITORY] for p in NOTEBOOKS), found
    assert f"url    = {{{REPOSITORY}}}," in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_setup_cell_has_nothing_to_edit(path):
    cell = _setup_cell(path)
    assert not re.search(r"<org>|EDIT|TODO|FIXME", cell), cell
    assert "\ninstall_nar()\n" in cell and cell.index("install_nar()") < cell.index("import jax")


def test_install_function_is_the_same_in_every_notebook():
    texts = {p.name: _install_nar_source(p) for p in NOTEBOOKS}
    assert len(NOTEBOOKS) == 4 and len(set(texts.values())) == 1, texts


# ---------------------------------------------------------------------------------------------------------------
# What install_nar runs, with pip and nvidia-smi replaced


@pytest.fixture
def install_nar(monkeypatch):
    """The notebooks' install_nar, exec'd here, plus the list of commands it ran. `gpu` sets what the probe finds:
    None (no nvidia-smi), or the exit status nvidia-smi returns."""
    namespace = {}
    exec(_install_nar_source(NOTEBOOKS[0]), namespace)
    calls = []
    state = {"gpu": None}

    def run(argv, **kwargs):
        calls.append(list(argv))
        code = state["gpu"] if argv == ["nvidia-smi"] else 0
        return subprocess.CompletedProcess(argv, code, b"", b"")

    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/nvidia-smi" if state["gpu"] is not None else None)
    monkeypatch.setenv("NAR_INSTALL", "1")
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)

    def call(gpu):
        state["gpu"] = gpu
        calls.clear()
        namespace["install_nar"]()
        return [c for c in calls if c != ["nvidia-smi"]]

    return call


def _checkout(tmp_path: Path, name: str = "nar") -> Path:
    """A folder laid out as a checkout: pyproject.toml naming project `name`, and notebooks/ below it."""
    (tmp_path / "repo" / "notebooks").mkdir(parents=True)
    (tmp_path / "repo" / "pyproject.toml").write_text(f'[project]\nname = "{name}"\nversion = "0"\n')
    return tmp_path / "repo"


PIP = [sys.executable, "-m", "pip", "install", "-q"]


@pytest.mark.parametrize("gpu, extra", [(None, ""), (0, "[cuda]")], ids=["cpu", "gpu"])
def test_inside_a_checkout_installs_the_checkout(install_nar, tmp_path, monkeypatch, gpu, extra):
    repo = _checkout(tmp_path)
    monkeypatch.chdir(repo / "notebooks")  # Jupyter runs a notebook in its own folder: the checkout is a parent
    assert install_nar(gpu) == [[*PIP, f"{repo}{extra}", "matplotlib"]]


@pytest.mark.parametrize("gpu, extra", [(None, ""), (0, "[cuda]")], ids=["cpu", "gpu"])
def test_outside_a_checkout_installs_from_the_repository(install_nar, tmp_path, monkeypatch, gpu, extra):
    monkeypatch.chdir(tmp_path)
    assert install_nar(gpu) == [[*PIP, f"nar{extra} @ git+{REPOSITORY}", "matplotlib"]]


def test_another_projects_pyproject_is_not_a_checkout(install_nar, tmp_path, monkeypatch):
    monkeypatch.chdir(_checkout(tmp_path, name="not-nar") / "notebooks")
    assert install_nar(None) == [[*PIP, f"nar @ git+{REPOSITORY}", "matplotlib"]]


def test_nvidia_smi_that_fails_means_no_gpu(install_nar, tmp_path, monkeypatch):
    """A CPU runtime may carry nvidia-smi without a driver; it then exits non-zero and CPU JAX is installed."""
    monkeypatch.chdir(tmp_path)
    assert install_nar(9) == [[*PIP, f"nar @ git+{REPOSITORY}", "matplotlib"]]


def test_installs_only_in_colab_or_when_asked(install_nar, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NAR_INSTALL")
    assert install_nar(0) == []  # a local run or CI: the venv stays as it is
    monkeypatch.setitem(sys.modules, "google.colab", object())
    assert install_nar(0) == [[*PIP, f"nar[cuda] @ git+{REPOSITORY}", "matplotlib"]]
