"""Documentation that cannot rot silently: every public function and class has a docstring, and every relative
link in README.md and docs/*.md points to a file that exists."""

import inspect
import re
from pathlib import Path

import pytest

import nar
import nar.algorithms
import nar.data
import nar.processors

ROOT = Path(__file__).parents[1]
PUBLIC_MODULES = [nar, nar.algorithms, nar.data, nar.processors]
def public_objects():
    """(qualified name, object) for everything in the public modules' __all__ and the public methods and
    properties of the public classes."""
    seen = {}
    for module in PUBLIC_MODULES:
        for name in module.__all__:
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            qual = f"{obj.__module__}.{obj.__qualname__}"
            seen[qual] = obj
            if inspect.isclass(obj):
                for attr, value in vars(obj).items():
                    if attr.startswith("_"):
                        continue
                    fn = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
                    if inspect.isfunction(fn):
                        seen[f"{qual}.{attr}"] = fn
    return seen


def test_public_api_is_large_enough_to_mean_something():
    names = public_objects()
    assert {"nar.algorithms.execute", "nar.algorithms.register", "nar.data.dataset.generate",
            "nar.trajectory.TrajectoryBatch.trajectory", "nar.processors.register"} <= set(names)


def test_every_public_function_and_class_has_a_docstring():
    missing = sorted(q for q, obj in public_objects().items() if not (obj.__doc__ or "").strip())
    assert missing == [], "add a docstring (what and why, a few lines)"


def markdown_files():
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def relative_links(text: str) -> list[str]:
    """Targets of markdown links and images that are neither URLs nor in-page anchors (code spans removed)."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    return [t for t in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]


def test_link_parser_finds_what_it_should():
    text = "[a](docs/x.md) ![p](plots/y.png) [u](https://e.org) [h](#top) `[c](not/a/link.md)` [f](z.md#part)"
    assert relative_links(text) == ["docs/x.md", "plots/y.png", "z.md#part"]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.name)
def test_relative_links_point_to_existing_files(path):
    broken = [t for t in relative_links(path.read_text()) if not (path.parent / t.split("#")[0]).exists()]
    assert not broken, f"{path.relative_to(ROOT)} links to missing files: {broken}"
