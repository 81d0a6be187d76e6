"""On-disk store and dataset-suite tests: round trips, manifests, corruption detection, regeneration and
`nar generate`."""

import hashlib
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import nar.data.store as store
from nar.data import clrs_train, generate, resolve_config
from nar.data.store import MANIFEST, CorruptDatasetError, load, load_or_generate, read_manifest, save
from nar.data.suites import SUITES, build_suite
from nar.specs import GRAPH_ALGORITHMS, SORTING_ALGORITHMS, SPECS

ROOT = Path(__file__).resolve().parents[1]
FIELDS = ("n_node", "n_step", "n_edge", "senders", "receivers")
REQUEST = dict(algorithm="bellman_ford", num_samples=12, num_nodes=(4, 7, 11), seed=0)


def assert_datasets_identical(a, b):
    """Same algorithm, byte-identical arrays and the same (JSON-normalised) config."""
    ta, tb = a.trajectories, b.trajectories
    assert ta.algorithm == tb.algorithm and set(ta.probes) == set(tb.probes)
    pairs = [(f, getattr(ta, f), getattr(tb, f)) for f in FIELDS]
    pairs += [(k, ta.probes[k], tb.probes[k]) for k in ta.probes]
    for name, x, y in pairs:
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), name
    assert json.loads(json.dumps(a.config)) == json.loads(json.dumps(b.config))


@pytest.fixture
def saved(tmp_path):
    """A saved mixed-size Bellman-Ford dataset (edge probes, float hints) and its folder."""
    ds = generate(**REQUEST)
    return ds, save(ds, tmp_path / "ds")


def no_generation(*args, **kwargs):
    raise AssertionError("regenerated an intact dataset")


# ---------------------------------------------------------------------------------------------------------------
# Round trip and manifest


@pytest.mark.parametrize("algorithm", ["bellman_ford", "dfs", "heapsort"])
def test_save_load_round_trip(tmp_path, algorithm):
    ds = clrs_train(algorithm, 10, 3)
    path = save(ds, tmp_path / "a" / "b")
    assert path == tmp_path / "a" / "b"
    loaded = load(path)
    assert_datasets_identical(loaded, ds)
    for i in range(len(ds)):
        for stage in ("inputs", "hints", "outputs"):
            for name, value in getattr(ds[i], stage).items():
                np.testing.assert_array_equal(getattr(loaded[i], stage)[name], value)
    assert not (tmp_path / "a" / "b.partial").exists()


def test_manifest_lists_every_file_with_its_hash(saved):
    ds, path = saved
    manifest = json.loads((path / MANIFEST).read_text())
    assert manifest == read_manifest(path)
    assert manifest["algorithm"] == "bellman_ford" and manifest["num_samples"] == 12
    assert manifest["config"] == json.loads(json.dumps(ds.config))
    want = {f"{f}.npy" for f in FIELDS} | {f"probe.{k}.npy" for k in SPECS["bellman_ford"]}
    assert set(manifest["files"]) == want
    assert {p.name for p in path.iterdir()} == want | {MANIFEST}
    for name, meta in manifest["files"].items():
        data = (path / name).read_bytes()
        assert meta["sha256"] == hashlib.sha256(data).hexdigest()
        assert meta["bytes"] == len(data)
    assert len(manifest["content_hash"]) == 64 and int(manifest["content_hash"], 16) >= 0


def test_content_hash_follows_content(tmp_path):
    def content_hash(ds, name):
        return read_manifest(save(ds, tmp_path / name))["content_hash"]

    same = content_hash(generate(**REQUEST), "a"), content_hash(generate(**REQUEST), "b")
    other = content_hash(generate(**{**REQUEST, "seed": 1}), "c")
    assert same[0] == same[1] != other


def test_files_are_plain_npy(saved):
    ds, path = saved
    t = ds.trajectories
    for file in path.glob("*.npy"):
        assert file.read_bytes()[:6] == b"\x93NUMPY"
        arr = np.load(file, allow_pickle=False)
        name = file.name.removesuffix(".npy")
        want = t.probes[name.removeprefix("probe.")] if name.startswith("probe.") else getattr(t, name)
        assert arr.dtype == want.dtype
        np.testing.assert_array_equal(arr, want)


def test_save_replaces_an_existing_dataset(saved):
    _, path = saved
    other = generate("insertion_sort", 3, 5, 0)
    save(other, path)
    assert_datasets_identical(load(path), other)
    assert not any(p.name.startswith("probe.d") for p in path.iterdir())


# ---------------------------------------------------------------------------------------------------------------
# Corruption


def _flip(file):
    data = bytearray(file.read_bytes())
    data[-1] ^= 0xFF
    file.write_bytes(bytes(data))


def _truncate(file):
    file.write_bytes(file.read_bytes()[:-7])


def _delete(file):
    file.unlink()


@pytest.mark.parametrize("damage", [_flip, _truncate, _delete], ids=["flip", "truncate", "delete"])
@pytest.mark.parametrize("name", ["probe.d.npy", "probe.pi.npy", "senders.npy", "n_node.npy"])
def test_damaged_file_raises_corrupt_naming_it(saved, damage, name):
    _, path = saved
    damage(path / name)
    with pytest.raises(CorruptDatasetError, match=name.replace(".", r"\.")):
        load(path)


@pytest.mark.parametrize("text", ["not json {", "[]", "{}", "null", '"files"',
                                  '{"format_version": 1, "config": {}}',
                                  '{"format_version": 99, "files": {}, "config": {}}',
                                  '{"format_version": 1, "algorithm": "bfs", "config": {}, "files": []}',
                                  '{"format_version": 1, "algorithm": "bfs", "config": {}, '
                                  '"files": {"n_node.npy": {}}}',
                                  '{"format_version": 1, "algorithm": "bfs", "config": {}, '
                                  '"files": {"n_node.npy": "x"}}'])
def test_garbage_manifest_raises_corrupt(saved, text):
    _, path = saved
    (path / MANIFEST).write_text(text)
    with pytest.raises(CorruptDatasetError, match=MANIFEST):
        load(path)


def test_manifest_missing_a_probe_raises_corrupt(saved):
    _, path = saved
    manifest = json.loads((path / MANIFEST).read_text())
    del manifest["files"]["probe.msk.npy"]
    (path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CorruptDatasetError, match="msk"):
        load(path)


def test_missing_manifest_raises_file_not_found(saved, tmp_path):
    _, path = saved
    (path / MANIFEST).unlink()
    with pytest.raises(FileNotFoundError):
        load(path)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nowhere")


# ---------------------------------------------------------------------------------------------------------------
# load_or_generate


def test_load_or_generate_creates_then_reuses(tmp_path, monkeypatch):
    path = tmp_path / "ds"
    first = load_or_generate(path, **REQUEST)
    assert_datasets_identical(first, generate(**REQUEST))
    stamp = (path / MANIFEST).stat().st_mtime_ns
    monkeypatch.setattr(store, "generate", no_generation)
    again = load_or_generate(path, **REQUEST)
    assert_datasets_identical(again, first)
    assert (path / MANIFEST).stat().st_mtime_ns == stamp


def test_load_or_generate_reuses_a_clrs_train_request(tmp_path, monkeypatch):
    # p is a tuple in the request and a list in the stored JSON config: they still match.
    path = tmp_path / "ds"
    request = dict(algorithm="bfs", num_samples=10, num_nodes=(4, 7, 11, 13, 16), seed=2, p=(0.1, 0.5, 0.9))
    load_or_generate(path, **request)
    monkeypatch.setattr(store, "generate", no_generation)
    assert len(load_or_generate(path, **request)) == 10


@pytest.mark.parametrize("damage", [_flip, _truncate, _delete], ids=["flip", "truncate", "delete"])
def test_load_or_generate_replaces_a_corrupt_dataset(saved, damage):
    ds, path = saved
    damage(path / "probe.d.npy")
    with pytest.warns(UserWarning, match="corrupt"):
        got = load_or_generate(path, **REQUEST)
    assert_datasets_identical(got, ds)
    assert_datasets_identical(load(path), ds)


def test_load_or_generate_replaces_a_garbage_manifest(saved):
    ds, path = saved
    (path / MANIFEST).write_text("{oops")
    with pytest.warns(UserWarning, match="corrupt"):
        assert_datasets_identical(load_or_generate(path, **REQUEST), ds)
    assert_datasets_identical(load(path), ds)


@pytest.mark.parametrize("change", [{"seed": 1}, {"num_samples": 5}, {"num_nodes": (4, 7)}, {"start": 3},
                                    {"graph": "tree"}, {"low": 0.5, "high": 2.0}])
def test_load_or_generate_regenerates_for_another_request(saved, change):
    _, path = saved
    request = {**REQUEST, **change}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = load_or_generate(path, **request)
    fresh = generate(**request)
    assert_datasets_identical(got, fresh)
    assert_datasets_identical(load(path), fresh)
    assert load(path).config["seed"] == request["seed"]


# ---------------------------------------------------------------------------------------------------------------
# dataset suites (`nar generate`)


def run_generate(*args):
    return subprocess.run([sys.executable, "-m", "nar", "generate", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_generate_builds_clrs30_splits_and_reuses_them(tmp_path):
    args = ["clrs30", "--cache", str(tmp_path), "--algorithms", "bfs,insertion_sort", "--workers", "1"]
    first = run_generate(*args)
    assert first.returncode == 0, first.stderr
    folders = {p.relative_to(tmp_path / "clrs30").as_posix() for p in (tmp_path / "clrs30").glob("*/*")}
    assert folders == {f"{a}/{s}" for a in ("bfs", "insertion_sort") for s in ("train", "val", "test")}
    # CLRS30: train 1,000 at n=16 seed 1, val 32 at n=16 seed 2, test 32 at n=64 seed 3, dm-clrs's stream.
    for folder in folders:
        ds = load(tmp_path / "clrs30" / folder)
        num, n, seed = {"train": (1000, 16, 1), "val": (32, 16, 2), "test": (32, 64, 3)}[folder.split("/")[1]]
        assert len(ds) == num and set(ds.trajectories.n_node.tolist()) == {n}
        assert ds.config["seed"] == seed and ds.config["stream"] == "clrs"
    t = load(tmp_path / "clrs30" / "bfs" / "train")[0]
    assert np.flatnonzero(t.inputs["A"][0]).tolist() == [11, 13] and int(np.argmax(t.inputs["s"])) == 11

    manifests = {f: (tmp_path / "clrs30" / f / MANIFEST) for f in folders}
    before = {f: (m.stat().st_ino, m.stat().st_mtime_ns, read_manifest(m.parent)["content_hash"])
              for f, m in manifests.items()}
    second = run_generate(*args, "--json")
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout)
    assert set(summary) == folders and summary["bfs/train"]["samples"] == 1000
    after = {f: (m.stat().st_ino, m.stat().st_mtime_ns, read_manifest(m.parent)["content_hash"])
             for f, m in manifests.items()}
    assert after == before


@pytest.mark.parametrize("args,word", [(["nosuch"], "nosuch"), (["clrs30", "--algorithms", "bfs,nope"], "nope")])
def test_generate_rejects_unknown_names(tmp_path, args, word):
    result = run_generate(*args, "--cache", str(tmp_path))
    assert result.returncode != 0
    assert word in result.stderr
    assert not (tmp_path / "clrs30").exists()


def test_build_suite_rejects_unknown_names(tmp_path):
    with pytest.raises(ValueError, match="nosuch"):
        build_suite("nosuch", tmp_path)
    with pytest.raises(ValueError, match="nope"):
        build_suite("clrs30", tmp_path, algorithms=["bfs", "nope"])


def test_clrs30_suite_definition():
    splits = SUITES["clrs30"]()
    want = {(a, name, num, n, seed)
            for a in GRAPH_ALGORITHMS + SORTING_ALGORITHMS
            for name, num, n, seed in (("train", 1000, 16, 1), ("val", 32, 16, 2), ("test", 32, 64, 3))}
    assert {(s.algorithm, s.name, s.num_samples, s.num_nodes, s.seed) for s in splits} == want
    assert len(splits) == len(want)
    for s in splits:
        assert dict(s.options) == {"stream": "clrs"}
        resolve_config(s.algorithm, s.num_samples, s.num_nodes, s.seed, **s.options)


def test_ood_large_suite_definition():
    splits = SUITES["ood-large"]()
    sizes = {"bfs": {128, 256, 512, 1024}, "bellman_ford": {128, 256, 512, 1024}, "dfs": {128, 256},
             "insertion_sort": {128, 256, 512, 1024}, "bubble_sort": {128}, "heapsort": {128, 256},
             "quicksort": {128, 256}}
    families = {"sparse_er": {"degree": 5}, "watts_strogatz": {}, "grid": {}, "tree": {}}
    assert len({s.folder for s in splits}) == len(splits)
    seen = set()
    for s in splits:
        assert s.num_samples == 32 and s.num_nodes in sizes[s.algorithm]
        options = dict(s.options)
        if s.algorithm in GRAPH_ALGORITHMS:
            family = options.pop("graph")
            assert options == families[family]
            assert s.name == f"test_{family}_n{s.num_nodes}"
            seen.add((s.algorithm, s.num_nodes, family))
        else:
            assert options == {} and s.name == f"test_n{s.num_nodes}"
            seen.add((s.algorithm, s.num_nodes, None))
        config = resolve_config(s.algorithm, s.num_samples, s.num_nodes, s.seed, **s.options)
        assert config["stream"] == "nar" and config["num_nodes"] == [s.num_nodes]
    want = {(a, n, f) for a in GRAPH_ALGORITHMS for n in sizes[a] for f in families}
    want |= {(a, n, None) for a in SORTING_ALGORITHMS for n in sizes[a]}
    assert seen == want
