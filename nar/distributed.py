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

import errno
import math
import os
import re
import socket
import sys
import threading

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA = "data"
INIT_TIMEOUT = 300  # seconds for every process of a multi-process run to join
INIT_TIMEOUT_EXIT = 1  # a runtime failure (the CLI's convention: 2 is a usage or config error)
_JAX_GRACE = 30  # seconds JAX's own start-up deadline comes after ours


def set_cpu_devices(n: int) -> None:
    """Simulate `n` CPU devices (JAX's `jax_num_cpu_devices` option, which overrides XLA_FLAGS'
    --xla_force_host_platform_device_count). Must run before JAX starts its backend (before the first computation
    or device query); afterwards only the count it started with is accepted."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"the number of CPU devices must be a positive integer, got {n!r}")
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError:  # JAX refuses a new count once its backend has started
        have = len(jax.devices("cpu"))
        if have != n:
            why = (f"cannot simulate {n} CPU devices: JAX has already started with {have}; set the count before any "
                   f"JAX computation (or JAX_NUM_CPU_DEVICES={n} in the environment)")
            raise ValueError(why) from None


def initialize(num_processes: int | None = None, process_id: int | None = None, coordinator: str | None = None,
               init_timeout: float | None = None, heartbeat_timeout: int | None = None) -> bool:
    """Join a multi-process run (`jax.distributed.initialize`) when one is asked for: by the arguments, by
    JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID, or (with `num_processes` unset and no
    coordinator) not at all. On clusters JAX detects itself (SLURM, Open MPI, TPU pods) pass nothing but
    `coordinator=\"auto\"`. Must run before JAX starts its backend (JAX raises a RuntimeError otherwise). True
    when this is a multi-process run.

    No hang: if not every process has joined within `init_timeout` seconds (NAR_INIT_TIMEOUT, default
    `INIT_TIMEOUT`), this process exits with status `INIT_TIMEOUT_EXIT` and a message naming the processes missing
    and the coordinator (JAX itself would abort the process with a bare DEADLINE_EXCEEDED). Once joined, a process
    that stops answering for `heartbeat_timeout` seconds (NAR_HEARTBEAT_TIMEOUT, default JAX's 100) ends the
    others: JAX's coordination service aborts them."""
    env = os.environ
    num_processes = num_processes if num_processes is not None else _env_int("JAX_NUM_PROCESSES")
    process_id = process_id if process_id is not None else _env_int("JAX_PROCESS_ID")
    coordinator = coordinator or env.get("JAX_COORDINATOR_ADDRESS")
    init_timeout = init_timeout if init_timeout is not None else _env_int("NAR_INIT_TIMEOUT", INIT_TIMEOUT)
    heartbeat_timeout = heartbeat_timeout if heartbeat_timeout is not None else _env_int("NAR_HEARTBEAT_TIMEOUT")
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"the number of processes must be positive, got {num_processes}")
    if process_id is not None and (process_id < 0 or (num_processes is not None and process_id >= num_processes)):
        raise ValueError(f"process id must be in 0..{(num_processes or 1) - 1} (one per process), got {process_id}")
    if init_timeout <= 0 or (heartbeat_timeout is not None and heartbeat_timeout <= 0):
        raise ValueError(f"timeouts must be positive, got init {init_timeout} s, heartbeat {heartbeat_timeout} s")
    if coordinator is None and (num_processes or 1) == 1:
        return False
    auto = coordinator == "auto"
    if not auto:
        if coordinator is None or not re.fullmatch(r"\[?[\w.:-]+\]?:\d{1,5}", coordinator):
            raise ValueError(f"the coordinator must be HOST:PORT (process 0's address), got {coordinator!r}")
        if num_processes is None or process_id is None:
            raise ValueError(f"a coordinator ({coordinator}) needs the number of processes and this process's id")
    if process_id == 0 and not auto and _port_taken(int(coordinator.rsplit(":", 1)[1])):
        raise ValueError(f"process 0 cannot host the coordinator {coordinator}: the port is in use on this machine "
                         "(another run?); pick a free port")
    heartbeat = {} if heartbeat_timeout is None else {"heartbeat_timeout_seconds": heartbeat_timeout}
    returned = threading.Event()

    def watchdog():
        if not returned.wait(init_timeout):
            print(_join_failure(num_processes, process_id, coordinator, init_timeout), file=sys.stderr, flush=True)
            os._exit(INIT_TIMEOUT_EXIT)  # the main thread is stuck in JAX's native code: nothing else can end it

    threading.Thread(target=watchdog, name="nar-init-watchdog", daemon=True).start()
    try:  # JAX's own deadline comes later, as a fallback: on it, JAX aborts the process without naming anyone
        jax.distributed.initialize(None if auto else coordinator, num_processes, process_id,
                                   initialization_timeout=math.ceil(init_timeout) + _JAX_GRACE, **heartbeat)
    finally:
        returned.set()
    return jax.process_count() > 1


def _join_failure(num_processes: int | None, process_id: int | None, coordinator: str, timeout: float) -> str:
    """Why start-up failed, naming the processes that did not join as far as this one can tell: process 0 hosts
    the coordinator, so another process that cannot reach it knows process 0 is missing; otherwise the missing
    ones are among the rest (exactly known when one is left)."""
    if coordinator == "auto":
        return (f"nar: error: the processes of this multi-process run did not all join within {timeout:g} s (the "
                f"coordinator and process count detected by JAX); raise --init-timeout if start-up is slow")
    rest = [i for i in range(1, num_processes) if i != process_id]
    if process_id != 0 and not _listening(coordinator):
        missing = f"process 0 (nothing listens at {coordinator})"
    elif not rest:
        missing = f"none known to this process (is the process at {coordinator} this run's process 0?)"
    elif len(rest) == 1:
        missing = f"process {rest[0]}"
    else:
        missing = f"one or more of processes 1..{num_processes - 1}" + (" (not this one)" if process_id else "")
    return (f"nar: error: process {process_id} of {num_processes} gave up after {timeout:g} s waiting for the other "
            f"processes to join at the coordinator {coordinator}; not joined: {missing}. Start every process "
            f"(ids 0..{num_processes - 1}) with the same --coordinator and --num-processes, or raise --init-timeout")


def _listening(address: str) -> bool:
    """Whether a TCP connection to HOST:PORT opens (within a second)."""
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=1).close()
        return True
    except OSError:
        return False


def _port_taken(port: int) -> bool:
    """Whether something listens on `port` here: JAX would crash (a segmentation fault) when binding it."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as JAX's server: a closed run's port is free
        try:
            s.bind(("", port))
            return False
        except OSError as e:
            return e.errno == errno.EADDRINUSE


def _env_int(name: str, default: int | None = None) -> int | None:
    value = os.environ.get(name)
    if value is None:
        return default
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
