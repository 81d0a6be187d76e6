"""Where a jitted call spends its time: XLA's own per-instruction timings, from a JAX profiler trace.

`op_times(f, *args)` runs the (already jitted) `f` once under `jax.profiler.trace`, reads the Perfetto trace it
writes, and keeps the events named after instructions of `f`'s compiled HLO (fusions, library dots, scatters,
gathers): per instruction its total milliseconds, its number of executions (a loop body's run once per step), its
result shape and the JAX operation it came from (`dot_general`, `scatter-max`, ...). `nar bench speed --profile`
prints the top of this list. The XLA CPU backend names its trace events after the instructions; on other backends
the events are kernels, which are not matched, and the list is empty.
"""

from __future__ import annotations

import collections
import gzip
import json
import re
import tempfile
from pathlib import Path

import jax

_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%?([\w.-]+) = (\S+) (\w[\w-]*)\(")
_OP_NAME = re.compile(r'op_name="([^"]*)"')


def _instructions(hlo_text: str) -> dict[str, tuple[str, str]]:
    """{instruction name: (result shape, the JAX operation it came from)} of an HLO module's text."""
    out = {}
    for line in hlo_text.splitlines():
        m = _INSTRUCTION.match(line)
        if m:
            name, shape, opcode = m.groups()
            op_name = _OP_NAME.search(line)
            source = op_name.group(1).rsplit("/", 1)[-1] if op_name else opcode
            out[name] = (re.sub(r"\{[^}]*\}", "", shape), source)
    return out


def op_times(f, *args, top: int = 12) -> list[dict]:
    """The `top` instructions of one call of the jitted `f(*args)` by total time (module docstring): dicts of
    `name`, `ms`, `calls`, `shape`, `op`, and `share` of the matched total."""
    jax.block_until_ready(f(*args))  # compiled and warm before the traced call
    instructions = _instructions(f.lower(*args).compile().as_text())
    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp, create_perfetto_trace=True):
            jax.block_until_ready(f(*args))
        traces = sorted(Path(tmp).rglob("*.trace.json.gz"))
        events = json.loads(gzip.decompress(traces[0].read_bytes()))["traceEvents"] if traces else []
    micros, calls = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("ph") == "X" and e.get("name") in instructions:
            micros[e["name"]] += float(e.get("dur", 0.0))
            calls[e["name"]] += 1
    total = sum(micros.values()) or 1.0
    return [{"name": name, "ms": us / 1e3, "calls": calls[name], "shape": instructions[name][0],
             "op": instructions[name][1], "share": us / total} for name, us in micros.most_common(top)]


def format_op_times(rows: list[dict], title: str) -> str:
    """A plain-text table of `op_times` rows."""
    lines = [f"  {title}: where the time goes (XLA instructions, one call)"]
    lines += [f"    {r['ms']:9.1f} ms {r['share']:6.1%} x{r['calls']:<4d} {r['op']:<14s} {r['shape']:<22s} {r['name']}"
              for r in rows]
    return "\n".join(lines)
