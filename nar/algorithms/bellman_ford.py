"""Bellman-Ford single-source shortest paths (Bellman, 1958) in CLRS's synchronous form, batched.

Each round relaxes every edge (A != 0) out of a node reached before the round, using the distances of the previous
round. CLRS scans u then v in index order and replaces d[v] only on a strict improvement, so among equal candidates
the lowest-index u wins; a node reached for the first time takes its best candidate. A graph stops when a round
leaves d unchanged. Without a reachable negative cycle that happens within n rounds; with one, the textbook loop
would never end, so it is reported as an error instead.
"""

from __future__ import annotations

import numpy as np

from nar.algorithms.inputs import FLOAT32_MAX, GraphBatch
from nar.algorithms.probing import flatten_node_hints, graph_trajectories
from nar.trajectory import TrajectoryBatch


def bellman_ford(graphs: GraphBatch, sources: np.ndarray) -> TrajectoryBatch:
    """Bellman-Ford from `sources` (one local index per graph) on every graph of the batch."""
    num_nodes, num_graphs = int(graphs.n_node.sum()), graphs.n_node.size
    gid, offset = graphs.graph_of_node, graphs.node_offset
    snd, rcv, w = graphs.senders, graphs.receivers, graphs.weights

    src = offset + sources
    if (w < 0).any():
        _reject_negative_cycles(graphs, src, sources)
    d = np.zeros(num_nodes)
    msk = np.zeros(num_nodes, bool)
    msk[src] = True
    pi = np.arange(num_nodes)
    running = np.ones(num_graphs, bool)
    n_step = np.zeros(num_graphs, np.int64)
    pi_h, d_h, msk_h = [], [], []
    while running.any():
        # Unreachable after the check above, up to floating-point rounding: a guard against a loop without end.
        stuck = running & (n_step >= graphs.n_node)
        if stuck.any():
            g = int(np.flatnonzero(stuck)[0])
            raise ValueError(f"bellman_ford: a negative-weight cycle is reachable from source {int(sources[g])} "
                             f"(graph {g} of the batch): distances would decrease forever")
        prev_d, prev_msk = d.copy(), msk.copy()
        pi_h.append(pi.copy())
        d_h.append(prev_d)
        msk_h.append(prev_msk)
        n_step += running
        live = prev_msk[snd] & running[gid[snd]]
        u, v = snd[live], rcv[live]
        cand = prev_d[u] + w[live]
        best = np.full(num_nodes, np.inf)
        np.minimum.at(best, v, cand)
        tie = cand == best[v]
        first_u = np.full(num_nodes, num_nodes)
        np.minimum.at(first_u, v[tie], u[tie])
        relaxed = first_u < num_nodes
        better = relaxed & (~prev_msk | (best < prev_d))
        d[better] = best[better]
        pi[better] = first_u[better]
        msk |= relaxed
        moved = np.zeros(num_graphs, bool)
        moved[gid[d != prev_d]] = True
        running &= moved

    d_h = np.stack(d_h)  # every round's distances (the last round leaves them final)
    far = np.abs(d_h) > FLOAT32_MAX  # the hints hold float32: such a distance would silently become inf
    if far.any():
        g = int(gid[np.nonzero(far)[1][0]])
        raise ValueError(f"bellman_ford: a distance from source {int(sources[g])} (graph {g} of the batch) reaches "
                         f"{d_h[far][0]:g}, beyond float32's range ({FLOAT32_MAX:.4g}): scale the weights of A down")
    local = offset[gid]
    return graph_trajectories("bellman_ford", graphs, n_step, {
        "s": np.asarray(sources, np.int32),
        "pi": (pi - local).astype(np.int32),
        "pi_h": flatten_node_hints(np.stack(pi_h) - local, graphs.n_node, n_step).astype(np.int32),
        "d": flatten_node_hints(d_h, graphs.n_node, n_step).astype(np.float32),
        "msk": flatten_node_hints(np.stack(msk_h), graphs.n_node, n_step).astype(np.uint8),
    })


def _reject_negative_cycles(graphs: GraphBatch, src: np.ndarray, sources: np.ndarray) -> None:
    """Raise if a negative-weight cycle is reachable from a graph's source.

    CLRS's loop stops as soon as a round leaves d unchanged, which can happen before it meets such a cycle (a
    node first reached at distance exactly 0); shortest paths are undefined there all the same, so the input is
    refused up front: textbook Bellman-Ford (n - 1 rounds of relaxation), then any further improvement.
    """
    snd, rcv, w = graphs.senders, graphs.receivers, graphs.weights
    dist = np.full(int(graphs.n_node.sum()), np.inf)
    dist[src] = 0.0
    for _ in range(int(graphs.n_node.max()) - 1):
        np.minimum.at(dist, rcv, dist[snd] + w)
    improves = dist[snd] + w < dist[rcv]
    if improves.any():
        g = int(graphs.graph_of_node[snd[improves][0]])
        raise ValueError(f"bellman_ford: a negative-weight cycle is reachable from source {int(sources[g])} "
                         f"(graph {g} of the batch): shortest paths are undefined")
