"""Hint-ReLIC's data (after Bevilacqua et al., ICML 2023): augmented inputs whose next hint step provably did not
change, certified by running nar's own executor on them.

For every sample of a training batch, a random subset of nodes gets new inputs: sorts draw new keys for them
(uniform over the sample's own key range); graph algorithms shuffle the adjacency entries (edges and their weights)
of every pair that touches the subset among themselves, mirrored where the graph is symmetric, so the density and the
weights' distribution stay the sample's own. The source, n and the node numbering are kept. The executor then runs
on the new inputs and the two trajectories are compared probe by probe: processor step t of a sample is certified
when hints 0 .. t+1 of both runs are equal exactly. A sample whose inputs came out unchanged certifies nothing. The
rule is one for every algorithm (the executor is the oracle of what the next step depends on); the paper's rules are
per algorithm and not public (docs/causal_reg.md).
"""

from __future__ import annotations

import numpy as np

from nar.algorithms import get_algorithm, run_batch
from nar.algorithms.inputs import GraphBatch
from nar.config import Config
from nar.data.batch import Batch, PadSizes, cover, make_batch, pad_sizes_for
from nar.data.padding import GrowingPad
from nar.evaluate import hint_probe_count
from nar.model.memory import check_fits
from nar.model.relic import CausalPair
from nar.processors import get_processor
from nar.specs import SPECS, Location, Stage, Type
from nar.training.data import train_trajectories
from nar.trajectory import TrajectoryBatch


def check_causal(config: Config, groups: int) -> None:
    """ValueError unless the run can use `train.causal_reg`: an encode-process-decode model on one data group."""
    if config.train.causal_reg == "none":
        return
    entry = get_processor(config.model.processor)
    if entry.automaton or entry.discrete:
        raise ValueError(f"train.causal_reg={config.train.causal_reg!r} needs an encode-process-decode processor "
                         f"(its per-step node states); {config.model.processor!r} runs a model of its own")
    if groups != 1:
        raise ValueError(f"train.causal_reg={config.train.causal_reg!r} trains on one device only; this run has "
                         f"{groups} data-parallel groups (set JAX to one device, or train.causal_reg='none')")


def augment(tb: TrajectoryBatch, rng: np.random.Generator, fraction: float = 0.25):
    """(augmented batch, certified [S], changed [S]): every sample's inputs changed on a random subset of
    1 .. max(1, fraction * n) nodes, the executor rerun, and the number of certified processor steps per sample
    (0 where the inputs did not change)."""
    algo = get_algorithm(tb.algorithm)
    n_node = tb.n_node.astype(np.int64)
    subsets = [rng.permutation(n)[:rng.integers(1, max(1, int(fraction * n)) + 1)] for n in n_node.tolist()]
    if algo.kind == "sort":
        aug, changed = _augment_sort(tb, subsets, rng)
    else:
        aug, changed = _augment_graph(tb, subsets, rng, algo.needs_source)
    agree = agreeing_steps(tb, aug)
    return aug, np.where(changed, np.maximum(agree - 1, 0), 0), changed


def _augment_sort(tb: TrajectoryBatch, subsets, rng):
    keys = tb.probes["key"].astype(np.float64)
    off = tb.offsets("key")
    new = keys.copy()
    for i, nodes in enumerate(subsets):
        k = keys[off[i]:off[i + 1]]
        new[off[i] + nodes] = rng.uniform(k.min(), k.max() if k.max() > k.min() else k.min() + 1.0, len(nodes))
    parts = []
    for n in np.unique(tb.n_node):  # the sorts run one size at a time; the results go back in sample order
        idx = np.flatnonzero(tb.n_node == n)
        rows = np.stack([new[off[i]:off[i + 1]] for i in idx])
        parts.append((idx, run_batch(tb.algorithm, keys=rows)))
    changed = np.array([(new[off[i]:off[i + 1]] != keys[off[i]:off[i + 1]]).any() for i in range(len(tb))])
    return _in_order(parts, len(tb)), changed


def _augment_graph(tb: TrajectoryBatch, subsets, rng, needs_source: bool):
    """Shuffle the entries of A on the pairs touching each sample's subset (see the module docstring)."""
    a_off, e_off = tb.offsets("A"), np.concatenate([[0], np.cumsum(tb.n_edge)])
    graphs, sources, changed = [], [], []
    for i, nodes in enumerate(subsets):
        n = int(tb.n_node[i])
        A = np.zeros((n, n))
        e = slice(e_off[i], e_off[i + 1])
        A[tb.senders[e], tb.receivers[e]] = tb.probes["A"][a_off[i]:a_off[i + 1]]
        touched = np.zeros((n, n), bool)
        touched[nodes, :] = touched[:, nodes] = True
        new = A.copy()
        symmetric = np.array_equal(A, A.T)
        for diagonal in (True, False):  # self-loops among themselves, other pairs among themselves
            mask = touched & (np.eye(n, dtype=bool) if diagonal else ~np.eye(n, dtype=bool))
            if symmetric:
                mask &= np.triu(np.ones((n, n), bool))
            s, r = np.nonzero(mask)
            new[s, r] = rng.permutation(A[s, r])
            if symmetric:
                new[r, s] = new[s, r]
        s, r = np.nonzero(new)
        graphs.append((n, s, r, new[s, r]))
        changed.append(not np.array_equal(new, A))
        if needs_source:
            sources.append(int(tb.probes["s"][i]))
    aug = run_batch(tb.algorithm, graphs=GraphBatch.from_edges(graphs), sources=sources if needs_source else None)
    return aug, np.array(changed)


def _in_order(parts: list[tuple[np.ndarray, TrajectoryBatch]], num: int) -> TrajectoryBatch:
    """One batch from (sample indices, batch) parts, samples back in index order."""
    where = np.empty(num, np.int64)
    start = 0
    for idx, b in parts:
        where[idx] = np.arange(start, start + len(idx))
        start += len(idx)
    return TrajectoryBatch.concatenate([b for _, b in parts]).select(where)


def agreeing_steps(a: TrajectoryBatch, b: TrajectoryBatch) -> np.ndarray:
    """[S] per sample pair: how many leading hint steps are equal in every hint probe (same n required)."""
    if not np.array_equal(a.n_node, b.n_node):
        raise ValueError("agreeing_steps compares samples of equal sizes only")
    agree = np.minimum(a.n_step, b.n_step).astype(np.int64)
    for name, (stage, location, type_) in SPECS[a.algorithm].items():
        if stage != Stage.HINT:
            continue
        oa, ob = a.offsets(name), b.offsets(name)
        for i in range(len(a)):
            m, n = int(agree[i]), int(a.n_node[i])
            if m == 0:
                continue
            if location == Location.EDGE:  # dense, since the two edge lists differ
                x, y = a.trajectory(i).hints[name][:m], b.trajectory(i).hints[name][:m]
            else:
                width = n if location == Location.NODE and type_ != Type.MASK_ONE else 1
                x = a.probes[name][oa[i]:oa[i] + m * width].reshape(m, width)
                y = b.probes[name][ob[i]:ob[i] + m * width].reshape(m, width)
            same = (x == y).reshape(m, -1).all(axis=1)
            agree[i] = m if same.all() else int(np.argmin(same))
    return agree


def node_table(n_node: np.ndarray, slots: int, width: int) -> np.ndarray:
    """[slots, width] global id of each sample slot's a-th node (samples laid out back to back), -1 beyond."""
    table = np.full((slots, width), -1, np.int32)
    off = np.concatenate([[0], np.cumsum(n_node)[:-1]])
    for g, (o, n) in enumerate(zip(off.tolist(), n_node.tolist())):
        table[g, :n] = np.arange(o, o + n)
    return table


def causal_groups(config: Config, step: int, groups: int, pad: GrowingPad | None = None,
                  which: list[int] | None = None) -> tuple[PadSizes, dict[int, CausalPair]]:
    """`nar.training.data.train_groups` for one group, with the augmented twin: training batch `step` as a
    `CausalPair`, both halves padded to one shape that covers both. A pure function of (config, step), so a
    resumed run replays the same pairs. `which` is taken for train_groups' signature: there is one group."""
    check_causal(config, groups)
    t, kind, triplets = config.train, config.model.graph_kind, config.model.triplets
    tb = train_trajectories(config, step)
    aug, certified, _ = augment(tb, np.random.default_rng([t.seed, step, 0x5E1C]))
    slots = len(tb)
    need = cover([pad_sizes_for(x, kind, slots, triplets) for x in (tb, aug)])
    shape = need if pad is None else pad(need)
    check_fits(shape, config.model.hidden, True, kind, triplet_features=config.model.triplet_features,
               hint_probes=hint_probe_count(config.model), processor=config.model.processor)

    def lay_out(x: TrajectoryBatch) -> Batch:  # the same `pos` draws for both halves (train_groups' stream)
        rng = np.random.default_rng([t.seed, step]) if t.random_pos else None
        return make_batch(x, kind, shape, num_graphs=shape.graphs - 1, random_pos=rng, triplets=triplets)

    nodes = node_table(tb.n_node, shape.graphs - 1, max(t.sizes))
    cert = np.zeros(shape.graphs - 1, np.int32)
    cert[:slots] = certified
    return shape, {0: CausalPair(lay_out(tb), lay_out(aug), nodes, cert)}
