"""Criteria for trained models from how much a block changes its input, on calibration data:
``block_influence`` (ShortGPT) and ``angular`` (Gromov et al.), and the position baseline ``last``.

* ``block_influence``: ``1 - cos(x, y)`` between the block's input ``x`` and output ``y``, per token
  (per position for images), averaged over the calibration tokens (padding excluded when the input
  has a ``padding_mask``) (Men et al. 2024, arXiv 2403.03853). A block that barely turns its input
  scores low: remove first.
* ``angular``: ``arccos(cos(x, y)) / pi``, the angular distance of Gromov et al. (arXiv 2403.17887) for
  one block (``n=1``), averaged the same way, or at the last non-padding token with
  ``positions="last"`` (the paper's choice). :func:`windows` gives the distance over ``n``
  consecutive blocks, for removing the most redundant run of ``n``.
* ``last``: ``-position`` in graph order: ``lowest(scores, k)`` names the last ``k`` blocks.
"""

from __future__ import annotations

import numpy as np

from keras_lottery.blocks.criteria.registry import register, require_data
from keras_lottery.blocks.probe import block_io, token_weights

__all__ = ["angular", "block_influence", "cosines", "last", "windows"]


def _cosine(x, y):
    x, y = x.astype(np.float64), y.astype(np.float64)
    norms = np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1)
    return np.clip(np.sum(x * y, axis=-1) / np.maximum(norms, 1e-12), -1.0, 1.0)


def _last_position(weights):
    """Weights keeping only each example's last weighted position of a (batch, positions) mask."""
    out = np.zeros_like(weights)
    flat = weights.reshape(weights.shape[0], -1)
    for i, row in enumerate(flat):
        nonzero = np.flatnonzero(row)
        if nonzero.size:
            out.reshape(flat.shape)[i, nonzero[-1]] = 1.0
    return out


def cosines(model, pairs, batches, positions="all", transform=None):
    """Mean over calibration positions of ``transform(cos(a, b))`` for each named pair of block tensors.

    ``pairs``: ``{key: (block whose input is a, block whose output is b)}``. ``positions``: ``"all"``
    (weighted by the padding mask) or ``"last"`` (each sequence's last non-padding position).
    """
    if positions not in ("all", "last"):
        raise ValueError(f"positions must be 'all' or 'last', got {positions!r}.")
    blocks = list({b.name: b for pair in pairs.values() for b in pair}.values())
    sums, counts = dict.fromkeys(pairs, 0.0), dict.fromkeys(pairs, 0.0)
    for x, io in block_io(model, blocks, batches):
        for key, (first, second) in pairs.items():
            a, b = io[first.name][0], io[second.name][1]
            values = _cosine(a, b)
            values = transform(values) if transform is not None else values
            weights = token_weights(x, a)
            if positions == "last" and weights.ndim >= 2:
                weights = _last_position(weights)
            sums[key] += float(np.sum(values * weights))
            counts[key] += float(np.sum(weights))
    return {key: sums[key] / max(counts[key], 1e-12) for key in pairs}


def _angle(cos):
    return np.arccos(cos) / np.pi


@register("block_influence")
def block_influence(model, blocks, data, *, loss, seed, positions="all"):
    """ShortGPT's Block Influence ``1 - cos(x, y)``, averaged over calibration tokens."""
    batches = require_data(data, "block_influence")
    cos = cosines(model, {b.name: (b, b) for b in blocks}, batches, positions)
    return {name: 1.0 - value for name, value in cos.items()}


@register("angular")
def angular(model, blocks, data, *, loss, seed, positions="all"):
    """Angular distance ``arccos(cos(x, y)) / pi`` between a block's input and output (Gromov et al., n=1)."""
    batches = require_data(data, "angular")
    return cosines(model, {b.name: (b, b) for b in blocks}, batches, positions, transform=_angle)


def windows(model, blocks, batches, n, positions="last"):
    """``{(names of n consecutive blocks): angular distance from the first's input to the last's output}``.

    ``blocks`` in graph order; windows never span two nested models or two container layers (what lies
    between them is not a block). Gromov et al. prune the window with the smallest distance.
    """
    if not isinstance(n, int) or not 1 <= n <= len(blocks):
        raise ValueError(f"n must be an int between 1 and the number of blocks ({len(blocks)}), got {n!r}.")
    pairs = {}
    for i in range(len(blocks) - n + 1):
        run = blocks[i:i + n]
        if len({(b.path, b.container) for b in run}) == 1:
            pairs[tuple(b.name for b in run)] = (run[0], run[-1])
    if not pairs:
        raise ValueError(f"No {n} consecutive blocks lie in one model.")
    return cosines(model, pairs, batches, positions, transform=_angle)


@register("last")
def last(model, blocks, data, *, loss, seed):
    """Minus the position in graph order: the last blocks score lowest (the "drop the last n layers" baseline)."""
    return {block.name: -float(i) for i, block in enumerate(blocks)}
