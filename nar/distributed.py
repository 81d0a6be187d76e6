"""Data parallelism over the devices of one or several processes, on JAX's own engine (`jax.sharding`,
`jax.distributed`).

Layout: a step's graphs are split into D contiguous groups (D = the devices of the mesh, all processes together),
one padded `Batch` per group with a common `PadSizes`, stacked along a new leading axis sharded over the mesh's
'data' axis (`NamedSharding(mesh, P('data'))`); parameters are replicated. The jitted step runs the model under
`jax.vmap` over that axis and pools sums and counts over all groups (`nar.model.losses.training_loss`), which XLA
turns into an all-reduce: the loss is the mean over the global batch, as on one device. A group left without graphs
(a batch smaller than D) is a `masked` copy of another group that weighs nothing. Each process lays out and
transfers only the groups of its own devices.

On CPU the device count is simulated (`set_cpu_devices`, before JAX starts its backend).
"""

from __future__ import annotations

import os
import re

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA = "data"
_COUNT_FLAG = "--xla_force_host_platform_device_count"


def _backend_started() -> bool:
    from jax._src import xla_bridge  # no public probe: asking for devices would start the backend

    return xla_bridge.backends_are_initialized()


def set_cpu_devices(n: int) -> None:
    """Simulate `n` CPU devices (XLA_FLAGS' --xla_force_host_platform_device_count). Must run before JAX starts
    its backend (before the first computation or device query); afterwards only the same count is accepted."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"the number of CPU devices must be a positive integer, got {n!r}")
    if _backend_started():
        have = len(jax.devices("cpu"))
        if have != n:
            raise ValueError(f"cannot simulate {n} CPU devices: JAX has already started with {have}; set the count "
                             f"before any JAX computation (or set XLA_FLAGS={_COUNT_FLAG}={n} in the environment)")
        return
    flags = re.sub(rf"{_COUNT_FLAG}=\S*", "", os.environ.get("XLA_FLAGS", "")).split()
    os.environ["XLA_FLAGS"] = " ".join(flags + [f"{_COUNT_FLAG}={n}"])


def initialize(num_processes: int | None = None, process_id: int | None = None,
               coordinator: str | None = None) -> bool:
    """Join a multi-process run (`jax.distributed.initialize`) when one is asked for: by the arguments, by
    JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID, or (with `num_processes` unset and no
    coordinator) not at all. On clusters JAX detects itself (SLURM, Open MPI, TPU pods) pass nothing but
    `coordinator=\"auto\"`. Must run before JAX starts its backend. True when this is a multi-process run."""
    env = os.environ
    num_processes = num_processes if num_processes is not None else _env_int("JAX_NUM_PROCESSES")
    process_id = process_id if process_id is not None else _env_int("JAX_PROCESS_ID")
    coordinator = coordinator or env.get("JAX_COORDINATOR_ADDRESS")
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"the number of processes must be positive, got {num_processes}")
    if process_id is not None and (process_id < 0 or (num_processes is not None and process_id >= num_processes)):
        raise ValueError(f"process id must be in 0..{(num_processes or 1) - 1} (one per process), got {process_id}")
    if coordinator is None and (num_processes or 1) == 1:
        return False
    auto = coordinator == "auto"
    if not auto:
        if coordinator is None or not re.fullmatch(r"\[?[\w.:-]+\]?:\d{1,5}", coordinator):
            raise ValueError(f"the coordinator must be HOST:PORT (process 0's address), got {coordinator!r}")
        if num_processes is None or process_id is None:
            raise ValueError(f"a coordinator ({coordinator}) needs the number of processes and this process's id")
    if _backend_started():
        raise ValueError("jax.distributed must be initialised before JAX starts its backend (before the first "
                         "computation or device query)")
    jax.distributed.initialize(None if auto else coordinator, num_processes, process_id)
    return jax.process_count() > 1


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {value!r}") from None


def data_mesh(devices=None) -> Mesh:
    """A one-axis mesh ('data') over `devices` (default: every device of every process)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (DATA,))  # automatic axes: XLA propagates the sharding through vmap


def group_ranges(num: int, groups: int) -> list[range]:
    """Indices 0..num-1 in `groups` contiguous ranges of near-equal size (the first num % groups one longer);
    ranges are empty when num < groups."""
    if groups < 1:
        raise ValueError(f"the number of groups must be positive, got {groups}")
    size, extra = divmod(num, groups)
    bounds = np.cumsum([0] + [size + (g < extra) for g in range(groups)])
    return [range(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def _data_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(DATA))


def local_groups(mesh: Mesh) -> list[int]:
    """The groups (positions along the 'data' axis) held by this process's devices."""
    index = _data_sharding(mesh).addressable_devices_indices_map((mesh.size,))
    return sorted(idx[0].start or 0 for idx in index.values())


def masked(batch):
    """`batch` with every sample's length set to 0: a padding group that weighs nothing in losses, statistics
    and metrics (all are weighted by `lengths > 0`), and holds only finite values."""
    return batch._replace(lengths=np.zeros_like(batch.lengths))


def shard_groups(mesh: Mesh, groups: dict):
    """The global stacked batch [D, ...] sharded over 'data', from this process's groups {index: host Batch}
    (every group of `local_groups(mesh)`, all of one padded shape)."""
    sharding = _data_sharding(mesh)
    missing = set(local_groups(mesh)) - set(groups)
    if missing:
        raise ValueError(f"groups {sorted(missing)} of this process's devices were not built")
    leaves = {g: jax.tree.leaves(b) for g, b in groups.items()}
    treedef = jax.tree.structure(next(iter(groups.values())))
    out = []
    for i, leaf in enumerate(leaves[next(iter(leaves))]):
        shape = (mesh.size, *np.shape(leaf))
        index = sharding.addressable_devices_indices_map(shape)
        parts = [jax.device_put(np.asarray(leaves[idx[0].start or 0][i])[None], d) for d, idx in index.items()]
        out.append(jax.make_array_from_single_device_arrays(shape, sharding, parts))
    return jax.tree.unflatten(treedef, out)


def replicate(mesh: Mesh, tree):
    """Every leaf as an array replicated on all devices of the mesh (leaves already so placed are kept)."""
    sharding = NamedSharding(mesh, PartitionSpec())

    def place(x):
        if isinstance(x, jax.Array) and x.sharding == sharding:
            return x
        if isinstance(x, jax.Array) and (sharding.is_fully_addressable or not x.is_fully_addressable):
            return jax.device_put(x, sharding)  # exactly this sharding, so jitted steps see one input layout
        # A local value (loaded parameters) for devices of several processes: from the host, which holds the same
        # value in every process (a device_put would be a cross-host transfer, which CPU backends refuse).
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])

    return jax.tree.map(place, tree)


def unstacked(batch):
    """A plain batch as it is, the one group of a single-group stack as a plain batch, None for several groups."""
    if batch.lengths.ndim == 1:
        return batch
    if batch.lengths.shape[0] == 1:
        return jax.tree.map(lambda x: x[0], batch)
    return None


def pooled(fn, batch):
    """fn over every group of a stacked batch, results added; a plain batch or a single group is fn(batch)
    exactly (no vmap: one device computes what it always did)."""
    plain = unstacked(batch)
    if plain is not None:
        return fn(plain)
    return jax.tree.map(lambda x: x.sum(0), jax.vmap(fn)(batch))


def stack_groups(mesh: Mesh, batch_list: list) -> list:
    """Host batches of one padded shape -> stacked batches of D groups each, sharded over 'data' (the last one
    filled with masked copies); each process places only its own groups."""
    D, mine = mesh.size, local_groups(mesh)
    out = []
    for i in range(0, len(batch_list), D):
        chunk = batch_list[i:i + D]
        out.append(shard_groups(mesh, {g: chunk[g] if g < len(chunk) else masked(chunk[0]) for g in mine}))
    return out


def is_main_process() -> bool:
    """True in the process that writes files (logs, summaries): process 0."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Wait until every process gets here (no-op with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
