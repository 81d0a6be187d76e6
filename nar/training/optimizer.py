"""The optimiser a run trains with, built from the config in one place (`make_optimizer`): what checkpoints save
as `opt_state`, so a resumed run and `nar.train.load_run` rebuild the same structure from the same config."""

from __future__ import annotations

import optax

from nar.config import Config
from nar.grokfast import with_clip


def make_optimizer(config: Config) -> optax.GradientTransformation:
    """CLRS's optimiser: gradients clipped to global norm `grad_clip` (and Grokfast's filter, if `train.grokfast`
    asks for it, in `train.grokfast_order`), then Adam at `learning_rate`."""
    t = config.train
    return optax.chain(*with_clip(t, optax.clip_by_global_norm(t.grad_clip)), optax.scale_by_adam(),
                       optax.scale(-t.learning_rate))
