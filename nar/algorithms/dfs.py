"""Depth-first search (Moore, 1959): CLRS's iterative colouring DFS with an explicit stack, sample by sample.

The stack is a linked list (`s_prev` pointers, top `s_last`); roots are tried in index order; from the node u on
top of the stack, the lowest-index white neighbour (A[u, v] != 0) is pushed next; `time` grows by 0.01 per discovery
and per finish. A hint is pushed once per root, per discovery, per tree edge and per finish, so T = 3n exactly.
"""

from __future__ import annotations

import numpy as np

from nar.algorithms.inputs import GraphBatch
from nar.algorithms.probing import Tape, graph_trajectories
from nar.trajectory import TrajectoryBatch

WHITE, GREY, BLACK = 0, 1, 2


def _dfs(n: int, nbrs: list[list[int]], tape: Tape) -> list[int]:
    color, d, pi, s_prev = [WHITE] * n, [0.0] * n, list(range(n)), list(range(n))
    tape.begin(n, pi_h=pi, color=color, d=d, f=d, s_prev=s_prev)
    # Whites only ever turn grey, so the lowest white neighbour of u never lies before the last one found.
    scan = [0] * n
    time = 0.0
    push = tape.push
    d_log, color_log, f_log, pi_log, s_prev_log = (tape.log(k) for k in ("d", "color", "f", "pi_h", "s_prev"))
    for s in range(n):
        if color[s] != WHITE:
            continue
        s_last = u = v = s
        push(s, u, v, s_last, time)
        while True:
            if color[u] == WHITE or d[u] == 0.0:  # discover u
                time += 0.01
                d[u], color[u] = time, GREY
                d_log.extend((tape.step, u, time))
                color_log.extend((tape.step, u, GREY))
                push(s, u, v, s_last, time)
            row, k = nbrs[u], scan[u]
            end = len(row)
            while k < end and color[row[k]] != WHITE:
                k += 1
            scan[u] = k
            if k < end:  # tree edge u -> v: v goes on the stack
                v = row[k]
                pi[v], color[v], s_prev[v], s_last = u, GREY, s_last, v
                pi_log.extend((tape.step, v, u))
                color_log.extend((tape.step, v, GREY))
                s_prev_log.extend((tape.step, v, s_prev[v]))
                push(s, u, v, s_last, time)
            else:
                v = n - 1  # CLRS's neighbour loop ran to its end
            if s_last == u:  # finish u and pop it
                time += 0.01
                color[u] = BLACK
                color_log.extend((tape.step, u, BLACK))
                f_log.extend((tape.step, u, time))
                push(s, u, v, s_last, time)
                if s_prev[u] == u:
                    break
                below = s_prev[s_last]
                s_prev[s_last] = s_last
                s_prev_log.extend((tape.step, s_last, s_last))
                s_last = below
            u = s_last
    tape.end()
    return pi


def dfs(graphs: GraphBatch) -> TrajectoryBatch:
    """CLRS's DFS (every node as a root in index order) on every graph of the batch."""
    tape = Tape("s", "u", "v", "s_last", "time")
    pis = []
    bounds = np.concatenate([[0], np.cumsum(graphs.n_edge)])
    for g, (n, offset) in enumerate(zip(graphs.n_node.tolist(), graphs.node_offset.tolist())):
        edges = slice(bounds[g], bounds[g + 1])
        # Out-neighbours of each node in index order (edges arrive sorted by (sender, receiver)).
        ptr = np.searchsorted(graphs.senders[edges], np.arange(offset, offset + n + 1)).tolist()
        rcv = (graphs.receivers[edges] - offset).tolist()
        nbrs = [rcv[a:b] for a, b in zip(ptr[:-1], ptr[1:])]
        pis.append(_dfs(n, nbrs, tape))
    return graph_trajectories("dfs", graphs, tape.n_step, {
        "pi": np.concatenate(pis).astype(np.int32),
        "pi_h": tape.node_array("pi_h", np.int32),
        "color": tape.node_array("color", np.int8),
        "d": tape.node_array("d", np.float32),
        "f": tape.node_array("f", np.float32),
        "s_prev": tape.node_array("s_prev", np.int32),
        "s": tape.rows("s", np.int32),
        "u": tape.rows("u", np.int32),
        "v": tape.rows("v", np.int32),
        "s_last": tape.rows("s_last", np.int32),
        "time": tape.rows("time", np.float32),
    })
