"""Breadth-first search (Moore, 1959) in CLRS's synchronous form, run on a whole batch of graphs at once.

Each round every node reached before the round marks its out-neighbours (edges with A > 0) reached; a node not yet
given a parent takes the lowest-index such neighbour (CLRS scans i, then j, in index order). A hint is pushed at
the start of each round; a graph stops once a round reaches nothing new, so T = ecc(s) + 1.
"""

from __future__ import annotations

import numpy as np

from nar.algorithms.inputs import GraphBatch
from nar.algorithms.probing import flatten_node_hints, graph_trajectories
from nar.trajectory import TrajectoryBatch


def bfs(graphs: GraphBatch, sources: np.ndarray) -> TrajectoryBatch:
    """BFS from `sources` (one local index per graph) on every graph of the batch."""
    num_nodes, num_graphs = int(graphs.n_node.sum()), graphs.n_node.size
    gid, offset = graphs.graph_of_node, graphs.node_offset
    is_edge = graphs.weights > 0
    snd, rcv = graphs.senders[is_edge], graphs.receivers[is_edge]

    src = offset + sources
    reach = np.zeros(num_nodes, bool)
    reach[src] = True
    pi = np.arange(num_nodes)
    unassigned = np.ones(num_nodes, bool)  # pi[j] == j and j != s
    unassigned[src] = False
    running = np.ones(num_graphs, bool)
    n_step = np.zeros(num_graphs, np.int64)
    reach_h, pi_h = [], []
    while running.any():
        prev_reach = reach.copy()
        reach_h.append(prev_reach)
        pi_h.append(pi.copy())
        n_step += running
        live = prev_reach[snd] & running[gid[snd]]
        reach[rcv[live]] = True
        parent = np.full(num_nodes, num_nodes)
        np.minimum.at(parent, rcv[live], snd[live])
        adopt = unassigned & (parent < num_nodes)
        pi[adopt] = parent[adopt]
        unassigned &= ~adopt
        grew = np.zeros(num_graphs, bool)
        grew[gid[reach != prev_reach]] = True
        running &= grew

    local = offset[gid]
    return graph_trajectories("bfs", graphs, n_step, {
        "s": np.asarray(sources, np.int32),
        "pi": (pi - local).astype(np.int32),
        "reach_h": flatten_node_hints(np.stack(reach_h), graphs.n_node, n_step).astype(np.uint8),
        "pi_h": flatten_node_hints(np.stack(pi_h) - local, graphs.n_node, n_step).astype(np.int32),
    })
