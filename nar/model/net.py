"""Encode-process-decode over hint steps (CLRS's model), on the sparse processing graph.

Per processor step t = 0 .. T-2 (`lax.scan` over the batch's padded steps): inputs and the current hints are
encoded and summed, the processor updates the hidden state, decoders predict hint t+1 and the outputs. Hint 0 is
always the ground truth; later hints are the model's own predictions fed back (soft by default), or the truth with
probability `teacher_forcing` per sample in training. A sample's outputs are frozen at its own length: they come
from step max(L - 2, 0), as in CLRS (decoded once, from that step's decoder inputs). For PGN (a processor registered
with `adjacency`) the processor's messages are masked, at every step, to CLRS's adjacency (`adjacency`): the
self-loops, the input graph and the encoded pointers, on the complete message graph, whose pointer decoders still
score every node.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from nar.data.batch import Batch, message_graph_for, probes
from nar.model.probes import POINTERS, Decoder, Encoder, predicted_features, truth_features
from nar.model.segment import log_sinkhorn
from nar.processors import get_processor
from nar.processors.base import Graph
from nar.processors.discrete import ATTENTIONS as DNAR_ATTENTIONS
from nar.processors.discrete import check_discrete_algorithm
from nar.processors.graphfsa import check_fsa_algorithm
from nar.processors.tropical import MAPS, VALUATIONS
from nar.specs import SPECS, Location, Stage, Type

HINT_MODES = ("encoded_decoded", "decoded_only", "none")
HINT_REPRED = ("soft", "hard", "hard_on_eval")
# Which edge carries the encoding of a node pointer i -> p_i. "clrs": the edge i -> p_i (sender i, receiver p_i), as
# dm-clrs's encoder writes it (`edge_fts[b, i, p_i]`): the parent hears "i points to me" and no node sees its own
# pointer. "child": the edge p_i -> i, so node i hears its own pointer; the compiled programs (`nar.compiled`) read
# their own parent from it, and runs written before this option existed used it.
POINTER_ENCODINGS = ("clrs", "child")
DTYPES = ("float32", "bfloat16")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything that defines the network and its unrolling (CLRS defaults)."""

    algorithm: str = "bfs"
    processor: str = "mpnn"
    hidden: int = 128
    hint_mode: str = "encoded_decoded"
    hint_repred: str = "soft"
    teacher_forcing: float = 0.0
    message_graph: str | None = None  # None: the processor's default; sorting is always complete
    layer_norm: bool = True
    gated: bool = False
    sinkhorn_steps: int = 10
    sinkhorn_eval_steps: int = 60
    sinkhorn_temperature: float = 0.1
    # Processor options (used by the processors that name them in the registry)
    triplet_features: int = 8  # Triplet-GMPNN
    heads: int = 4  # tropical attention
    valuation: str = "log1p"  # tropical attention: "log1p" (released code) or "log" (paper)
    tropical_maps: str = "head_shared"  # tropical: max-plus maps per head (released code), "per_head" or "full"
    tropical_bias: bool = False  # tropical: biases on the attention's Euclidean maps (not in the paper)
    tropical_skip: bool = False  # tropical: untied learned residual R z instead of the identity (not in the paper)
    base_processor: str = "mpnn"  # the processor ForgetNet / G-ForgetNet wrap
    fsa_states: int = 0  # GraphFSA: states per node (0: the classes of the tracked hint)
    fsa_bound: int = 1  # GraphFSA: neighbour counts are capped at this bound k
    dnar_attention: str = "additive"  # dnar: the paper's additive logit, or "gated" (`nar.processors.discrete`)
    pointer_encoding: str = "clrs"  # the edge a node pointer's encoding is added to (POINTER_ENCODINGS)
    # Fold the edge consumers' linear maps into the edge encoders' kernels (`EdgeFeatures`): the same function
    # without the [E, H] x [H, H] products. false materialises the [E, H] features first; the compiled programs need
    # it, as their exactness rests on the order of float additions (`nar.compiled`).
    fold_edge_weights: bool = True
    # Skip the computation of hint steps no sample of the batch reaches (`lax.cond` in the scan): same results,
    # about 15% less training time per step in CLRS's protocol, about 2 s more compilation per padded shape.
    skip_padded_steps: bool = True
    # The operand type of every linear layer's matmul: "bfloat16" multiplies in bfloat16 with float32 accumulation,
    # parameters, biases and everything else in float32 (`use_matmul_dtype`). float32 stays the default: on the
    # 2-core CPU machine bfloat16 trains slower, at the same accuracy (docs/benchmarks.md, "bfloat16").
    dtype: str = "float32"

    def __post_init__(self):
        if self.algorithm not in SPECS:
            raise ValueError(f"unknown algorithm {self.algorithm!r}; known: {', '.join(SPECS)}")
        entry = get_processor(self.processor)
        if entry.automaton:
            check_fsa_algorithm(self.algorithm)
        if entry.discrete:
            check_discrete_algorithm(self.algorithm)
        if self.dtype != "float32" and (entry.automaton or entry.discrete):
            raise ValueError(f"dtype {self.dtype!r} applies to the message-passing models; {self.processor!r} "
                             f"runs in float32 only")
        base = get_processor(self.base_processor)
        if base.wraps or base.automaton:
            raise ValueError(f"base_processor must be a message-passing processor (not a wrapper or an automaton), got "
                             f"{self.base_processor!r}")
        checks = [(self.hint_mode in HINT_MODES, f"hint_mode must be one of {HINT_MODES}, got {self.hint_mode!r}"),
                  (self.hint_repred in HINT_REPRED, f"hint_repred must be one of {HINT_REPRED}, "
                                                    f"got {self.hint_repred!r}"),
                  (0.0 <= self.teacher_forcing <= 1.0, f"teacher_forcing must be in [0, 1], got "
                                                       f"{self.teacher_forcing}"),
                  (self.hidden >= 1, f"hidden must be positive, got {self.hidden}"),
                  (self.triplet_features >= 1, f"triplet_features must be positive, got {self.triplet_features}"),
                  (self.heads >= 1 and self.hidden % self.heads == 0,
                   f"heads must divide hidden ({self.hidden}), got {self.heads}"),
                  (self.dnar_attention in DNAR_ATTENTIONS,
                   f"dnar_attention must be one of {DNAR_ATTENTIONS}, got {self.dnar_attention!r}"),
                  (self.fsa_states >= 0 and self.fsa_bound >= 1,
                   f"fsa_states must be >= 0 and fsa_bound >= 1, got {self.fsa_states} and {self.fsa_bound}"),
                  (self.valuation in VALUATIONS, f"valuation must be one of {VALUATIONS}, got {self.valuation!r}"),
                  (self.tropical_maps in MAPS, f"tropical_maps must be one of {MAPS}, got {self.tropical_maps!r}"),
                  (isinstance(self.tropical_bias, bool) and isinstance(self.tropical_skip, bool),
                   f"tropical_bias and tropical_skip must be true or false, got {self.tropical_bias!r} and "
                   f"{self.tropical_skip!r}"),
                  (isinstance(self.fold_edge_weights, bool) and isinstance(self.skip_padded_steps, bool),
                   f"fold_edge_weights and skip_padded_steps must be true or false, got {self.fold_edge_weights!r} "
                   f"and {self.skip_padded_steps!r}"),
                  (self.dtype in DTYPES, f"dtype must be one of {DTYPES}, got {self.dtype!r}"),
                  (self.pointer_encoding in POINTER_ENCODINGS, f"pointer_encoding must be one of "
                                                               f"{POINTER_ENCODINGS}, got {self.pointer_encoding!r}"),
                  (self.message_graph in (None, "complete", "input"),
                   f"message_graph must be 'complete' or 'input', got {self.message_graph!r}")]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)

    @property
    def core(self):
        """The registry entry that does the message passing: the processor, or the base a wrapper wraps."""
        entry = get_processor(self.processor)
        return get_processor(self.base_processor) if entry.wraps else entry

    @property
    def graph_kind(self) -> str:
        """The message graph batches are laid out on."""
        return message_graph_for(self.algorithm, self.message_graph or self.core.default_message_graph)

    @property
    def triplets(self) -> bool:
        """Whether batches must carry triplets for this processor."""
        return self.core.triplets


class Predictions(NamedTuple):
    outputs: Mapping[str, Any]  # logits; permutation pointers as Sinkhorn log-probabilities
    hints: Mapping[str, Any]  # logits of hints 1 .. T-1, stacked [T-1, ...]
    stats: Mapping[str, Any] = {}  # the processor's per-node statistics (`history`), mean over real nodes and steps
    hidden: Any = None  # with `trace=True`: the processor's node states after each step, stacked [T-1, N, H]


def graph_of(batch: Batch) -> Graph:
    g = batch.graph
    return Graph(g.senders, g.receivers, batch.node_graph, batch.node_graph[g.receivers], g.n_node, batch.triplets,
                 batch.dense_nodes)


def reverse_edges(graph: Graph):
    """[E] index of each edge's reverse (r -> s for the edge s -> r) on a symmetric processing graph whose edges
    are sorted by receiver, then sender (both message graphs, `nar.data.batch.message_graph_edges`): a binary
    search for sender r within the run of edges that s receives. Self-loops, padding edges included, are their
    own reverse."""
    E, N = graph.num_edges, graph.num_nodes
    senders_E, receivers_E = jnp.asarray(graph.senders), jnp.asarray(graph.receivers)  # host arrays too
    in_deg_N = jnp.zeros(N, jnp.int32).at[receivers_E].add(1)
    start_N = jnp.cumsum(in_deg_N) - in_deg_N
    lo_E = start_N[senders_E]  # the reverse of s -> r lies among the edges received by s ...
    hi_E = lo_E + in_deg_N[senders_E]
    for _ in range(max(E, 1).bit_length()):  # ... at the first position whose sender is >= r
        mid_E = (lo_E + hi_E) // 2
        right_E = (lo_E < hi_E) & (senders_E[jnp.minimum(mid_E, E - 1)] < receivers_E)
        lo_E, hi_E = jnp.where(right_E, mid_E + 1, lo_E), jnp.where(right_E | (lo_E >= hi_E), hi_E, mid_E)
    return jnp.where(senders_E == receivers_E, jnp.arange(E), jnp.minimum(lo_E, E - 1))


def adjacency(feats, probes, graph: Graph, reverse_E, base_E=None):
    """[E] bool: CLRS's adjacency on the edges of a complete message graph (dm-clrs `encoders.accum_adj_mat`,
    used by its PGN): the self-loops, every encoded edge mask made symmetric (> 0; the input graph's `adj`) and every
    encoded node pointer made symmetric (p_ij + p_ji > 0.5; soft predicted pointers included). `base_E`: an
    adjacency already accumulated (the inputs'), to which these probes' edges are added."""
    adj_E = graph.senders == graph.receivers if base_E is None else base_E
    for name, (location, type_, _) in probes.items():
        x = feats[name]
        if type_ in POINTERS:
            adj_E = adj_E | (x + x[reverse_E] > 0.5)
        elif location == Location.EDGE and type_ == Type.MASK:
            adj_E = adj_E | (x + x[reverse_E] > 0.0)
    return adj_E


class Model(nnx.Module):
    """CLRS's encode-process-decode network for one algorithm and processor (module docstring); call it on a `Batch`."""
    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs, **processor_options):
        self.config = config
        H = config.hidden
        self.input_probes = probes(config.algorithm, Stage.INPUT)
        self.hint_probes = probes(config.algorithm, Stage.HINT)
        self.output_probes = probes(config.algorithm, Stage.OUTPUT)
        encode_hints = config.hint_mode == "encoded_decoded"
        decode_hints = config.hint_mode != "none"
        enc_probes = {**self.input_probes, **(self.hint_probes if encode_hints else {})}
        scalar_hints = frozenset(n for n, (_, t, _) in self.hint_probes.items() if t == Type.SCALAR)
        self.encoder = Encoder(enc_probes, H, rngs=rngs, small_init=scalar_hints)
        core = config.core
        opts = {"layer_norm": config.layer_norm, **({"gated": True} if config.gated else {}),
                **core.options_of(config), **processor_options}
        self.processor = core.build(H, rngs=rngs, **opts)
        entry = get_processor(config.processor)
        if entry.wraps:
            self.processor = entry.build(H, rngs=rngs, base=self.processor)
        edge_in = H + self.processor.edge_latent_size
        self.output_decoder = Decoder(self.output_probes, H, edge_in, rngs=rngs)
        self.hint_decoder = Decoder(self.hint_probes, H, edge_in, rngs=rngs) if decode_hints else None
        self.encode_hints = encode_hints
        self.encoder_reverses = (config.pointer_encoding == "clrs"
                                 and any(t in POINTERS for _, t, _ in enc_probes.values()))
        # PGN: messages masked to CLRS's adjacency at every step. On the input message graph every edge is already
        # in it (the symmetric input graph plus self-loops holds every pointer), so there is nothing to mask.
        self.adjacency = core.adjacency and config.graph_kind == "complete"
        # Unrolling of the time loop: 1 in normal use; benchmarks unroll fully so that XLA's cost analysis counts
        # every step (it counts a loop body once).
        self.scan_unroll = 1
        if config.dtype != "float32":
            use_matmul_dtype(self, getattr(jnp, config.dtype))

    def __call__(self, batch: Batch, key=None, *, train: bool = False, closed_gate: bool = False,
                 trace: bool = False) -> Predictions:
        """Predictions for a batch; `closed_gate` shuts a history gate (G-ForgetNet run as pure ForgetNet); `trace`
        also returns every step's node states (`Predictions.hidden`, for `nar.compare`)."""
        cfg = self.config
        graph = graph_of(batch)
        H = cfg.hidden
        feats_in = {n: truth_features(batch.inputs[n], *self.input_probes[n], graph) for n in self.input_probes}
        hint_truth = {n: truth_features(batch.hints[n][0], *self.hint_probes[n], graph) for n in self.hint_probes}
        num_steps = batch.pad_sizes.steps - 1  # >= 1: batches have at least two padded steps
        hard = cfg.hint_repred == "hard" or (cfg.hint_repred == "hard_on_eval" and not train)
        tf = cfg.teacher_forcing if train else 0.0
        key = jax.random.key(0) if key is None else key
        k_steps, k_noise = jax.random.split(key)
        reverse_E = reverse_edges(graph) if self.adjacency or self.encoder_reverses else None
        if self.adjacency:
            adj_in_E = adjacency(feats_in, self.input_probes, graph, reverse_E)

        def step(carry, xs):
            hidden, hint_feats, outs = carry
            t, truth_next, k = xs
            feats = {**feats_in, **(hint_feats if self.encode_hints else {})}
            node_fts, edge_fts, graph_fts = self.encoder(feats, graph, H, reverse_E if self.encoder_reverses else None)
            history, stats = self.processor.history(node_fts, hidden, closed=closed_gate)
            proc_graph = graph
            if self.adjacency:  # encoded hints' pointers (the model's own, soft, after step 0) join the inputs' edges
                mask_E = (adjacency(hint_feats, self.hint_probes, graph, reverse_E, adj_in_E) if self.encode_hints
                          else adj_in_E)
                proc_graph = graph._replace(edge_mask=mask_E)
            folded = cfg.fold_edge_weights and self.processor.factored_edges
            new_hidden, latent = self.processor(node_fts, edge_fts if folded else edge_fts.dense(), graph_fts,
                                                proc_graph, history)
            h_dec = jnp.concatenate([node_fts, history, new_hidden], axis=-1)
            e_dec = self._decoder_edges(edge_fts, latent)
            # Outputs are decoded once, after the loop, from the decoder inputs of each sample's last step:
            # the same result as decoding every step and freezing (CLRS), at a fraction of the cost.
            keep_G = (t == 0) | (t + 1 < batch.lengths)
            live_N = (t + 1 < batch.lengths)[graph.node_graph]  # real nodes at a real step
            sums = {n: (jnp.sum(jnp.where(live_N, v, 0.0)), jnp.sum(live_N)) for n, v in stats.items()}
            keep_E = keep_G[graph.edge_graph][:, None]
            outs = (jnp.where(keep_G[graph.node_graph][:, None], h_dec, outs[0]),
                    jnp.where(keep_E, edge_fts.raw_ExK, outs[1]),
                    None if latent is None else jnp.where(keep_E, latent, outs[2]),
                    jnp.where(keep_G[:, None], graph_fts, outs[3]))
            states = new_hidden if trace else None
            if self.hint_decoder is None:
                return (new_hidden, hint_feats, outs), ({}, sums, states)
            hint_logits = self.hint_decoder(h_dec, e_dec, graph_fts, graph)
            force_G = jax.random.uniform(k, (graph.num_graphs,)) < tf
            nxt = {}
            for n, (loc, type_, classes) in self.hint_probes.items():
                pred = predicted_features(hint_logits[n], loc, type_, graph, hard)
                truth = truth_features(truth_next[n], loc, type_, classes, graph)
                nxt[n] = jnp.where(_broadcast(force_G, self.hint_probes[n], graph, pred), truth, pred)
            return (new_hidden, nxt, outs), (hint_logits, sums, states)

        # The last step's decoder inputs: node [N, 3H], the edge features' raw columns [E, K] (the encoders' kernels
        # are the same at every step) and edge latents [E, L], graph [G, H].
        L = self.processor.edge_latent_size
        outs0 = (jnp.zeros((graph.num_nodes, 3 * H)), jnp.zeros((graph.num_edges, self.encoder.edge_width)),
                 jnp.zeros((graph.num_edges, L)) if L else None, jnp.zeros((graph.num_graphs, H)))
        truth_seq = {n: batch.hints[n][1:num_steps + 1] for n in self.hint_probes}
        xs = (jnp.arange(num_steps), truth_seq, jax.random.split(k_steps, num_steps))
        carry0 = (jnp.zeros((graph.num_nodes, H)), hint_truth, outs0)
        # A step that no sample reaches (t + 1 >= every length, after step 0) changes nothing that is scored: its
        # hints are padding and every output is frozen. With the batch's steps padded to its pad group's bucket, a
        # sixth of the steps or more are such; `skip_padded_steps` skips their computation (carry kept, zeros out).
        last_step = jnp.max(batch.lengths) - 1

        def step_or_skip(carry, xs):
            t = xs[0]
            zeros = lambda c, x: (c, jax.tree.map(jnp.zeros_like, jax.eval_shape(step, c, x)[1]))  # noqa: E731
            return jax.lax.cond((t == 0) | (t < last_step), step, zeros, carry, xs)

        # Benchmarks unroll the loop to count every step's FLOPs, skipped or not.
        body = step_or_skip if cfg.skip_padded_steps and self.scan_unroll == 1 else step
        (_, _, last), (hint_logits, sums, states) = jax.lax.scan(body, carry0, xs, unroll=self.scan_unroll)
        stats = {n: total.sum() / jnp.maximum(count.sum(), 1) for n, (total, count) in sums.items()}
        h_last, raw_last, latent_last, graph_last = last
        edge_last = self._decoder_edges(self.encoder.edge_features(raw_last, H), latent_last)
        outs = self.output_decoder(h_last, edge_last, graph_last, graph)
        steps = cfg.sinkhorn_steps if train else cfg.sinkhorn_eval_steps
        for n, (_, type_, _) in self.output_probes.items():
            if type_ == Type.PERMUTATION_POINTER:
                x = jnp.where(graph.senders == graph.receivers, outs[n] - 1e6, outs[n])
                outs[n] = log_sinkhorn(x, graph.receivers, graph.senders, graph.num_nodes, steps,
                                       cfg.sinkhorn_temperature, k_noise if train else None)
        return Predictions(outs, hint_logits, stats, states)

    def _decoder_edges(self, edge_fts, latent):
        """What the edge decoders read: the edge features and the processor's edge latents, factored
        (`fold_edge_weights`) or as one [E, H + L] array."""
        edge_fts = edge_fts._replace(latent_ExL=latent)
        return edge_fts if self.config.fold_edge_weights else edge_fts.dense()


def use_matmul_dtype(model: nnx.Module, dtype) -> None:
    """Every `nnx.Linear` of `model` multiplies its input and kernel cast to `dtype`, accumulating in float32; the
    parameters stay float32 (the optimiser updates them in full precision) and the bias is added in float32. The
    folded edge terms (`EdgeFeatures.linear`: a few raw columns times a folded kernel) stay float32."""
    for _, module in nnx.iter_modules(model):
        if isinstance(module, nnx.Linear):
            module.dtype, module.preferred_element_type = dtype, jnp.float32
            module.promote_dtype = _cast_operands


def _cast_operands(arrays, *, dtype=None, inexact=True):
    """flax's `promote_dtype` hook for `use_matmul_dtype`: (inputs, kernel) cast to `dtype`, the bias left alone.
    A module-level function, so that two models' graph definitions compare equal (no recompilation)."""
    del inexact
    x, kernel, bias = arrays
    return x.astype(dtype), kernel.astype(dtype), bias


def _broadcast(flag_G, probe, graph: Graph, like):
    """A per-graph flag broadcast to the rows of a probe's logits or features."""
    location, type_, _ = probe
    if type_ in POINTERS:
        flag = flag_G[graph.edge_graph]
    elif location == "graph":
        flag = flag_G
    else:
        flag = flag_G[graph.node_graph]
    return flag.reshape(flag.shape + (1,) * (like.ndim - flag.ndim))
