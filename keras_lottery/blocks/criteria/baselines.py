"""Weight-only baselines: ``random`` (data-free) and ``l1`` (for trained models)."""

from __future__ import annotations

import numpy as np

from keras_lottery.blocks.criteria.registry import register
from keras_lottery.blocks.discovery import branch_weights


@register("random")
def random_scores(model, blocks, data, *, loss, seed):
    """Uniform random scores from ``numpy.random.default_rng(seed)``, drawn in graph order."""
    rng = np.random.default_rng(seed)
    return {block.name: float(value) for block, value in zip(blocks, rng.random(len(blocks)))}


@register("l1")
def l1(model, blocks, data, *, loss, seed):
    """Sum of ``|w|`` over the trainable weights of the block's branch layers."""
    out = {}
    for block in blocks:
        out[block.name] = float(sum(np.abs(np.asarray(w.numpy(), np.float64)).sum()
                                    for w in branch_weights(model, block, trainable_only=True)))
    return out
