"""Weight-only baselines: ``random`` (data-free) and ``l1`` (for trained models)."""

from __future__ import annotations

import numpy as np

from keras_lottery.blocks.criteria.registry import register


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
        total = 0.0
        for layer_name in block.branch_layers:
            for w in model.get_layer(layer_name).trainable_weights:
                total += float(np.abs(np.asarray(w.numpy(), np.float64)).sum())
        out[block.name] = total
    return out
