"""The data of a training run: batch `step` (a pure function of the config and `step`), split into data-parallel
groups and padded to shapes that only grow (few compiles), the validation set, and a thread that builds batches
ahead of the device."""

from __future__ import annotations

import queue
import threading

import numpy as np

from nar.config import Config
from nar.data import clrs_train
from nar.data.batch import Batch, GrowingPad, PadSizes, cover, make_batch, pad_sizes_for
from nar.distributed import group_ranges, masked
from nar.evaluate import batches, hint_probe_count
from nar.model.memory import check_fits
from nar.trajectory import TrajectoryBatch


def pad_groups(config: Config) -> int:
    """How many padded shapes a run keeps: one per training size when each batch has one size (a batch of 4-node
    graphs is not padded to the 16-node batches' shape), else one."""
    t = config.train
    return len(t.sizes) if t.size_mix == "per_batch" else 1


def pad_group(config: Config, step: int) -> int:
    """The padded shape (of `pad_groups`) that training batch `step` uses."""
    return step % pad_groups(config)


def train_trajectories(config: Config, step: int) -> TrajectoryBatch:
    """The samples of training batch `step`: CLRS's online distribution, p drawn per graph. Under "per_batch"
    (CLRS's protocol) batch `step` is drawn at size sizes[step % K] from that size's own stream (batch step // K of
    it); under "per_sample" the sizes are cycled over the samples of every batch."""
    t = config.train
    if t.size_mix == "per_sample":
        return clrs_train(config.model.algorithm, t.batch_size, t.seed, t.sizes,
                          start=step * t.batch_size).trajectories
    k, j = step % len(t.sizes), step // len(t.sizes)
    return clrs_train(config.model.algorithm, t.batch_size, size_seed(t.seed, t.sizes[k]), t.sizes[k],
                      start=j * t.batch_size).trajectories


def size_seed(seed: int, size: int) -> int:
    """The seed of one training size's stream: independent streams per size, as dm-clrs seeds one sampler per
    size (so batch j at size 4 and at size 16 do not share their densities and sources)."""
    return int(np.random.SeedSequence([seed, size]).generate_state(1)[0])


def group_needs(config: Config, tb: TrajectoryBatch, ranges: list[range]) -> list[PadSizes]:
    """The bucket of each non-empty group of a step's samples, with room for the largest group's graphs."""
    kind, triplets, slots = config.model.graph_kind, config.model.triplets, max(len(r) for r in ranges)
    return [pad_sizes_for(tb.select(r), kind, slots, triplets) for r in ranges if len(r)]


def initial_pads(config: Config, groups: int = 1) -> list[PadSizes | None]:
    """The padded shapes (one per `pad_group`, of each of `groups` data-parallel groups) a fresh run starts at: the
    cover of the first `train.pad_lookahead` batches' buckets in each pad group. Growing from the first batch alone
    compiles once per growth (4-6 times in a short CLRS run, about 10 s each on a small CPU); looking ahead
    compiles once per pad group and rarely grows again."""
    t = config.train
    if t.pad_lookahead == 0:
        return [None] * pad_groups(config)
    ranges = group_ranges(t.batch_size, groups)
    needs: list[list[PadSizes]] = [[] for _ in range(pad_groups(config))]
    for s in range(min(t.pad_lookahead, t.steps)):
        needs[pad_group(config, s)] += group_needs(config, train_trajectories(config, s), ranges)
    return [cover(n) if n else None for n in needs]


def initial_pad(config: Config, groups: int = 1) -> PadSizes | None:
    """The padded shape a fresh run starts at for batch 0's pad group (see `initial_pads`)."""
    return initial_pads(config, groups)[0]


def train_groups(config: Config, step: int, groups: int, pad: GrowingPad | None = None,
                 which: list[int] | None = None) -> tuple[PadSizes, dict[int, Batch]]:
    """Training batch `step` split into `groups` data-parallel groups of one padded shape (host arrays): that
    shape and {group: Batch} for the groups in `which` (default: all). Every graph gets the same `pos` draws as in
    the undivided batch, so any number of groups trains on the same data. With `pad`, the padded shape only grows
    along the run (few compiles)."""
    t, tb = config.train, train_trajectories(config, step)
    ranges = group_ranges(t.batch_size, groups)
    grown = cover(group_needs(config, tb, ranges))
    shape = grown if pad is None else pad(grown)
    kind = config.model.graph_kind
    check_fits(shape, config.model.hidden, True, kind, triplet_features=config.model.triplet_features,
               hint_probes=hint_probe_count(config.model), processor=config.model.processor)
    out = {}
    for g in range(groups) if which is None else which:
        r = ranges[g] if len(ranges[g]) else range(1)  # no graphs left for this group: a masked copy of the first
        rng = None
        if t.random_pos:  # the undivided batch's stream, from this group's first node on
            rng = np.random.default_rng([t.seed, step])
            rng.random(int(tb.n_node[:r.start].sum()))
        batch = make_batch(tb.select(r), kind, shape, num_graphs=shape.graphs - 1, random_pos=rng,
                           triplets=config.model.triplets)
        out[g] = batch if len(ranges[g]) else masked(batch)
    return shape, out


def train_batch(config: Config, step: int, pad: GrowingPad | None = None) -> Batch:
    """Training batch `step` (host arrays), undivided. With `pad`, the padded shape only grows along the run (few
    compiles)."""
    return train_groups(config, step, 1, pad)[1][0]


def validation_set(config: Config) -> TrajectoryBatch:
    """CLRS's validation: the training distribution at n = val_size, a seed of its own."""
    t = config.train
    return clrs_train(config.model.algorithm, t.val_samples, t.seed + 1, t.val_size).trajectories


def validation_batches(config: Config) -> list[Batch]:
    """The validation set (`validation_set`) as padded batches."""
    t, tb = config.train, validation_set(config)
    rng = np.random.default_rng([t.seed, -1 % 2**32]) if t.random_pos else None
    return batches(tb, config.model, t.batch_size, config.eval.max_edges_per_batch, random_pos=rng)


class Prefetch:
    """Builds `build(s)` for s = start, start+1, ... in a background thread, a few ahead of the device."""

    def __init__(self, build, start: int, stop: int, depth: int = 3):
        self._q: queue.Queue = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, args=(build, start, stop), daemon=True)
        self._thread.start()

    def _work(self, build, start, stop):
        try:
            for s in range(start, stop):
                if not self._put((s, build(s))):
                    return
        except Exception as e:  # surfaced in the training thread
            self._put((None, e))

    def _put(self, item) -> bool:
        """Queue an item unless the consumer has stopped; False when it has."""
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self):
        """The next (s, build(s)); an exception `build` raised is raised here."""
        s, item = self._q.get()
        if s is None:
            raise item
        return s, item

    def close(self):
        """Stop building and wait for the thread."""
        self._stop.set()
        self._thread.join()
