"""Recording hint trajectories cheaply, and the CLRS probe builders, vectorised.

Two ways to record, both ending in `TrajectoryBatch`'s flat layout:
- lockstep executors (BFS, Bellman-Ford, the simple sorts) run a whole batch at once and stack one snapshot of the
  concatenated node state per round: `flatten_node_hints` keeps each sample's first T_i rounds;
- sequential executors (DFS, heapsort, quicksort) run sample by sample in plain Python and record only what
  changes on a `Tape`; the tape rebuilds every snapshot of the whole batch in one vectorised pass at the end.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import chain

import numpy as np

from nar.trajectory import TrajectoryBatch

# Rows per block of the pointer scatters: their index temporaries stay a few MiB, memory the allocator hands back
# warm on the next block; one temporary the size of a whole batch of hints would be fresh pages every time, and
# first-touching fresh pages costs more than the scatter itself on small VMs.
_BLOCK_ROWS = 1 << 13


def _scatter_by_order(order: np.ndarray, values_of) -> np.ndarray:
    """out[..., order[..., k]] = values[..., k] along the last axis, as int32, block by block of rows.

    `values_of(block, rows)` gives the values of a block of rows of `order` (flattened to [R, n]; `rows` is its
    slice of R). Flat indices: put_along_axis is slower.
    """
    n = order.shape[-1]
    flat = order.reshape(-1, n)
    out = np.empty(flat.shape, np.int32)
    base = np.arange(min(_BLOCK_ROWS, len(flat)), dtype=np.intp)[:, None] * n
    for start in range(0, len(flat), _BLOCK_ROWS):
        block = flat[start : start + _BLOCK_ROWS]
        rows = slice(start, start + len(block))
        out[rows].reshape(-1)[(base[: len(block)] + block).reshape(-1)] = values_of(block, rows).reshape(-1)
    return out.reshape(order.shape)


def pred_from_order(order: np.ndarray) -> np.ndarray:
    """CLRS's `array` probe: predecessor pointers of an array order, the head pointing to itself, as int32.

    `order[..., k]` is the node at position k; returns `pred` with pred[order[k]] = order[k-1], pred[order[0]] =
    order[0]. Works on any leading batch/time axes.
    """
    return _scatter_by_order(order, lambda block, _: np.concatenate([block[:, :1], block[:, :-1]], axis=1))


def heap_parents(order: np.ndarray, heap_size: np.ndarray) -> np.ndarray:
    """CLRS's `heap` probe, as int32: heap-parent pointers for positions below `heap_size`, self-pointers elsewhere."""
    k = np.arange(order.shape[-1])
    size = np.broadcast_to(np.asarray(heap_size), order.shape[:-1]).reshape(-1)

    def parents(block, rows):
        return np.where((k >= 1) & (k < size[rows, None]), block[:, (k - 1) // 2], block)

    return _scatter_by_order(order, parents)


def _segment_positions(seg_len: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For concatenated segments of the given lengths: (segment id, position within segment) of every element."""
    seg_len = seg_len.astype(np.int64)
    seg = np.repeat(np.arange(seg_len.size), seg_len)
    start = np.concatenate([[0], np.cumsum(seg_len)[:-1]])
    return seg, np.arange(seg_len.sum()) - start[seg]


def flatten_node_hints(rounds: np.ndarray, n_node: np.ndarray, n_step: np.ndarray) -> np.ndarray:
    """[R, sum n_i] per-round snapshots of concatenated node state -> [sum T_i n_i], sample-major, time, node."""
    seg, k = _segment_positions(n_node.astype(np.int64) * n_step)
    n = n_node.astype(np.int64)[seg]
    node_off = np.concatenate([[0], np.cumsum(n_node, dtype=np.int64)[:-1]])
    return rounds[k // n, node_off[seg] + k % n]


def trim_lockstep(grid: np.ndarray, n_node: np.ndarray | None, n_step: np.ndarray) -> np.ndarray:
    """Padded lockstep recordings -> `TrajectoryBatch`'s flat layout: per node [B, T, N] (give `n_node`) to
    [sum T_i n_i], or per step [B, T] (`n_node` None) to [sum T_i], keeping sample i's first T_i steps and n_i nodes
    (samples of a lockstep batch may differ in size and length; the padding holds whatever the loop left there)."""
    steps = np.arange(grid.shape[1]) < np.asarray(n_step)[:, None]
    if n_node is None or (np.asarray(n_node) == grid.shape[2]).all():
        return grid.reshape(-1) if steps.all() else grid[steps].reshape(-1)
    return grid[steps[:, :, None] & (np.arange(grid.shape[2]) < np.asarray(n_node)[:, None, None])]


class Tape:
    """Event log of a batch of sequential executions (samples may differ in size).

    `Tape(*row_names)` names the per-step values (indices, graph scalars) that every `push` gives, in order.
    `begin(n, ...)` starts a sample with the initial value of each node array; `set` records one element change,
    visible from the next `push`; `push` closes a hint step; `end` closes the sample. `node_array`/`rows` then
    rebuild every step's snapshot in `TrajectoryBatch`'s flat layout, [sum T_i n_i] and [sum T_i], in one
    vectorised pass. Recording is a list append per event: this is the hot loop of the sequential executors.
    """

    def __init__(self, *row_names: str):
        self.row_names = row_names
        self.step = 0
        self.n_node: list[int] = []
        self.n_step: list[int] = []
        self._start = 0
        # Flat lists convert to numpy far faster than lists of tuples: writes are (step, node, value) triples,
        # rows one value per row name per step; initial arrays are kept whole, with the step they start at.
        self._writes = defaultdict(list)
        self._initial = defaultdict(list)
        self._rows: list = []
        self._table = np.zeros((0, len(row_names)))

    def begin(self, n: int, **arrays) -> None:
        """Start a sample of n nodes with the initial value of each node array."""
        self.n_node.append(n)
        for name, values in arrays.items():
            self._initial[name].append((self.step, list(values)))  # a copy: callers mutate their arrays

    def set(self, name: str, node: int, value) -> None:
        """Record node array `name`[node] = value, visible from the next `push`."""
        self._writes[name].extend((self.step, node, value))

    def log(self, name: str) -> list:
        """The flat write list of one node array, for hot loops: `log.extend((tape.step, node, value))` is
        `set(name, node, value)` without the method call and name lookup."""
        return self._writes[name]

    def push(self, *row) -> None:
        """Close a hint step, with one value per row name (indices, graph scalars)."""
        self._rows.extend(row)
        self.step += 1

    def end(self) -> None:
        """Close the current sample."""
        self.n_step.append(self.step - self._start)
        self._start = self.step

    def rows(self, name: str, dtype) -> np.ndarray:
        """[sum T_i] the per-step values of row `name`, as `dtype`."""
        if self._table.shape[0] != self.step:  # converted once, after the last push
            self._table = np.array(self._rows, dtype=np.float64).reshape(self.step, len(self.row_names))
        return self._table[:, self.row_names.index(name)].astype(dtype)

    def node_array(self, name: str, dtype) -> np.ndarray:
        """Snapshots of a node array: each element holds its last write at or before the step (last write wins).

        Built column by column: sorted by (node, step), each write's value is repeated until the next write to
        the same node, which costs O(writes) plus one pass over the output (no per-element gather).
        """
        steps_total, width = self.step, max(self.n_node)
        if steps_total == 0:
            return np.zeros(0, dtype)
        writes = np.array(self._writes[name], dtype=np.float64).reshape(-1, 3)
        starts = [start for start, _ in self._initial[name]]
        sizes = np.array([len(v) for _, v in self._initial[name]])
        init_vals = np.fromiter(chain.from_iterable(v for _, v in self._initial[name]), np.float64, sizes.sum())
        # A zero at step 0 of every column comes first, so each column starts with a value; then every sample's
        # initial array at its first step; then the writes, which win over both (last write wins).
        steps = np.concatenate([np.zeros(width, np.int64), np.repeat(starts, sizes).astype(np.int64),
                                writes[:, 0].astype(np.int64)])
        cols = np.concatenate([np.arange(width), _segment_positions(sizes)[1],
                               writes[:, 1].astype(np.int64)])
        vals = np.concatenate([np.zeros(width), init_vals, writes[:, 2]])
        live = steps < steps_total  # writes after the last push of the batch are never seen
        key = cols[live] * (steps_total + 1) + steps[live]
        order = np.argsort(key, kind="stable")
        key, vals = key[order], vals[live][order]
        last = np.append(key[1:] != key[:-1], True)
        key, vals = key[last], vals[last]
        cols, steps = np.divmod(key, steps_total + 1)
        until = np.append(steps[1:], steps_total)
        until[np.append(cols[1:] != cols[:-1], True)] = steps_total
        grid = np.repeat(vals.astype(dtype), until - steps).reshape(width, steps_total).T
        if min(self.n_node) == width:  # one size: the [steps, n] grid already is the flat layout
            return np.ascontiguousarray(grid).reshape(-1)
        n_node, n_step = np.asarray(self.n_node), np.asarray(self.n_step)
        seg, k = _segment_positions(n_node * n_step)
        row = np.concatenate([[0], np.cumsum(n_step)[:-1]])[seg] + k // n_node[seg]
        return grid[row, k % n_node[seg]]

def graph_trajectories(algorithm: str, graphs, n_step: np.ndarray, probes: dict) -> TrajectoryBatch:
    """Assemble a graph algorithm's batch: adds the shared inputs `pos`, `A` and `adj` to `probes`."""
    n_edge, snd, rcv, a_val, adj_val = graphs.input_edges()
    gid = graphs.graph_of_node
    pos = (np.arange(gid.size) - graphs.node_offset[gid]) / graphs.n_node[gid]
    probes = {"pos": pos.astype(np.float32), "A": a_val.astype(np.float32), "adj": adj_val, **probes}
    return TrajectoryBatch(algorithm, graphs.n_node.astype(np.int32), np.asarray(n_step, np.int32),
                           n_edge.astype(np.int32), snd.astype(np.int32), rcv.astype(np.int32), probes)


def sort_trajectories(algorithm: str, keys: np.ndarray, n_step: np.ndarray, probes: dict) -> TrajectoryBatch:
    """Assemble a sorting batch (keys [B, n]): adds the shared inputs `pos` and `key`."""
    num, n = keys.shape
    pos = np.tile(np.arange(n) / n, num)
    probes = {"pos": pos.astype(np.float32), "key": keys.reshape(-1).astype(np.float32), **probes}
    empty = np.zeros(0, np.int32)
    return TrajectoryBatch(algorithm, np.full(num, n, np.int32), np.asarray(n_step, np.int32),
                           np.zeros(num, np.int32), empty, empty, probes)
