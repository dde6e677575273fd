"""Criteria reading the blocks' branch outputs on data: ``expectabs``, ``hrank`` and ``pls``."""

from __future__ import annotations

import keras
import numpy as np

import keras_lottery.blocks.pls as pls_math
from keras_lottery.blocks.criteria.registry import require_data, register
from keras_lottery.blocks.discovery import operations


def model_inputs(model):
    """The model's inputs in the structure a call expects (a single tensor for one input)."""
    return model.inputs[0] if len(model.inputs) == 1 else model.inputs


def branch_outputs(model, blocks, batches):
    """Yield, per batch, ``{block name: branch output array}`` (inference mode).

    Branch outputs are read from the model's own graph, so blocks inside nested models (whose tensors
    the outer graph does not hold) are refused with a ``ValueError`` naming the criteria that score them.
    """
    tensors = []
    for block in blocks:
        if block.path:
            raise ValueError(f"Block {block.name!r} lies inside the nested model {'/'.join(block.path)!r}, whose "
                             f"branch outputs are not tensors of {model.name!r}'s graph; activation criteria "
                             f"(expectabs, hrank, pls) cannot read them. Score it with grasp, snip, synflow, l1, "
                             f"random, kl or cka.")
        if block.kind == "sublayer":
            raise ValueError(f"Block {block.name!r} is applied inside the call of {block.container!r}: its output is "
                             f"no tensor of a graph; activation criteria (expectabs, hrank, pls) cannot read it. "
                             f"Score it with block_influence, angular, grasp, snip, l1, random, kl or cka.")
        layer = operations(model, block, [block.branch_output])[0]
        try:
            tensors.append(layer.output)
        except (AttributeError, ValueError) as error:
            raise ValueError(f"Block {block.name!r}: the output of {layer.name!r} is ambiguous (a shared layer); "
                             f"activation criteria need single-call branch outputs.") from error
    probe = keras.Model(model_inputs(model), tensors)
    for x, _ in batches:
        outputs = probe(x, training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        yield {block.name: keras.ops.convert_to_numpy(o) for block, o in zip(blocks, outputs)}


@register("expectabs")
def expectabs(model, blocks, data, *, loss, seed):
    """Mean absolute activation of the block's branch output over ``data``."""
    batches = require_data(data, "expectabs")
    sums, counts = {b.name: 0.0 for b in blocks}, {b.name: 0 for b in blocks}
    for outputs in branch_outputs(model, blocks, batches):
        for name, a in outputs.items():
            sums[name] += float(np.abs(a.astype(np.float64)).sum())
            counts[name] += a.size
    return {name: sums[name] / counts[name] for name in sums}


@register("hrank")
def hrank(model, blocks, data, *, loss, seed, tolerance=None):
    """Mean rank of the branch output's feature maps (one ``H x W`` matrix per example and channel)."""
    batches = require_data(data, "hrank")
    sums, counts = {b.name: 0.0 for b in blocks}, {b.name: 0 for b in blocks}
    channels_first = keras.config.image_data_format() == "channels_first"
    for outputs in branch_outputs(model, blocks, batches):
        for name, a in outputs.items():
            if a.ndim != 4:
                raise ValueError(f"hrank needs 2D feature maps (batch, H, W, C); block {name!r} outputs shape "
                                 f"{a.shape}.")
            maps = a if channels_first else np.transpose(a, (0, 3, 1, 2))
            ranks = np.linalg.matrix_rank(maps.astype(np.float64), tol=tolerance)
            sums[name] += float(ranks.sum())
            counts[name] += ranks.size
    return {name: sums[name] / counts[name] for name in sums}


def _pooled(a, pooling):
    """Per-example channel features of a branch output: global max/avg over the spatial axes."""
    if a.ndim == 2:
        return a
    channels_first = keras.config.image_data_format() == "channels_first"
    spatial = tuple(range(2, a.ndim)) if channels_first else tuple(range(1, a.ndim - 1))
    return a.max(axis=spatial) if pooling == "max" else a.mean(axis=spatial)


def _responses(labels):
    """Labels as a response matrix: one-hot columns for integer labels, as given for one-hot/probabilities."""
    y = np.concatenate([np.asarray(keras.ops.convert_to_numpy(b)) for b in labels])
    if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
        y = y.reshape(-1)
        if not np.issubdtype(y.dtype, np.integer) and not np.all(y == np.round(y)):
            raise ValueError("pls needs class labels: integers, or one-hot rows.")
        return (y[:, None] == np.unique(y)[None, :]).astype(np.float64)
    return y.reshape(y.shape[0], -1).astype(np.float64)


@register("pls")
def pls(model, blocks, data, *, loss, seed, components=2, pooling="max"):
    """Discriminative power of the block's branch output for the labels, by PLS + VIP (Jordao et al. 2020).

    Our reading of their layer criterion: each block's branch output is pooled to one feature per
    channel (global ``pooling``: ``"max"`` or ``"avg"``) and projected on ``components`` PLS
    components against the one-hot labels; a second PLS on all blocks' projections together gives
    every projected feature a VIP score, and a block scores the mean VIP of its features. A block whose
    output carries no label information (e.g. constant) scores 0.
    """
    if pooling not in ("max", "avg"):
        raise ValueError(f"pooling must be 'max' or 'avg', got {pooling!r}.")
    batches = require_data(data, "pls")
    y = _responses([labels for _, labels in batches])
    if y.shape[0] < 2 or y.shape[1] < 2:
        raise ValueError(f"pls needs at least 2 examples of at least 2 classes; data has {y.shape[0]} examples "
                         f"and {y.shape[1]} class(es).")
    features = {b.name: [] for b in blocks}
    for outputs in branch_outputs(model, blocks, batches):
        for name, a in outputs.items():
            features[name].append(_pooled(a.astype(np.float64), pooling))
    latent, owner = [], []
    for block in blocks:
        scores = pls_math.fit(np.concatenate(features[block.name]), y, components).scores
        latent.append(scores)
        owner += [block.name] * scores.shape[1]
    importance = pls_math.vip(np.concatenate(latent, axis=1), y, components) if owner else np.zeros(0)
    out = {}
    for block in blocks:
        mine = [v for name, v in zip(owner, importance) if name == block.name]
        out[block.name] = float(np.mean(mine)) if mine else 0.0
    return out
