"""The four sorts of CLRS: insertion and bubble sort (lockstep over a batch: their steps do not depend on the
data), heapsort and quicksort (sample by sample on a `Tape`: their recursion does).

Every sort tracks `order` (the node at each array position, CLRS's `A_pos`); the `pred_h` hint is the array as a
predecessor list of that order. Comparisons are CLRS's: insertion `>`, bubble `<`, heapify `>`, partition `<=`.
"""

from __future__ import annotations

import numpy as np

from nar.algorithms.probing import (
    Tape,
    heap_parents,
    pred_from_order,
    sort_trajectories,
)
from nar.trajectory import TrajectoryBatch


def _time_major(rounds: list[np.ndarray]) -> np.ndarray:
    """[T] list of [B, ...] snapshots -> flat sample-major layout."""
    stacked = np.stack(rounds, axis=1)
    return stacked.reshape(-1)


def insertion_sort(keys: np.ndarray) -> TrajectoryBatch:
    """CLRS's insertion sort of every row of keys [B, n], in lockstep over the batch."""
    num, n = keys.shape
    vals, order = keys.copy(), np.tile(np.arange(n), (num, 1))
    orders, i_h, j_h = [order], [np.zeros(num, np.int64)], [np.zeros(num, np.int64)]
    pos = np.arange(n)
    prev = np.roll(pos, 1)  # prev[k] = k - 1: the slot a shifted key comes from
    for j in range(1, n):
        key = vals[:, j : j + 1]
        # The while loop shifts every larger key of the sorted prefix one slot right, leaving `slot` free.
        slot = (vals[:, :j] <= key).sum(axis=1, keepdims=True)
        i_h.append(np.take_along_axis(order, slot, 1)[:, 0])  # the node that held the slot before the shift
        j_h.append(np.full(num, j))
        shifted = (pos > slot) & (pos <= j)
        vals = np.where(pos == slot, key, np.where(shifted, vals[:, prev], vals))
        order = np.where(pos == slot, j, np.where(shifted, order[:, prev], order))
        orders.append(order)
    return sort_trajectories("insertion_sort", keys, np.full(num, n), {
        "pred": pred_from_order(order).reshape(-1).astype(np.int32),
        "pred_h": pred_from_order(np.stack(orders, axis=1)).reshape(-1).astype(np.int32),
        "i": _time_major(i_h).astype(np.int32),
        "j": _time_major(j_h).astype(np.int32),
    })


def bubble_sort(keys: np.ndarray) -> TrajectoryBatch:
    """CLRS's bubble sort of every row of keys [B, n], in lockstep over the batch."""
    num, n = keys.shape
    vals, order = keys.copy(), np.tile(np.arange(n), (num, 1))
    rows = np.arange(num)
    orders, i_h, j_h = [order.copy()], [np.zeros(num, np.int64)], [np.zeros(num, np.int64)]
    for i in range(n - 1):
        for j in range(n - 1, i, -1):
            swap = rows[vals[:, j] < vals[:, j - 1]]
            vals[swap, j - 1], vals[swap, j] = vals[swap, j], vals[swap, j - 1]
            order[swap, j - 1], order[swap, j] = order[swap, j], order[swap, j - 1]
            orders.append(order.copy())
            i_h.append(order[:, i].copy())
            j_h.append(order[:, j].copy())
    return sort_trajectories("bubble_sort", keys, np.full(num, len(orders)), {
        "pred": pred_from_order(order).reshape(-1).astype(np.int32),
        "pred_h": pred_from_order(np.stack(orders, axis=1)).reshape(-1).astype(np.int32),
        "i": _time_major(i_h).astype(np.int32),
        "j": _time_major(j_h).astype(np.int32),
    })


def _tracked_array(a: list[float], tape: Tape):
    """Start a sample on `tape`: returns its `order` (node at each position) and a `swap(x, y)` of positions that
    swaps keys and nodes and logs the two writes of `order`."""
    order = list(range(len(a)))
    tape.begin(len(a), order=order)
    order_log = tape.log("order")

    def swap(x: int, y: int) -> None:
        a[x], a[y] = a[y], a[x]
        order[x], order[y] = order[y], order[x]
        order_log.extend((tape.step, x, order[x], tape.step, y, order[y]))

    return order, swap


def _heapsort(a: list[float], tape: Tape) -> list[int]:
    n = len(a)
    order, swap = _tracked_array(a, tape)
    tape.push(n - 1, n - 1, n - 1, n - 1, n, 0)  # i, j, largest, heap_size, size, phase

    def max_heapify(i: int, size: int, ind: int, phase: int) -> None:
        while True:  # CLRS's tail recursion, one hint per call
            left, right = 2 * i + 1, 2 * i + 2
            largest = left if left < size and a[left] > a[i] else i
            if right < size and a[right] > a[largest]:
                largest = right
            if largest != i:
                swap(i, largest)
            tape.push(order[ind], order[i], order[largest], order[size - 1], size, phase)
            if largest == i:
                return
            i = largest

    for i in range(n - 1, -1, -1):  # build the max-heap
        max_heapify(i, n, i, 0)
    for i in range(n - 1, 0, -1):  # move the maximum behind the shrinking heap
        swap(0, i)
        # CLRS marks node 0 (not the node at position 0) as `largest` here.
        tape.push(order[0], order[i], 0, order[i - 1], i, 1)
        max_heapify(0, i, i, 2)
    tape.end()
    return order


def heapsort(keys: np.ndarray) -> TrajectoryBatch:
    """CLRS's heapsort of every row of keys [B, n] (sample by sample, recorded on a `Tape`)."""
    tape = Tape("i", "j", "largest", "heap_size", "size", "phase")
    final = np.array([_heapsort(row, tape) for row in keys.tolist()])
    order = tape.node_array("order", np.int32).reshape(-1, keys.shape[1])
    return sort_trajectories("heapsort", keys, tape.n_step, {
        "pred": pred_from_order(final).reshape(-1).astype(np.int32),
        "pred_h": pred_from_order(order).reshape(-1),
        "parent": heap_parents(order, tape.rows("size", np.int32)).reshape(-1),
        "i": tape.rows("i", np.int32),
        "j": tape.rows("j", np.int32),
        "largest": tape.rows("largest", np.int32),
        "heap_size": tape.rows("heap_size", np.int32),
        "phase": tape.rows("phase", np.int8),
    })


def _quicksort(a: list[float], tape: Tape) -> list[int]:
    n = len(a)
    order, swap = _tracked_array(a, tape)  # CLRS pushes no initial hint for quicksort

    def partition(p: int, r: int) -> int:  # Lomuto, pivot a[r]
        pivot, i = a[r], p - 1
        for j in range(p, r):
            if a[j] <= pivot:
                i += 1
                swap(i, j)
            tape.push(order[p], order[r], order[i + 1], order[j])
        swap(i + 1, r)
        tape.push(order[p], order[r], order[i + 1], order[r])
        return i + 1

    # CLRS recurses on (p, q-1) then (q+1, r); an explicit stack keeps that order without Python's depth limit.
    stack = [(0, n - 1)]
    while stack:
        p, r = stack.pop()
        if p < r:
            q = partition(p, r)
            stack.append((q + 1, r))
            stack.append((p, q - 1))
    tape.end()
    return order


def quicksort(keys: np.ndarray) -> TrajectoryBatch:
    """CLRS's quicksort of every row of keys [B, n] (sample by sample, recorded on a `Tape`)."""
    tape = Tape("p", "r", "i", "j")
    final = np.array([_quicksort(row, tape) for row in keys.tolist()])
    order = tape.node_array("order", np.int32).reshape(-1, keys.shape[1])
    return sort_trajectories("quicksort", keys, tape.n_step, {
        "pred": pred_from_order(final).reshape(-1).astype(np.int32),
        "pred_h": pred_from_order(order).reshape(-1),
        "p": tape.rows("p", np.int32),
        "r": tape.rows("r", np.int32),
        "i": tape.rows("i", np.int32),
        "j": tape.rows("j", np.int32),
    })
