"""The four sorts of CLRS. Insertion and bubble sort run a batch in lockstep (their steps do not depend on the
data); so does heapsort, each sample keeping its own place in the algorithm (a mode) and samples that finish sooner
waiting for the others. Quicksort runs sample by sample on a `Tape`: its partition loop is cheap in plain Python,
and a lockstep version measured slower at n = 64, where `nar.data` hands executors batches of about 128 samples.

Every sort tracks `order` (the node at each array position, CLRS's `A_pos`); the `pred_h` hint is the array as a
predecessor list of that order. Comparisons are CLRS's: insertion `>`, bubble `<`, heapify `>`, partition `<=`.
"""

from __future__ import annotations

import numpy as np

from nar.algorithms.probing import Tape, heap_parents, pred_from_order, sort_trajectories, trim_lockstep
from nar.trajectory import TrajectoryBatch

# What a heapsort sample does next (its hints' phase): heapify while building, swap out the maximum, heapify
# after it, nothing.
_BUILD, _EXTRACT, _SIFT, _DONE = 0, 1, 2, 3


def insertion_sort(keys: np.ndarray) -> TrajectoryBatch:
    """CLRS's insertion sort of every row of keys [B, n], in lockstep over the batch."""
    num, n = keys.shape
    vals, order = keys.copy(), np.tile(np.arange(n, dtype=np.int32), (num, 1))
    # Hints are written in place, [B, T] and [B, T, n]: already the flat sample-major layout.
    orders, i_h, j_h = np.empty((num, n, n), np.int32), np.zeros((num, n), np.int32), np.zeros((num, n), np.int32)
    orders[:, 0] = order
    pos = np.arange(n)
    prev = np.roll(pos, 1)  # prev[k] = k - 1: the slot a shifted key comes from
    for j in range(1, n):
        key = vals[:, j : j + 1]
        # The while loop shifts every larger key of the sorted prefix one slot right, leaving `slot` free.
        slot = (vals[:, :j] <= key).sum(axis=1, keepdims=True)
        i_h[:, j] = np.take_along_axis(order, slot, 1)[:, 0]  # the node that held the slot before the shift
        j_h[:, j] = j
        shifted = (pos > slot) & (pos <= j)
        vals = np.where(pos == slot, key, np.where(shifted, vals[:, prev], vals))
        order = np.where(pos == slot, j, np.where(shifted, order[:, prev], order))
        orders[:, j] = order
    return sort_trajectories("insertion_sort", keys, np.full(num, n), {
        "pred": pred_from_order(order).reshape(-1),
        "pred_h": pred_from_order(orders).reshape(-1),
        "i": i_h.reshape(-1),
        "j": j_h.reshape(-1),
    })


def bubble_sort(keys: np.ndarray) -> TrajectoryBatch:
    """CLRS's bubble sort of every row of keys [B, n], in lockstep over the batch."""
    num, n = keys.shape
    vals, order = keys.copy(), np.tile(np.arange(n, dtype=np.int32), (num, 1))
    rows = np.arange(num)
    steps = n * (n - 1) // 2 + 1
    # Hints are written in place, [B, T] and [B, T, n]: already the flat sample-major layout.
    orders, i_h, j_h = (np.empty((num, steps, n), np.int32), np.zeros((num, steps), np.int32),
                        np.zeros((num, steps), np.int32))
    orders[:, 0] = order
    t = 0
    for i in range(n - 1):
        for j in range(n - 1, i, -1):
            swap = rows[vals[:, j] < vals[:, j - 1]]
            vals[swap, j - 1], vals[swap, j] = vals[swap, j], vals[swap, j - 1]
            order[swap, j - 1], order[swap, j] = order[swap, j], order[swap, j - 1]
            t += 1
            orders[:, t] = order
            i_h[:, t], j_h[:, t] = order[:, i], order[:, j]
    return sort_trajectories("bubble_sort", keys, np.full(num, steps), {
        "pred": pred_from_order(order).reshape(-1),
        "pred_h": pred_from_order(orders).reshape(-1),
        "i": i_h.reshape(-1),
        "j": j_h.reshape(-1),
    })


def heapsort(keys: np.ndarray) -> TrajectoryBatch:
    """CLRS's heapsort of every row of keys [B, n], in lockstep over the batch.

    Each hint is one `max_heapify` call (CLRS's tail recursion, one level per hint) or one extraction swap; a
    sample's mode says which comes next. Every step swaps positions (x, y) of every sample at once: samples whose
    heapify keeps its node, or that are done, swap a position with itself, which changes nothing.
    """
    num, n = keys.shape
    a, order = keys.copy(), np.tile(np.arange(n, dtype=np.int32), (num, 1))
    rows = np.arange(num)
    # i: the heapify position; ind: the outer loop's index (build: the heapified root; extract: the heap's end).
    i, ind, size = np.full(num, n - 1), np.full(num, n - 1), np.full(num, n)
    mode = np.full(num, _BUILD)
    orders = [order.copy()]
    # Per step the positions behind the hints i, j, largest and heap_size (read from the order afterwards), then
    # size and phase (the mode); step 0 points every hint at position n - 1.
    hints = [np.array([[n - 1], [n - 1], [n - 1], [n - 1], [n], [_BUILD]]).repeat(num, 1)]
    n_step = np.ones(num, np.int64)
    while (mode != _DONE).any():
        live = mode != _DONE
        n_step += live
        heapify, extract = live & (mode != _EXTRACT), mode == _EXTRACT
        left, a_i = 2 * i + 1, a[rows, i]
        a_left = a[rows, np.minimum(left, n - 1)]
        go_left = (left < size) & (a_left > a_i)
        largest, a_largest = np.where(go_left, left, i), np.where(go_left, a_left, a_i)
        right = left + 1
        largest = np.where((right < size) & (a[rows, np.minimum(right, n - 1)] > a_largest), right, largest)
        x = np.where(heapify, i, 0)
        y = np.where(heapify, largest, np.where(extract, ind, 0))
        a[rows, x], a[rows, y] = a[rows, y], a[rows, x]
        order[rows, x], order[rows, y] = order[rows, y], order[rows, x]
        orders.append(order.copy())
        end = np.where(extract, ind, size)
        hints.append(np.stack([np.where(extract, 0, ind), np.where(extract, ind, i), largest, end - 1, end, mode]))
        # Next: a heapify that swapped goes down a level; one that kept its node returns to the outer loop.
        returned = heapify & (largest == i)
        ind = ind - returned
        size = np.where(extract, ind, size)
        i = np.where(extract, 0, np.where(returned, ind, largest))
        mode = np.where(extract, _SIFT, np.where(returned & ((mode == _SIFT) | (ind < 0)), _EXTRACT, mode))
        ind = np.where(ind < 0, n - 1, ind)  # the build loop ended: the extraction loop starts at the last position
        mode = np.where((mode == _EXTRACT) & (ind < 1), _DONE, mode)
    order_h = trim_lockstep(np.stack(orders, axis=1), None, n_step).reshape(-1, n)
    hint_rows = np.stack(hints, axis=2)  # [6, B, T]
    top, at, largest, last, size_h, phase = (trim_lockstep(h, None, n_step) for h in hint_rows)
    steps = np.arange(order_h.shape[0])
    return sort_trajectories("heapsort", keys, n_step, {
        "pred": pred_from_order(order).reshape(-1),
        "pred_h": pred_from_order(order_h).reshape(-1),
        "parent": heap_parents(order_h, size_h).reshape(-1),
        "i": order_h[steps, top],
        "j": order_h[steps, at],
        # CLRS marks node 0 (not the node at position 0) as `largest` after an extraction swap.
        "largest": np.where(phase == _EXTRACT, 0, order_h[steps, largest]),
        "heap_size": order_h[steps, last],
        "phase": phase.astype(np.int8),
    })


def _quicksort(a: list[float], tape: Tape) -> list[int]:
    n = len(a)
    order = list(range(n))  # the node at each position
    tape.begin(n, order=order)  # CLRS pushes no initial hint for quicksort
    order_log, push = tape.log("order"), tape.push

    def swap(x: int, y: int) -> None:  # keys and nodes; a swap of a position with itself changes and logs nothing
        if x != y:
            a[x], a[y] = a[y], a[x]
            order[x], order[y] = order[y], order[x]
            order_log.extend((tape.step, x, order[x], tape.step, y, order[y]))

    def partition(p: int, r: int) -> int:  # Lomuto, pivot a[r]
        pivot, i = a[r], p - 1
        for j in range(p, r):
            if a[j] <= pivot:
                i += 1
                if i != j:  # swap(i, j), inlined: this loop is quicksort's hot path
                    a[i], a[j] = a[j], a[i]
                    order[i], order[j] = order[j], order[i]
                    order_log.extend((tape.step, i, order[i], tape.step, j, order[j]))
            push(order[p], order[r], order[i + 1], order[j])
        swap(i + 1, r)
        push(order[p], order[r], order[i + 1], order[r])
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
        "pred": pred_from_order(final).reshape(-1),
        "pred_h": pred_from_order(order).reshape(-1),
        "p": tape.rows("p", np.int32),
        "r": tape.rows("r", np.int32),
        "i": tape.rows("i", np.int32),
        "j": tape.rows("j", np.int32),
    })
