"""Depth-first search (Moore, 1959): CLRS's iterative colouring DFS with an explicit stack, a batch in lockstep.

The stack is a linked list (`s_prev` pointers, top `s_last`); roots are tried in index order; from the node u on
top of the stack, the lowest-index white neighbour (A[u, v] != 0) is pushed next; `time` grows by 0.01 per discovery
and per finish. A hint is pushed once per root, per discovery, per tree edge and per finish, so T = 3n exactly.

Every sample does exactly one of those four events between two hints, so the batch runs in lockstep: step t
applies the t-th event of every sample at once (vectorised over the batch), then records one snapshot.
"""

from __future__ import annotations

import numpy as np

from nar.algorithms.inputs import GraphBatch
from nar.algorithms.probing import graph_trajectories, trim_lockstep
from nar.trajectory import TrajectoryBatch

WHITE, GREY, BLACK = 0, 1, 2
ROOT, VISIT, DONE = 0, 1, 2  # what a sample does next: pick a root; discover u or leave it; nothing (finished)


def dfs(graphs: GraphBatch) -> TrajectoryBatch:
    """CLRS's DFS (every node as a root in index order) on every graph of the batch."""
    n = graphs.n_node.astype(np.int64)
    num, width = n.size, int(n.max())
    steps = 3 * width
    offset = graphs.node_offset
    gid = np.repeat(np.arange(num), graphs.n_edge)
    adj = np.zeros((num, width, width), bool)
    adj[gid, graphs.senders - offset[gid], graphs.receivers - offset[gid]] = True
    real = np.arange(width) < n[:, None]

    color = np.zeros((num, width), np.int8)
    d, f = np.zeros((num, width)), np.zeros((num, width))
    pi, s_prev = np.tile(np.arange(width), (num, 1)), np.tile(np.arange(width), (num, 1))
    s, u, v, s_last = (np.zeros(num, np.int64) for _ in range(4))
    time = np.zeros(num)
    phase = np.full(num, ROOT)
    nodes = {"pi_h": (pi, np.int32), "color": (color, np.int8), "d": (d, np.float32), "f": (f, np.float32),
             "s_prev": (s_prev, np.int32)}
    scalars = {"s": (s, np.int32), "u": (u, np.int32), "v": (v, np.int32), "s_last": (s_last, np.int32),
               "time": (time, np.float32)}
    hints = {k: np.empty((num, steps, width), dt) for k, (_, dt) in nodes.items()}
    rows = {k: np.empty((num, steps), dt) for k, (_, dt) in scalars.items()}
    batch = np.arange(num)
    for t in range(steps):
        # Each event is skipped where no sample has it: small batches (large graphs) then pay only for their own.
        root = batch[phase == ROOT]  # a new root: the lowest-index white node (every earlier one is finished)
        if root.size:
            s[root] = u[root] = v[root] = s_last[root] = ((color[root] == WHITE) & real[root]).argmax(1)
        visit = batch[phase == VISIT]
        fresh = d[visit, u[visit]] == 0.0
        new = visit[fresh]  # discover u
        if new.size:
            time[new] += 0.01
            d[new, u[new]], color[new, u[new]] = time[new], GREY
        old = visit[~fresh]  # u was discovered: push its lowest-index white neighbour, or finish u
        white = adj[old, u[old]] & (color[old] == WHITE)
        found = white.any(1)
        tree, fin = old[found], old[~found]
        if tree.size:
            w = white[found].argmax(1)
            v[tree] = w
            pi[tree, w], color[tree, w], s_prev[tree, w] = u[tree], GREY, s_last[tree]
            s_last[tree] = w
        if fin.size:
            v[fin] = n[fin] - 1  # CLRS's neighbour loop ran to its end
            time[fin] += 0.01
            color[fin, u[fin]] = BLACK
            f[fin, u[fin]] = time[fin]
        for k, (value, _) in nodes.items():
            hints[k][:, t] = value
        for k, (value, _) in scalars.items():
            rows[k][:, t] = value
        # After the hint: the new top of the stack is visited next; a finished u is popped, or ends its tree.
        phase[root] = VISIT
        u[tree] = s_last[tree]
        if fin.size:
            last = s_prev[fin, u[fin]] == u[fin]
            pop, ended = fin[~last], fin[last]
            below = s_prev[pop, s_last[pop]]
            s_prev[pop, s_last[pop]] = s_last[pop]
            s_last[pop] = u[pop] = below
            phase[ended] = np.where(((color[ended] == WHITE) & real[ended]).any(1), ROOT, DONE)
    n_step = 3 * n
    return graph_trajectories("dfs", graphs, n_step, {
        "pi": pi[real].astype(np.int32),
        **{k: trim_lockstep(h, n, n_step) for k, h in hints.items()},
        **{k: trim_lockstep(r, None, n_step) for k, r in rows.items()},
    })
