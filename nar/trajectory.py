"""Trajectories in two encodings, converted in exactly one place.

`Trajectory` is one sample in CLRS's dense encoding (what `nar.algorithms.execute` returns): node pointers as
integer indices, mask_one and categorical one-hot, masks 0/1, scalars float, edge probes as [n, n] matrices, hints
stacked on a leading time axis.

`TrajectoryBatch` holds many samples compactly, concatenated like a `jraph.GraphsTuple`: every probe is one flat
array, node values of all samples back to back, edge probes over each sample's edge list (senders, receivers),
mask_one as an index per row and categorical as a class per row. Samples may differ in size and length. This is the
in-memory and on-disk form of datasets: a graph of 4,096 nodes costs O(edges), not O(n^2).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Iterable, Mapping

import numpy as np

from nar.specs import NUM_CLASSES, SPECS, Location, Stage, Type


def _is_per_node(location: str, type_: str) -> bool:
    """True when a probe holds one value per node (else one value per row: graph probes and mask_one indices)."""
    return location == Location.NODE and type_ != Type.MASK_ONE


@dataclasses.dataclass(frozen=True)
class Trajectory:
    """One execution in CLRS's dense encoding; hints are [T, ...]."""

    algorithm: str
    inputs: Mapping[str, np.ndarray]
    hints: Mapping[str, np.ndarray]
    outputs: Mapping[str, np.ndarray]

    @property
    def length(self) -> int:
        """Number of hint steps T."""
        return int(next(iter(self.hints.values())).shape[0])

    @property
    def num_nodes(self) -> int:
        """Number of nodes n (the length of the `pos` input)."""
        return int(self.inputs["pos"].shape[0])


@dataclasses.dataclass(frozen=True)
class TrajectoryBatch:
    """Many trajectories of one algorithm, stored compactly and concatenated (see module docstring).

    Layout of `probes[name]` by (stage, location): input/output node -> [sum n_i]; input/output graph and node
    mask_one -> [num_samples]; input edge -> [sum e_i] over `senders`/`receivers`; hint node -> [sum T_i * n_i]
    (sample-major, then time, then node); hint graph and hint node mask_one -> [sum T_i].
    """

    algorithm: str
    n_node: np.ndarray  # [S] int32
    n_step: np.ndarray  # [S] int32 (T)
    n_edge: np.ndarray  # [S] int32 (0 for algorithms without edge inputs)
    senders: np.ndarray  # [sum e_i] int32, local node index within its sample
    receivers: np.ndarray  # [sum e_i] int32
    probes: Mapping[str, np.ndarray]

    def __post_init__(self):
        spec = SPECS[self.algorithm]
        if set(self.probes) != set(spec):
            raise ValueError(f"{self.algorithm}: probes {sorted(self.probes)} do not match the spec {sorted(spec)}")
        edges = int(self.n_edge.sum())
        if self.senders.shape != (edges,) or self.receivers.shape != (edges,):
            raise ValueError(f"{self.algorithm}: senders/receivers have shapes {self.senders.shape}/"
                             f"{self.receivers.shape}, expected ({edges},) from n_edge")
        for name, arr in self.probes.items():
            want = self._units(name).sum()
            if arr.shape != (want,):
                raise ValueError(f"{self.algorithm}: probe {name!r} has shape {arr.shape}, expected ({want},)")

    def __len__(self) -> int:
        return int(self.n_node.shape[0])

    def content_hash(self) -> str:
        """SHA-256 of the samples (every array's dtype, shape and bytes, probes by name): equal hashes mean
        bit-identical data, so a result file can name exactly what it was measured on."""
        h = hashlib.sha256(self.algorithm.encode())
        arrays = [self.n_node, self.n_step, self.n_edge, self.senders, self.receivers]
        for name, arr in [(None, a) for a in arrays] + sorted(self.probes.items()):
            arr = np.ascontiguousarray(arr)
            h.update(f"{name}:{arr.dtype.str}:{arr.shape};".encode())
            h.update(arr.tobytes())
        return h.hexdigest()

    def _units(self, name: str) -> np.ndarray:
        """Number of stored values of probe `name` per sample."""
        stage, location, type_ = SPECS[self.algorithm][name]
        if location == Location.EDGE:
            return self.n_edge.astype(np.int64)
        per_row = self.n_node.astype(np.int64) if _is_per_node(location, type_) else np.ones(len(self), np.int64)
        return per_row * self.n_step if stage == Stage.HINT else per_row

    def offsets(self, name: str) -> np.ndarray:
        """[S + 1] start offsets of each sample's values of probe `name`."""
        return self._offsets[name]

    @functools.cached_property
    def _offsets(self) -> dict[str, np.ndarray]:
        """Offsets of every probe and of the edge lists (`None` key), computed once: indexing stays O(1)."""
        table = {name: np.concatenate([[0], np.cumsum(self._units(name))]) for name in self.probes}
        table[None] = np.concatenate([[0], np.cumsum(self.n_edge.astype(np.int64))])
        return table

    def trajectory(self, i: int) -> Trajectory:
        """Sample i in CLRS's dense encoding."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} out of range for a batch of {len(self)}")
        i %= len(self)
        n, T = int(self.n_node[i]), int(self.n_step[i])
        e0, e1 = self._offsets[None][i : i + 2]
        stages = {Stage.INPUT: {}, Stage.HINT: {}, Stage.OUTPUT: {}}
        for name, (stage, location, type_) in SPECS[self.algorithm].items():
            off = self.offsets(name)
            raw = self.probes[name][off[i] : off[i + 1]]
            if location == Location.EDGE:
                dense = np.zeros((n, n), np.float32)
                dense[self.senders[e0:e1], self.receivers[e0:e1]] = raw
                stages[stage][name] = dense
                continue
            if stage == Stage.HINT:
                raw = raw.reshape((T, n) if _is_per_node(location, type_) else (T,))
            elif location == Location.GRAPH or type_ == Type.MASK_ONE:
                raw = raw.reshape(())
            stages[stage][name] = _densify(raw, type_, n, NUM_CLASSES.get((self.algorithm, name)))
        return Trajectory(self.algorithm, stages[Stage.INPUT], stages[Stage.HINT], stages[Stage.OUTPUT])

    def __iter__(self):
        return (self.trajectory(i) for i in range(len(self)))

    def select(self, indices: Iterable[int]) -> TrajectoryBatch:
        """A new batch holding the given samples, in the given order."""
        idx = np.asarray(list(indices), np.int64)
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"indices out of range for a batch of {len(self)}")
        idx %= max(len(self), 1)
        probes = {name: _gather_segments(arr, self.offsets(name), idx) for name, arr in self.probes.items()}
        e_off = self._offsets[None]
        return TrajectoryBatch(
            self.algorithm,
            self.n_node[idx],
            self.n_step[idx],
            self.n_edge[idx],
            _gather_segments(self.senders, e_off, idx),
            _gather_segments(self.receivers, e_off, idx),
            probes,
        )

    @staticmethod
    def concatenate(batches: Iterable[TrajectoryBatch]) -> TrajectoryBatch:
        """One batch holding the samples of `batches` in order (all of one algorithm)."""
        batches = list(batches)
        if not batches:
            raise ValueError("cannot concatenate an empty list of batches")
        algos = {b.algorithm for b in batches}
        if len(algos) != 1:
            raise ValueError(f"cannot concatenate batches of different algorithms: {sorted(algos)}")
        first = batches[0]

        def cat(get):
            return np.concatenate([get(b) for b in batches])

        return TrajectoryBatch(
            first.algorithm,
            cat(lambda b: b.n_node),
            cat(lambda b: b.n_step),
            cat(lambda b: b.n_edge),
            cat(lambda b: b.senders),
            cat(lambda b: b.receivers),
            {name: cat(lambda b, name=name: b.probes[name]) for name in first.probes},
        )


def _densify(raw: np.ndarray, type_: str, n: int, num_classes: int | None) -> np.ndarray:
    """Compact values -> CLRS's dense encoding for one probe of one sample."""
    if type_ == Type.MASK_ONE:
        return np.eye(n, dtype=np.float32)[raw]
    if type_ == Type.CATEGORICAL:
        return np.eye(num_classes, dtype=np.float32)[raw]
    if type_ in (Type.POINTER, Type.SHOULD_BE_PERMUTATION):
        return raw.astype(np.int32)
    return raw.astype(np.float32)


def _gather_segments(flat: np.ndarray, offsets: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Concatenate segments flat[offsets[k]:offsets[k+1]] for k in idx, vectorised."""
    starts, ends = offsets[idx], offsets[idx + 1]
    lens = ends - starts
    if lens.sum() == 0:
        return flat[:0].copy()
    pos = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens) + np.arange(lens.sum())
    return flat[pos]
