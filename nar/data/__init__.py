"""Samplers, datasets and their on-disk store."""

from nar.data.dataset import (
                               BLOCK,
                               CLRS_TRAIN_P,
                               CLRS_TRAIN_SIZES,
                               GENERATOR_VERSION,
                               Dataset,
                               clrs_train,
                               generate,
                               resolve_config,
)
from nar.data.graphs import GRAPH_FAMILIES, EdgeList, from_dense, sample_graph, to_dense

__all__ = ["BLOCK", "CLRS_TRAIN_P", "CLRS_TRAIN_SIZES", "GENERATOR_VERSION", "GRAPH_FAMILIES", "Dataset", "EdgeList",
           "clrs_train", "from_dense", "generate", "resolve_config", "sample_graph", "to_dense"]
