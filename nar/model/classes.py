"""Which model class runs a config: the one place the processor's kind picks it."""

from __future__ import annotations

from nar.model.discrete import DiscreteModel
from nar.model.fsa import FSAModel
from nar.model.net import Model, ModelConfig
from nar.processors import get_processor


def model_class(model: ModelConfig) -> type[Model] | type[FSAModel] | type[DiscreteModel]:
    """GraphFSA's own model for an automaton, the discrete model for a discrete step, else encode-process-decode."""
    entry = get_processor(model.processor)
    return FSAModel if entry.automaton else DiscreteModel if entry.discrete else Model
