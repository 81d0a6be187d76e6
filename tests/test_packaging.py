"""The package as installed: license and type marker shipped, dependencies that are exactly what nar imports, the
dm-clrs harnesses kept out of it, and `python -m nar` as the `nar` command."""

import ast
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from nar.bench import dmclrs_script

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]


def _name(requirement: str) -> str:
    """The distribution a requirement names, normalised (PEP 503): 'jax[cuda12]>=0.10' -> 'jax'."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", requirement).group()).lower()


def test_license_file_is_apache_2_and_declared():
    assert PROJECT["license"] == "Apache-2.0" and PROJECT["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text


def test_py_typed_ships_as_package_data():
    assert (ROOT / "nar" / "py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["nar"]


def test_dependencies_are_what_nar_imports():
    """Every third-party module nar imports comes from a declared dependency (matplotlib: the `plot` extra, for
    `nar.bench.report`), and every dependency is imported somewhere."""
    imported = set()
    for path in (ROOT / "nar").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"nar"}
    dists = packages_distributions()
    used = {_name(d) for m in third_party for d in dists.get(m, [m])}
    declared = {_name(r) for r in PROJECT["dependencies"]}
    plot = {_name(r) for r in PROJECT["optional-dependencies"]["plot"]}
    assert used - plot == declared
    assert [_name(r) for r in PROJECT["optional-dependencies"]["cuda"]] == ["jax"]


def test_dmclrs_harnesses_live_outside_the_installed_package():
    assert not list((ROOT / "nar").rglob("dmclrs_*"))
    assert PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"] == ["nar*"]
    for name in ("dmclrs_model.py", "dmclrs_samplers.py"):
        assert dmclrs_script(name) == ROOT / "benchmarks" / name
    with pytest.raises(FileNotFoundError, match="not installed; run from a source checkout"):
        dmclrs_script("no_such_script.py")


def test_python_dash_m_nar_is_the_nar_command():
    run = subprocess.run([sys.executable, "-m", "nar", "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert "generate" in run.stdout and "train" in run.stdout
