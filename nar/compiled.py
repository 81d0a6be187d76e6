"""Neural compilation: MPNN-family parameters set by hand so that the network executes BFS or Bellman-Ford exactly.

After "Mind The Gap: Deep Learning Doesn't Learn Deeply" (Saldyt & Kambhampati, 2025): no training, every weight
is written below. The compiled model is an ordinary nar `Model` (hidden 8, no layer norm, hints re-predicted hard), so
every evaluation path takes it (`evaluate_sizes`, `nar eval` on a folder from `save_compiled`, result files), and it
is the oracle `nar compare` measures a trained run against. The construction is ours; docs/compilation.md derives it.

Exactness in floating point comes from one rule: a value is never added to a term that is not exactly zero. Gates are
separate channels holding exactly 0 or X (a power of two), added to a value only where the value is 0 or the gate
is 0, and comparisons are signs of one subtraction of two floats scaled by a power of two (so the model materialises
its edge features before each edge weight, `fold_edge_weights = false`: folding reorders those sums). So BFS is
exact at any size. Bellman-Ford is exact while shortest distances stay below `DISTANCE_BOUND` and edge weights are
non-negative, up to float32: a candidate d_u + A_uv is summed in float32 (the executor sums in float64), so
candidates closer than one float32 ulp may be ordered differently.

Both programs keep a node's pointer by reading it from the edge p_i -> i, so they run with
`pointer_encoding = "child"`. Under CLRS's encoding (the edge i -> p_i) no decoder sees a node's own pointer, and
Bellman-Ford's "keep the old parent on a tie" would need the parent's position stored in the node state instead.

DFS is not compiled yet: docs/compilation.md says what its program needs (a stored pointer position for the stack
pop, and exact counters for time, d and f).
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
from flax import nnx

from nar.config import Config, EvalConfig, TrainConfig
from nar.model.net import Model, ModelConfig
from nar.processors import get_processor
from nar.processors.mpnn import MPNN

COMPILED_ALGORITHMS = ("bfs", "bellman_ford")
HIDDEN = 8
X = 2.0 ** 20  # a gate's "off" value: above every distance and valid candidate
DISTANCE_BOUND = X / 4  # Bellman-Ford is exact while every shortest distance stays below this
K = 2.0 ** 64  # scales a difference of distances: any non-zero float32 gap becomes >= 1
Y = 2.0 ** 23  # above every (negated) candidate, valid or not: switches a pointer channel off
MARGIN = 64.0  # logit margin of every decision (sigmoid(64) and softmax at 64 apart are exactly 0/1 in float32)


def compile_model(algorithm: str, processor: str = "mpnn", message_graph: str | None = None):
    """(model, params, config) of a network that executes `algorithm` exactly, with no training.

    `processor`: an MPNN-family processor (mpnn, pgn, pgn_mask, gmpnn, triplet_mpnn, triplet_gmpnn): gates are set
    open and triplet latents to zero, so all run the same program. `message_graph`: as `ModelConfig`'s (the input
    graph scales to thousands of nodes; the complete graph is CLRS's)."""
    if algorithm not in COMPILED_ALGORITHMS:
        why = " (not yet: docs/compilation.md says what its stack and counters need)" if algorithm == "dfs" else ""
        raise ValueError(f"no compiled program for {algorithm!r}{why}; compiled: {', '.join(COMPILED_ALGORITHMS)}")
    entry = get_processor(processor)
    build = getattr(entry.build, "func", entry.build)
    if build is not MPNN or entry.wraps:
        raise ValueError(f"compilation needs an MPNN-family processor (mpnn, pgn, pgn_mask, gmpnn, triplet_mpnn, "
                         f"triplet_gmpnn), got {processor!r}")
    model_cfg = ModelConfig(algorithm=algorithm, processor=processor, hidden=HIDDEN, layer_norm=False,
                            hint_repred="hard", message_graph=message_graph,
                            pointer_encoding="child", fold_edge_weights=False)
    config = Config(model=model_cfg, train=TrainConfig(), eval=EvalConfig())
    model = Model(model_cfg, rngs=nnx.Rngs(0))
    params = jax.tree.map(lambda a: np.zeros(a.shape, np.float32), nnx.to_pure_dict(nnx.split(model)[1]))
    _PROGRAMS[algorithm](_Writer(params))
    _open_gates_and_triplets(params)
    for _, module in nnx.iter_modules(model):  # float32 matmuls in full precision on every backend (no TF32)
        if isinstance(module, nnx.Linear):
            module.precision = jax.lax.Precision.HIGHEST
    params = jax.tree.map(jax.numpy.asarray, params)
    nnx.update(model, params)
    return model, params, config


class _Writer:
    """Sets entries of a zeroed parameter dict: `w(path, row, col, value)` for kernels, `b(path, col, value)`."""

    def __init__(self, params):
        self.params = params

    def _leaf(self, path: str, name: str):
        node = self.params
        for key in path.split("/"):
            node = node[key]
        return node[name]

    def w(self, path: str, row: int, col: int, value: float):
        self._leaf(path, "kernel")[row, col] = value

    def b(self, path: str, col: int, value: float):
        self._leaf(path, "bias")[col] = value


def _open_gates_and_triplets(params) -> None:
    """Gated processors: the update gate fully open (sigmoid(30) is 1.0 in float32), so h = h_new exactly.
    Triplet processors: zero weights, so the edge latents the decoders read are exactly 0."""
    proc = params["processor"]
    if "gate_out" in proc:
        proc["gate_out"]["bias"][:] = 30.0


# Offsets of the three parts of a decoder's node input [x || h_prev || h_new].
_NEW = 2 * HIDDEN


def _pointer_decoder(w: _Writer, path: str, not_f: int, candidate_send, candidate_edge, candidate_bias=0.0,
                     switch=4.0):
    """A pointer decoder that keeps each node's pointer unless flag F is up, and otherwise points to the first
    best candidate. Per edge u -> v, logit = MARGIN * (max(-switch*F_v', cand_uv) + max(-4*notF_v, pi_uv - 1)) with
    F_v' = 1 - notF_v: with F = 1 the first term is the candidate score (<= 0, 0 or the largest wins) and the second
    0; with F = 0 the first is 0 and the second 0 on the current pointer's edge, -1 elsewhere. Exact ties pick the
    lowest sender, CLRS's order (`segment_argmax` takes the first edge; edges are sorted by sender)."""
    w.w(f"{path}/recv", _NEW + not_f, 0, switch)
    w.b(f"{path}/recv", 0, -switch)
    w.w(f"{path}/recv", _NEW + not_f, 1, -4.0)
    for row, value in candidate_send:
        w.w(f"{path}/send", row, 0, value)
    for row, value in candidate_edge:
        w.w(f"{path}/edge", row, 0, value)
    w.b(f"{path}/edge", 0, candidate_bias)
    w.w(f"{path}/edge", _E_PI, 1, 1.0)
    w.b(f"{path}/edge", 1, -1.0)
    w.w(f"{path}/out", 0, 0, MARGIN)
    w.w(f"{path}/out", 1, 0, MARGIN)


_E_PI = 3  # the edge channel holding the pointer hint (both programs)


def _bfs(w: _Writer) -> None:
    """BFS: reach' = OR over in-edges of (reach_u AND adj_uv) (adj has self-loops); a newly reached node points to
    its first reached in-neighbour, every other node keeps its pointer (unreached nodes point to themselves)."""
    n_r = 0  # node channel: reach_h
    e_adj = 0  # edge channel: adj
    w.w("encoder/layers/reach_h", 0, n_r, 1.0)
    w.w("encoder/layers/adj", 0, e_adj, 1.0)
    w.w("encoder/layers/pi_h", 0, _E_PI, 1.0)
    p = "processor"
    w.w(f"{p}/m_send", n_r, 0, 1.0)  # pre_0 = reach_u + adj_uv - 1: after ReLU, reach_u AND adj_uv
    w.w(f"{p}/m_edge", e_adj, 0, 1.0)
    w.b(f"{p}/m_edge", 0, -1.0)
    w.w(f"{p}/mlp1", 0, 0, 1.0)
    w.w(f"{p}/mlp2", 0, 0, 1.0)  # max over u: reach' of the receiver
    h_r, not_f = 0, 1
    w.w(f"{p}/o_msg", 0, h_r, 1.0)
    w.w(f"{p}/o_self", n_r, not_f, 1.0)  # notF = ReLU(1 + reach_v - reach'_v): 0 exactly when newly reached
    w.b(f"{p}/o_self", not_f, 1.0)
    w.w(f"{p}/o_msg", 0, not_f, -1.0)
    w.w("hint_decoder/layers/reach_h", _NEW + h_r, 0, 2 * MARGIN)
    w.b("hint_decoder/layers/reach_h", 0, -MARGIN)
    for path in ("hint_decoder/layers/pi_h", "output_decoder/layers/pi"):  # candidate: reach_u + adj_uv - 2 (0: valid)
        _pointer_decoder(w, path, not_f, [(n_r, 1.0)], [(e_adj, 1.0)], candidate_bias=-2.0)


def _bellman_ford(w: _Writer) -> None:
    """Bellman-Ford: d'_v = min over valid u (msk_u AND adj_uv) of b_uv = d_u + A_uv (the old parent's candidate
    never exceeds d_v, so the minimum keeps d_v when nothing improves; the source stays at 0); msk' = OR of valid
    in-edges; F = "a candidate is strictly below d_v, or v is newly reached" picks the first best candidate as the
    new pointer, else the pointer is kept. Invalid candidates are >= X through the gate channels g = X(1 - mask)."""
    n_d, n_g, n_m, n_s = 0, 1, 2, 3  # node channels: d, X(1 - msk), msk, s
    e_a, e_g, e_adj = 0, 1, 2  # edge channels: A, X(1 - adj), adj (and _E_PI: pi_h)
    enc = "encoder/layers"
    w.w(f"{enc}/d", 0, n_d, 1.0)
    w.w(f"{enc}/msk", 0, n_g, -X)
    w.b(f"{enc}/msk", n_g, X)
    w.w(f"{enc}/msk", 0, n_m, 1.0)
    w.w(f"{enc}/s", 0, n_s, 1.0)
    w.w(f"{enc}/A", 0, e_a, 1.0)
    w.w(f"{enc}/adj", 0, e_g, -X)
    w.b(f"{enc}/adj", e_g, X)
    w.w(f"{enc}/adj", 0, e_adj, 1.0)
    w.w(f"{enc}/pi_h", 0, _E_PI, 1.0)
    p = "processor"
    # Pre-message: b = (d_u + g_u) + (A_uv + g_uv), c = d_v, and = msk_u + adj_uv - 1 (ReLU: AND).
    for row in (n_d, n_g):
        w.w(f"{p}/m_send", row, 0, 1.0)
    for row in (e_a, e_g):
        w.w(f"{p}/m_edge", row, 0, 1.0)
    w.w(f"{p}/m_recv", n_d, 1, 1.0)
    w.w(f"{p}/m_send", n_m, 2, 1.0)
    w.w(f"{p}/m_edge", e_adj, 2, 1.0)
    w.b(f"{p}/m_edge", 2, -1.0)
    # MLP: (b, and, K c - K b) then (-b, and, improvement); the max over u gives (-min b, msk', > 0 iff improved).
    w.w(f"{p}/mlp1", 0, 0, 1.0)
    w.w(f"{p}/mlp1", 2, 1, 1.0)
    w.w(f"{p}/mlp1", 1, 2, K)
    w.w(f"{p}/mlp1", 0, 2, -K)
    w.w(f"{p}/mlp2", 0, 0, -1.0)
    w.w(f"{p}/mlp2", 1, 1, 1.0)
    w.w(f"{p}/mlp2", 2, 2, 1.0)
    m_negd, m_and, m_imp = 0, 1, 2
    h_p, h_p2, h_q, h_m, not_f = 0, 1, 2, 3, 4
    # P = min b (0 at the source), P2 = min b - X (> 0 only when unreached), Q = X (1 - msk'): d' = P - P2 - Q.
    for col in (h_p, h_p2):
        w.w(f"{p}/o_self", n_s, col, -X)
        w.w(f"{p}/o_msg", m_negd, col, -1.0)
    w.b(f"{p}/o_msg", h_p2, -X)
    w.w(f"{p}/o_msg", m_and, h_q, -X)
    w.b(f"{p}/o_msg", h_q, X)
    w.w(f"{p}/o_msg", m_and, h_m, 1.0)
    # notF = ReLU(1 + msk_v - improvement - msk'_v): 0 when improved or newly reached.
    w.w(f"{p}/o_self", n_m, not_f, 1.0)
    w.b(f"{p}/o_self", not_f, 1.0)
    w.w(f"{p}/o_msg", m_imp, not_f, -1.0)
    w.w(f"{p}/o_msg", m_and, not_f, -1.0)
    dec = "hint_decoder/layers"
    for col, value in ((h_p, 1.0), (h_p2, -1.0), (h_q, -1.0)):
        w.w(f"{dec}/d", _NEW + col, 0, value)
    w.w(f"{dec}/msk", _NEW + h_m, 0, 2 * MARGIN)
    w.b(f"{dec}/msk", 0, -MARGIN)
    for path in (f"{dec}/pi_h", "output_decoder/layers/pi"):  # candidate: -(d_u + g_u) - (A_uv + g_uv)
        _pointer_decoder(w, path, not_f, [(n_d, -1.0), (n_g, -1.0)], [(e_a, -1.0), (e_g, -1.0)], switch=Y)


_PROGRAMS = {"bfs": _bfs, "bellman_ford": _bellman_ford}


def save_compiled(out_dir: str | Path, algorithm: str, processor: str = "mpnn",
                  message_graph: str | None = None) -> Path:
    """Write a compiled model as a run folder (config.toml and a step-0 checkpoint whose parameters are the
    compiled ones), so `nar eval`, `nar compare` and `nar.load_run` take it like a trained run."""
    from nar.checkpoint import Checkpointer, write_atomic
    from nar.train import CHECKPOINTS, CONFIG_FILE, initial_state, make_optimizer

    _, params, config = compile_model(algorithm, processor, message_graph)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / CONFIG_FILE, config.to_toml())
    ckpt = Checkpointer(out / CHECKPOINTS)
    try:
        ckpt.save(0, initial_state(config, params, make_optimizer(config)))
    finally:
        ckpt.close()
    return out


__all__ = ["COMPILED_ALGORITHMS", "DISTANCE_BOUND", "compile_model", "save_compiled"]
