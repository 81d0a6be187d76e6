"""Datasets on disk: plain `.npy` arrays (never pickle) plus a JSON manifest with hashes.

A dataset folder holds one file per array and `manifest.json` (format and generator version, the generating
config, and each file's size and SHA-256). The manifest is written last and atomically, so a half-written folder
has none and counts as missing. Loading checks every file against the manifest: a corrupt or truncated file raises
`CorruptDatasetError` naming it, and `load_or_generate` then regenerates instead of using it. A folder that cannot
be written (read-only, a file in the way, a full disk) raises `DatasetWriteError` naming it, before generating.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nar.data.dataset import Dataset, generate, resolve_config
from nar.trajectory import TrajectoryBatch

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_FIELDS = ("n_node", "n_step", "n_edge", "senders", "receivers")


class CorruptDatasetError(ValueError):
    """A stored dataset does not match its manifest (missing, truncated or altered file, unreadable manifest)."""


class DatasetWriteError(ValueError):
    """A dataset folder cannot be written. A ValueError, as `CorruptDatasetError`, so that the command line
    reports it as an error, not a traceback; the OSError behind it is its `__cause__`."""


@contextlib.contextmanager
def _writing(path: Path):
    """Turn an OSError raised while writing the dataset at `path` into a `DatasetWriteError` naming it."""
    try:
        yield
    except OSError as e:
        raise DatasetWriteError(f"cannot write the dataset folder {path}: {e.strerror or e}"
                                + (f" ({e.filename})" if e.filename else "")) from e


def _partial(path: Path) -> Path:
    """A fresh, empty `<path>.partial` folder to write into (its parents created)."""
    tmp = path.with_name(path.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def content_hash(files: Mapping[str, Mapping[str, Any]]) -> str:
    """One hash for the whole dataset, from the per-file hashes (independent of file order)."""
    return hashlib.sha256("".join(f"{k}:{files[k]['sha256']};" for k in sorted(files)).encode()).hexdigest()


def save(dataset: Dataset, path: str | os.PathLike) -> Path:
    """Write `dataset` to folder `path` (replacing what is there); returns the folder."""
    path = Path(path)
    with _writing(path):
        tmp = _partial(path)
        t = dataset.trajectories
        arrays = {f: getattr(t, f) for f in _FIELDS} | {f"probe.{k}": v for k, v in t.probes.items()}
        files = {}
        for name, arr in arrays.items():
            file = tmp / f"{name}.npy"
            np.save(file, np.ascontiguousarray(arr), allow_pickle=False)
            files[file.name] = {"sha256": _sha256(file), "bytes": file.stat().st_size}
        manifest = {"format_version": FORMAT_VERSION, "algorithm": t.algorithm, "num_samples": len(t),
                    "config": dict(dataset.config), "files": files, "content_hash": content_hash(files)}
        (tmp / (MANIFEST + ".tmp")).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        os.replace(tmp / (MANIFEST + ".tmp"), tmp / MANIFEST)
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)
    return path


def read_manifest(path: str | os.PathLike) -> dict:
    """The manifest of a dataset folder (generator version, config, file hashes), without loading the arrays."""
    file = Path(path) / MANIFEST
    if not file.exists():
        raise FileNotFoundError(f"no dataset at {path} (missing {MANIFEST})")
    try:
        manifest = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptDatasetError(f"{file}: unreadable manifest ({e})") from e
    files = manifest.get("files") if isinstance(manifest, dict) else None
    well_formed = (
        isinstance(files, dict) and isinstance(manifest.get("config"), dict)
        and isinstance(manifest.get("algorithm"), str)
        and all(isinstance(m, dict) and isinstance(m.get("sha256"), str) and isinstance(m.get("bytes"), int)
                for m in files.values())
    )
    if not well_formed:
        raise CorruptDatasetError(f"{file}: malformed manifest (needs algorithm, config and files with "
                                  f"sha256 and bytes)")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CorruptDatasetError(f"{file}: format version {manifest.get('format_version')}, "
                                  f"this nar reads {FORMAT_VERSION}")
    return manifest


def load(path: str | os.PathLike, verify: bool = True) -> Dataset:
    """Read a dataset folder, checking every file's size and SHA-256 against the manifest when `verify`."""
    path = Path(path)
    manifest = read_manifest(path)
    arrays = {}
    for name, meta in manifest["files"].items():
        file = path / name
        if not file.exists():
            raise CorruptDatasetError(f"{file}: missing (listed in the manifest)")
        if file.stat().st_size != meta["bytes"]:
            raise CorruptDatasetError(f"{file}: {file.stat().st_size} bytes, the manifest says {meta['bytes']} "
                                      f"(truncated or altered)")
        if verify and _sha256(file) != meta["sha256"]:
            raise CorruptDatasetError(f"{file}: content hash differs from the manifest (corrupted)")
        try:
            arrays[name.removesuffix(".npy")] = np.load(file, allow_pickle=False)
        except ValueError as e:
            raise CorruptDatasetError(f"{file}: not a readable .npy array ({e})") from e
    probes = {k.removeprefix("probe."): v for k, v in arrays.items() if k.startswith("probe.")}
    try:
        batch = TrajectoryBatch(manifest["algorithm"], *(arrays[f] for f in _FIELDS), probes)
    except (KeyError, ValueError) as e:
        raise CorruptDatasetError(f"{path}: arrays do not form a valid dataset ({e})") from e
    return Dataset(batch, manifest["config"])


def load_or_generate(path: str | os.PathLike, algorithm: str, num_samples: int, num_nodes, seed: int = 0,
                     **kwargs) -> Dataset:
    """The dataset at `path` if it was generated with exactly this request and is intact; otherwise generate it,
    save it there and return it. A corrupt copy is reported with a warning and replaced, never used."""
    workers = kwargs.pop("workers", 1)
    want = resolve_config(algorithm, num_samples, num_nodes, seed, **kwargs)
    try:
        stored = load(path)
        if json.loads(json.dumps(stored.config)) == json.loads(json.dumps(want)):
            return stored
    except FileNotFoundError:
        pass
    except CorruptDatasetError as e:
        warnings.warn(f"regenerating a corrupt dataset: {e}", stacklevel=2)
    with _writing(Path(path)):
        _partial(Path(path)).rmdir()  # a first write, before generating: a folder that cannot be written fails now
    dataset = generate(algorithm, num_samples, num_nodes, seed, workers=workers, **kwargs)
    save(dataset, path)
    return dataset
