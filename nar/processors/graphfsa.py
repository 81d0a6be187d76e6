"""GraphFSA (Grötschla et al. 2024): the same learned finite-state automaton runs on every node.

Each node holds one of S states. In a step every node v counts its in-neighbours u (edges u -> v, self-loops
excluded) in each state c, capped at k, and reads the counts as one "character" in base k + 1:

    a_vc = min(k, #{u -> v : s_u = c}),   x_v = sum_c a_vc (k + 1)^c   in [0, (k + 1)^S)
    s_v <- T[x_v, s_v]                     with a transition table T of shape [(k + 1)^S, S, S]

Training follows the released Diff-FSA: states are distributions over S, the table's rows are softmax(T_raw) over
the next state, and s_v <- sum_s s_v[s] T[x_v, s, :] (a stochastic-matrix step). Counts come from the soft
neighbour states rounded, a_vc = #{r < k : sum_u s_uc > r + 1/2}, so the character is hard: gradients flow through
each node's own chain and the table, not through its neighbours (as in the released code). Evaluation is hard:
one-hot states and the arg-max table. Everything is vectorised over nodes and graphs (a segment sum over edges and
a gather of [N, S, S] table rows), so it runs jitted on batches and on large sparse graphs.

`FSA_HINTS` says which CLRS algorithms have a finite node state the automaton can track (see `nar.model.fsa`).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from nar.processors.base import Graph

#: Largest transition table accepted (entries): (k + 1)^S * S^2.
MAX_TABLE_ENTRIES = 1 << 24

#: The finite node hint GraphFSA tracks per algorithm, and why the others are out of its reach.
FSA_HINTS = {"bfs": "reach_h", "dfs": "color"}
FSA_UNSUPPORTED = {
    "bellman_ford": "its state is d, an unbounded real distance per node, and pi, a pointer naming a neighbour",
    "insertion_sort": "a sort's state is a permutation of keys (pointers and real keys), not a finite node state",
    "bubble_sort": "a sort's state is a permutation of keys (pointers and real keys), not a finite node state",
    "heapsort": "a sort's state is a permutation of keys (pointers and real keys), not a finite node state",
    "quicksort": "a sort's state is a permutation of keys (pointers and real keys), not a finite node state",
}


def check_fsa_algorithm(algorithm: str) -> str:
    """The hint GraphFSA tracks for `algorithm`; a ValueError that says why for the others."""
    if algorithm in FSA_HINTS:
        return FSA_HINTS[algorithm]
    why = FSA_UNSUPPORTED.get(algorithm, "it has no finite node hint")
    raise ValueError(f"graphfsa cannot represent {algorithm}: {why}. A finite automaton per node only holds a "
                     f"bounded state; use a neural processor (mpnn, pgn, triplet_gmpnn, ...). GraphFSA supports: "
                     f"{', '.join(FSA_HINTS)}")


def count_edges(graph: Graph):
    """[E] 1.0 for the edges a node counts (not self-loops; padding edges join padding nodes, whose state is 0)."""
    return (jnp.asarray(graph.senders) != jnp.asarray(graph.receivers)).astype(jnp.float32)


class GraphFSA(nnx.Module):
    """The automaton: S states, bound k, table logits T_raw [(k + 1)^S, S, S] initialised U(0, 1) as in Diff-FSA."""

    def __init__(self, states: int, bound: int = 1, *, rngs: nnx.Rngs):
        if states < 2 or bound < 1:
            raise ValueError(f"GraphFSA needs at least 2 states and a bound k >= 1, got states={states}, "
                             f"bound={bound}")
        chars = (bound + 1) ** states
        if chars * states * states > MAX_TABLE_ENTRIES:
            raise ValueError(f"GraphFSA with {states} states and bound {bound} has a table of {chars} x {states} x "
                             f"{states} entries, over the limit of {MAX_TABLE_ENTRIES}: use fewer states or a "
                             f"smaller bound")
        self.states, self.bound, self.chars = states, bound, chars
        self.table = nnx.Param(jax.random.uniform(rngs.params(), (chars, states, states)))

    def counts(self, state_NxS, graph: Graph):
        """[N, S] capped neighbour counts a_vc in 0..k (hard, from rounded soft sums: the thresholds pass no
        gradient to the neighbours)."""
        senders, receivers = jnp.asarray(graph.senders), jnp.asarray(graph.receivers)
        msg_ExS = state_NxS[senders] * count_edges(graph)[:, None]
        total_NxS = jax.ops.segment_sum(msg_ExS, receivers, graph.num_nodes)
        return sum((total_NxS > r + 0.5).astype(jnp.int32) for r in range(self.bound))

    def characters(self, state_NxS, graph: Graph):
        """[N] int32 character x_v = sum_c a_vc (k + 1)^c."""
        place_S = (self.bound + 1) ** jnp.arange(self.states, dtype=jnp.int32)
        return self.counts(state_NxS, graph) @ place_S

    def transitions(self, hard: bool):
        """[(k + 1)^S, S, S] rows over the next state: softmax (training) or one-hot arg-max (evaluation)."""
        t = self.table[...]
        return jax.nn.one_hot(jnp.argmax(t, -1), self.states) if hard else jax.nn.softmax(t, -1)

    def __call__(self, state_NxS, graph: Graph, *, hard: bool = False):
        """One synchronous step of every node: [N, S] state distributions -> [N, S]."""
        P_NxSxS = self.transitions(hard)[self.characters(state_NxS, graph)]
        return jnp.einsum("ns,nst->nt", state_NxS, P_NxSxS)

    def absorbing_penalty(self, finals):
        """Diff-FSA's final-state loss: the probability mass a final state gives to any other state, summed over
        characters (0 when every final state is absorbing)."""
        P = jax.nn.softmax(self.table[...], -1)
        finals = jnp.asarray(finals, jnp.int32)
        stay = P[:, finals, finals]  # [X, F]
        return jnp.sum(1.0 - stay)

    def describe(self, state_names=None, used=None) -> str:
        """The hard automaton as a readable table: one line per (state, neighbour counts) that changes the state.

        `used` ([(k + 1)^S, S] counts, e.g. from `usage`) keeps only transitions taken on data and shows how
        often; without it every non-identity transition is listed.
        """
        S, k = self.states, self.bound
        names = list(state_names) if state_names is not None else [str(s) for s in range(S)]
        nxt = np.asarray(jnp.argmax(self.table[...], -1))
        lines = [f"GraphFSA: {S} states; [{names[0]}:1] = one neighbour in state {names[0]}; counts are capped at "
                 f"{k} ({k} means {k} or more); "
                 + ("(Nx): times taken on the data" if used is not None else "transitions not listed keep the state")]
        for x, counts in enumerate(itertools.product(range(k + 1), repeat=S)):
            counts = counts[::-1]  # itertools varies the last digit fastest; x's digit c is the count of state c
            for s in range(S):
                if used is not None and used[x, s] == 0:
                    continue
                if used is None and nxt[x, s] == s:
                    continue
                seen = ", ".join(f"{names[c]}:{counts[c]}" for c in range(S) if counts[c]) or "none"
                times = f"   ({int(used[x, s])}x)" if used is not None else ""
                lines.append(f"  {names[s]:>8} + neighbours [{seen}] -> {names[nxt[x, s]]}{times}")
        return "\n".join(lines)

    def usage(self, state_NxS, graph: Graph, weight_N=None):
        """[(k + 1)^S, S] how many (weighted) nodes take each transition from the hard state `state_NxS`."""
        x_N = self.characters(state_NxS, graph)
        w_N = jnp.ones(graph.num_nodes) if weight_N is None else weight_N
        flat = x_N * self.states + jnp.argmax(state_NxS, -1)
        used = jax.ops.segment_sum(w_N * state_NxS.sum(-1), flat, self.chars * self.states)
        return used.reshape(self.chars, self.states)

    def usage_over(self, state_NxS, graph: Graph, live_TxN):
        """`usage` summed over a hard run of len(live_TxN) steps from `state_NxS`, node v counted at step t with
        weight live_TxN[t, v] (for `describe`)."""
        used = 0
        for live_N in live_TxN:
            used = used + self.usage(state_NxS, graph, live_N)
            state_NxS = self(state_NxS, graph, hard=True)
        return np.asarray(used)
