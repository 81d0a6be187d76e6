"""`nar bench fsa-distance`: GraphFSA on the paper's Distance task (Grötschla et al. 2024), to check faithfulness.

Task: a root is marked; every node connected to it must end in the state naming the parity of its hop distance
to the root. Four states, k = 1 as in the paper: 0 = even, 1 = odd (final, pushed to be absorbing), 2 = not yet
reached, 3 = root (the start states). A true automaton exists: the root turns even; an unreached node turns to the
opposite parity of the first finished neighbour it sees (on the step a node first sees a finished neighbour, all
its finished neighbours are one hop closer, so they share one parity). `distance_automaton` writes that table.

Training is Diff-FSA's (soft states, softmax table, squared error on the final states plus the absorbing penalty,
Adam with betas (0.5, 0.5)), batched over graphs instead of the paper's batch of 1, on trees and sparse ER graphs
of n = 4..10 run for n + 1 steps. Evaluation is hard, for n + 1 steps (enough for any eccentricity), at larger n.
The result JSON holds node accuracy per size and family, and the learned automaton as a readable table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from nar.bench import git_commit
from nar.data.batch import PadSizes
from nar.data.graphs import sample_graph
from nar.model.memory import check_fits
from nar.processors.base import Graph
from nar.processors.graphfsa import GraphFSA

EVEN, ODD, UNREACHED, ROOT = 0, 1, 2, 3
STATE_NAMES = ("even", "odd", "unreached", "root")
FINALS = (EVEN, ODD)


def hop_distances(n: int, senders, receivers, root: int) -> np.ndarray:
    """BFS hop distance from `root` along edges sender -> receiver (-1: not reachable)."""
    adj = [[] for _ in range(n)]
    for s, r in zip(senders.tolist(), receivers.tolist()):
        adj[s].append(r)
    dist = np.full(n, -1)
    dist[root] = 0
    queue = deque([root])
    while queue:
        u = queue.popleft()
        for v in adj[u]:
            if dist[v] < 0:
                dist[v] = dist[u] + 1
                queue.append(v)
    return dist


class DistanceBatch(NamedTuple):
    """Graphs concatenated and padded to a fixed shape: start states, parity targets and a mask of the nodes
    connected to the root (the others have no distance and are not scored)."""

    graph: Graph
    start_NxS: Any
    target_N: Any
    mask_N: Any


def distance_batch(rng: np.random.Generator, sizes, family: str, pad_nodes: int, pad_edges: int) -> DistanceBatch:
    """One batch: a graph of each size in `sizes`, a uniform root each; padded to the given node/edge counts
    (padding nodes hold no state, padding edges are self-loops, which no node counts)."""
    snd, rcv, node_graph, start, target, mask = [], [], [], [], [], []
    offset = 0
    options = {"degree": 3.0} if family == "sparse_er" else {}
    for g, n in enumerate(sizes):
        e = sample_graph(family, rng, int(n), **options)
        root = int(rng.integers(n))
        dist = hop_distances(e.n, e.senders, e.receivers, root)
        snd.append(e.senders + offset)
        rcv.append(e.receivers + offset)
        node_graph.append(np.full(n, g))
        start.append(np.where(np.arange(n) == root, ROOT, UNREACHED))
        target.append(np.maximum(dist, 0) % 2)
        mask.append(dist >= 0)
        offset += n
    num_edges = sum(map(len, snd))
    if offset > pad_nodes or num_edges > pad_edges:
        raise ValueError(f"batch of {offset} nodes and {num_edges} edges exceeds its padding "
                         f"({pad_nodes} nodes, {pad_edges} edges)")
    pad = pad_nodes - 1  # padding edges are self-loops on the last node, a padding node or a real one
    s = np.concatenate(snd + [np.full(pad_edges - num_edges, pad)]).astype(np.int32)
    r = np.concatenate(rcv + [np.full(pad_edges - num_edges, pad)]).astype(np.int32)
    G = len(sizes) + 1
    ng = np.concatenate(node_graph + [np.full(pad_nodes - offset, G - 1)]).astype(np.int32)
    real = np.arange(pad_nodes) < offset
    start_N = np.concatenate(start + [np.zeros(pad_nodes - offset, int)])
    graph = Graph(jnp.asarray(s), jnp.asarray(r), jnp.asarray(ng), jnp.asarray(ng[r]),
                  jnp.asarray(np.bincount(ng, minlength=G).astype(np.int32)))
    start_NxS = jax.nn.one_hot(start_N, len(STATE_NAMES)) * jnp.asarray(real)[:, None]
    return DistanceBatch(graph, start_NxS, jnp.asarray(np.concatenate(target + [np.zeros(pad_nodes - offset, int)])),
                         jnp.asarray(np.concatenate(mask + [np.zeros(pad_nodes - offset, bool)])))


def run_automaton(fsa: GraphFSA, batch: DistanceBatch, steps: int, hard: bool):
    """[N, S] states after `steps` synchronous steps."""
    return jax.lax.fori_loop(0, steps, lambda _, s: fsa(s, batch.graph, hard=hard), batch.start_NxS)


def distance_loss(fsa: GraphFSA, batch: DistanceBatch, steps: int, absorbing_weight: float = 1.0):
    """Diff-FSA's loss: squared error of the final state distribution against the one-hot parity state (mean over
    scored nodes) plus the absorbing penalty of the final states (mean over characters and final states)."""
    final = run_automaton(fsa, batch, steps, hard=False)
    sq = jnp.sum((final - jax.nn.one_hot(batch.target_N, fsa.states)) ** 2, -1)
    fit = jnp.sum(sq * batch.mask_N) / jnp.maximum(batch.mask_N.sum(), 1)
    return fit + absorbing_weight * fsa.absorbing_penalty(FINALS) / (fsa.chars * len(FINALS))


def accuracy(fsa: GraphFSA, batch: DistanceBatch, steps: int) -> tuple[int, int]:
    """(correct, scored) nodes of the hard automaton after `steps` steps: the final state is the parity state."""
    pred = jnp.argmax(run_automaton(fsa, batch, steps, hard=True), -1)
    return int(jnp.sum((pred == batch.target_N) & batch.mask_N)), int(batch.mask_N.sum())


def distance_automaton(bound: int = 1) -> np.ndarray:
    """Table logits [(k + 1)^4, 4, 4] of the true automaton (module docstring): used as a reference."""
    S = len(STATE_NAMES)
    chars = (bound + 1) ** S
    nxt = np.tile(np.arange(S), (chars, 1))  # default: keep the state
    for x in range(chars):
        counts = [(x // (bound + 1) ** c) % (bound + 1) for c in range(S)]
        nxt[x, ROOT] = EVEN
        if counts[EVEN] and not counts[ODD]:
            nxt[x, UNREACHED] = ODD
        elif counts[ODD] and not counts[EVEN]:
            nxt[x, UNREACHED] = EVEN
    return np.asarray(jax.nn.one_hot(nxt, S)) * 10.0


def _pad_for(sizes, family: str) -> tuple[int, int]:
    nodes = int(sum(sizes)) + 1
    per_node = {"tree": 2, "sparse_er": 12, "grid": 4}.get(family, 12)  # sparse_er degree 3: generous bound
    return nodes, per_node * nodes


def train_distance(seed: int = 0, steps: int = 300, batch_size: int = 32, lr: float = 0.1,
                   families=("tree", "sparse_er"), train_sizes=(4, 10), log=None) -> tuple[GraphFSA, list]:
    """Train a 4-state, k = 1 GraphFSA on the Distance task; (automaton, loss curve every 10 steps)."""
    fsa = GraphFSA(len(STATE_NAMES), 1, rngs=nnx.Rngs(seed))
    graphdef, params = nnx.split(fsa)
    tx = optax.adam(lr, b1=0.5, b2=0.5)  # the released code's betas
    opt = tx.init(params)
    rng = np.random.default_rng(seed)
    lo, hi = train_sizes
    pad_nodes, pad_edges = _pad_for([hi] * batch_size, "sparse_er")

    @jax.jit
    def step(params, opt, batch):
        def loss_fn(p):
            return distance_loss(nnx.merge(graphdef, p), batch, hi + 1)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt, loss

    curve = []
    for s in range(steps):
        family = families[s % len(families)]
        b = distance_batch(rng, rng.integers(lo, hi + 1, batch_size), family, pad_nodes, pad_edges)
        params, opt, loss = step(params, opt, b)
        if (s + 1) % 10 == 0:
            curve.append({"step": s + 1, "loss": float(loss)})
            if log:
                log(f"step {s + 1}: loss {float(loss):.4f}")
    return nnx.merge(graphdef, params), curve


def evaluate_distance(fsa: GraphFSA, sizes, families, graphs: int, seed: int) -> dict:
    """{family: {n: node accuracy}} of the hard automaton on fresh graphs (n + 1 steps)."""
    out = {}
    for family in families:
        rng = np.random.default_rng([seed, 7])
        out[family] = {}
        for n in sizes:
            b = distance_batch(rng, [n] * graphs, family, *_pad_for([n] * graphs, family))
            correct, total = accuracy(fsa, b, n + 1)
            out[family][n] = correct / total
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="nar bench fsa-distance", description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    p.add_argument("--batch-size", type=int, default=32, help="graphs per batch (default 32)")
    p.add_argument("--lr", type=float, default=0.1, help="Adam's learning rate (default 0.1)")
    p.add_argument("--sizes", default="10,20,50,100,1000", help="comma-separated test sizes (default %(default)s)")
    p.add_argument("--graphs", type=int, default=100, help="test graphs per size and family")
    p.add_argument("--out", help="JSON result file")
    args = p.parse_args(argv)
    families = ("tree", "sparse_er")
    try:
        sizes = [int(x) for x in args.sizes.split(",")]
        for n in sizes:  # GraphFSA's memory model, before training or drawing a graph
            nodes, edges = _pad_for([n] * args.graphs, "sparse_er")  # the family with the most edges
            check_fits(PadSizes(nodes, edges, n + 2, args.graphs + 1), 1, False, "input", processor="graphfsa")
    except (ValueError, MemoryError) as e:
        print(f"nar bench fsa-distance: error: {e}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    fsa, curve = train_distance(args.seed, args.steps, args.batch_size, args.lr, families,
                                log=lambda m: print(m, file=sys.stderr))
    t1 = time.perf_counter()
    acc = evaluate_distance(fsa, sizes, families, args.graphs, args.seed)
    reference = GraphFSA(len(STATE_NAMES), 1, rngs=nnx.Rngs(0))
    reference.table[...] = jnp.asarray(distance_automaton())
    ref_acc = evaluate_distance(reference, sizes, families, args.graphs, args.seed)
    b = distance_batch(np.random.default_rng(1), [20] * 16, "sparse_er", *_pad_for([20] * 16, "sparse_er"))
    table = fsa.describe(STATE_NAMES, fsa.usage_over(b.start_NxS, b.graph, jnp.ones((21, b.graph.num_nodes))))
    result = {"task": "graphfsa distance parity (Grötschla et al. 2024)", "seed": args.seed, "steps": args.steps,
              "batch_size": args.batch_size, "lr": args.lr, "train_sizes": [4, 10], "families": families,
              "accuracy": acc, "hand_written_automaton_accuracy": ref_acc, "train_seconds": t1 - t0,
              "loss_curve": curve, "learned_table": table.splitlines(), "commit": git_commit(),
              "command": "nar bench fsa-distance " + " ".join(argv if argv is not None else sys.argv[1:])}
    text = json.dumps(result, indent=1)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(table)
    for family in families:
        print(family, " ".join(f"n={n}: {a:.4f}" for n, a in acc[family].items()))
    return 0
