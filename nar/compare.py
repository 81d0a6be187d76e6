"""A trained run beside the compiled model of its algorithm, step by step: nar's exactness oracle.

Both models roll out on the same test graphs (each feeding back its own predictions, as in evaluation). Per step t of
the trajectory, over the nodes of the graphs still running at t:
- `agree/<hint>`: the fraction of nodes whose trained hint prediction equals the compiled model's (pointer: the
  same target; mask: the same bit); scalar hints give `error/<hint>`, the mean absolute difference. The compiled
  model is exact, so this is also the trained model's per-step hint accuracy on its own rollout.
- `cka`: linear CKA between the trained node states [nodes, H] and the compiled ones [nodes, 8] (1: the same
  geometry up to rotation and scale; Kornblith et al. 2019).
- `probe_r2`: how much of the compiled state a linear map reads from the trained state: one least-squares map
  fitted (ridge, `RIDGE`) on the even-numbered test graphs over all steps, R^2 scored per step on the odd-numbered
  ones (held out).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from nar.compiled import COMPILED_ALGORITHMS, compile_model
from nar.config import EvalConfig
from nar.evaluate import batches, test_set
from nar.model.net import graph_of
from nar.model.segment import segment_argmax
from nar.specs import Type

RIDGE = 1e-3  # the linear probe's ridge penalty, as a fraction of the mean diagonal of its Gram matrix


def _decisions(logits, type_: str, graph):
    """A hint's decision per node from its logits: pointer target, mask bit, or the scalar value."""
    if type_ == Type.POINTER:
        return jnp.asarray(graph.senders)[segment_argmax(logits, graph.receivers, graph.num_nodes, True)]
    if type_ == Type.MASK:
        return logits > 0
    if type_ == Type.SCALAR:
        return logits
    raise ValueError(f"no per-step comparison for hint type {type_!r}")


def _rollout(model):
    """A jitted function (params, batch) -> (hint decisions per probe [T-1, N], node states [T-1, N, H])."""
    graphdef = nnx.split(model)[0]

    def run(params, batch):
        m = nnx.merge(graphdef, params)
        preds = m(batch, train=False, trace=True)
        graph = graph_of(batch)
        out = {name: jax.vmap(lambda lg, t=m.hint_probes[name][1]: _decisions(lg, t, graph))(logits)
               for name, logits in preds.hints.items()}
        return out, preds.hidden

    return jax.jit(run)


def _cka(a, b) -> float:
    """Linear CKA of two [rows, features] matrices (centred): ||B^T A||^2 / (||A^T A|| ||B^T B||)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a, b = a - a.mean(0), b - b.mean(0)
    den = np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b)
    return float(np.linalg.norm(b.T @ a) ** 2 / den) if den > 0 else float("nan")


def compare_run(model, params, config, sizes=(16, 64), samples: int = 32, seed: int = 3) -> dict:
    """{n: {'steps': [{'t', 'nodes', 'agree/<hint>' | 'error/<hint>', 'cka', 'probe_r2'}, ...]}} for a trained
    model of BFS or Bellman-Ford against its compiled model (module docstring)."""
    algorithm = config.model.algorithm
    if algorithm not in COMPILED_ALGORITHMS:
        raise ValueError(f"no compiled model for {algorithm!r} to compare with; compiled: "
                         f"{', '.join(COMPILED_ALGORITHMS)}")
    c_model, c_params, _ = compile_model(algorithm, message_graph=config.model.graph_kind)
    cfg = EvalConfig(sizes=tuple(sizes), samples=samples, seed=seed)
    run_trained, run_compiled = _rollout(model), _rollout(c_model)
    results = {}
    for n in sizes:
        rows, states = {}, []
        first_graph = 0
        for batch in batches(test_set(algorithm, n, cfg), config.model, cfg.batch_size, cfg.max_edges_per_batch):
            trained, h_t = run_trained(params, batch)
            compiled, h_c = run_compiled(c_params, batch)
            node_graph = np.asarray(batch.node_graph)
            lengths = np.asarray(batch.lengths)
            valid = np.zeros(len(lengths), bool)
            valid[:-1] = True  # the last slot is jraph's padding graph
            for t in range(h_t.shape[0]):
                live = (valid & (t + 1 < lengths))[node_graph]  # nodes of graphs whose hint t+1 exists
                if not live.any():
                    break
                row = rows.setdefault(t + 1, {"nodes": 0, "sums": {}})
                row["nodes"] += int(live.sum())
                for name in trained:
                    a, b = np.asarray(trained[name][t])[live], np.asarray(compiled[name][t])[live]
                    key = "error" if a.dtype.kind == "f" else "agree"
                    diff = np.abs(a - b).sum() if key == "error" else (a == b).sum()
                    row["sums"][f"{key}/{name}"] = row["sums"].get(f"{key}/{name}", 0.0) + float(diff)
                held_out = (first_graph + node_graph[live]) % 2 == 1
                states.append((t + 1, np.asarray(h_t[t])[live], np.asarray(h_c[t])[live], held_out))
            first_graph += len(lengths) - 1
        results[n] = {"graphs": samples, "steps": _step_rows(rows, states)}
    return results


def _step_rows(rows: dict, states: list) -> list:
    """Per-step means, CKA and the held-out R^2 of one linear map from trained to compiled states."""
    def rows_of(step=None, held_out=None):
        picked = [(a[h == held_out] if held_out is not None else a, b[h == held_out] if held_out is not None else b)
                  for s, a, b, h in states if step is None or s == step]
        return np.concatenate([a for a, _ in picked]), np.concatenate([b for _, b in picked])

    def with_bias(a):
        return np.concatenate([a, np.ones((len(a), 1))], axis=1)

    a_fit, b_fit = rows_of(held_out=False)
    x = with_bias(a_fit)
    gram = x.T @ x
    ridge = RIDGE * np.trace(gram) / len(gram)  # relative to the mean feature energy: no wild extrapolation
    probe = np.linalg.solve(gram + ridge * np.eye(len(gram)), x.T @ b_fit)
    centre = rows_of(held_out=True)[1].mean(0)
    out = []
    for t in sorted(rows):
        a, b = rows_of(t)
        a_test, b_test = rows_of(t, held_out=True)
        total = ((b_test - centre) ** 2).sum()
        r2 = 1.0 - ((b_test - with_bias(a_test) @ probe) ** 2).sum() / total if total > 0 else float("nan")
        nodes = rows[t]["nodes"]
        out.append({"t": t, "nodes": nodes, **{k: v / nodes for k, v in rows[t]["sums"].items()},
                    "cka": _cka(a, b), "probe_r2": float(r2)})
    return out


def format_comparison(results: dict) -> str:
    """A plain-text table per size: one row per step."""
    lines = []
    for n, res in results.items():
        keys = sorted({k for r in res["steps"] for k in r if "/" in k})
        lines.append(f"n = {n} ({res['graphs']} graphs): trained vs compiled, per step")
        lines.append(f"{'t':>4} {'nodes':>7} " + " ".join(f"{k:>14}" for k in keys) + f" {'cka':>7} {'probe_r2':>9}")
        for r in res["steps"]:
            lines.append(f"{r['t']:>4} {r['nodes']:>7} " + " ".join(f"{r[k]:>14.4f}" for k in keys)
                         + f" {r['cka']:>7.3f} {r['probe_r2']:>9.3f}")
    return "\n".join(lines)


def plot_comparison(results: dict, path, title: str = "") -> None:
    """Hint agreement and state similarity per step, one column per size (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(2, len(results), figsize=(4.5 * len(results), 6), squeeze=False, sharey="row")
    for col, (n, res) in enumerate(results.items()):
        steps = res["steps"]
        ts = [r["t"] for r in steps]
        for k in sorted({k for r in steps for k in r if k.startswith("agree/")}):
            axes[0, col].plot(ts, [r[k] for r in steps], marker=".", label=k.split("/", 1)[1])
        axes[0, col].set_title(f"n = {n}")
        axes[0, col].set_ylabel("hint agreement with compiled")
        axes[0, col].legend(fontsize=8)
        for k in ("cka", "probe_r2"):
            axes[1, col].plot(ts, [r[k] for r in steps], marker=".", label=k)
        axes[1, col].set_xlabel("step t")
        for ax in axes[:, col]:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[1, col].set_ylabel("node-state similarity")
        axes[1, col].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


__all__ = ["compare_run", "format_comparison", "plot_comparison"]
