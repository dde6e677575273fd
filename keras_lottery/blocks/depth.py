"""Depth pruning: choose ``k`` residual blocks (transformer layers) to remove, and remove them.

    names = kl.blocks.depth.select(model, calibration, k=2, criterion="block_influence")
    slim = kl.blocks.remove(model, names)        # for a KerasHub model: the same class, 2 layers fewer

``select`` understands, besides every registered per-block criterion (lowest ``k`` scores):

* ``"angular_window"``: Gromov et al.: the ``k`` *consecutive* blocks whose first input and last output
  have the smallest angular distance (:func:`keras_lottery.blocks.criteria.windows`).
* ``"sleb"``: SLEB (Song et al. 2024): ``k`` rounds; each removes, from the model already without the
  previous rounds' blocks, the one block whose removal raises the calibration loss least.

Calibration data are ``(x, y)`` batches as for :func:`keras_lottery.blocks.score` (``y`` is used by
loss-based criteria: ``sleb``, ``snip``, ``grasp``; for a causal LM, the next tokens).
"""

from __future__ import annotations

import keras
import numpy as np

from keras_lottery.blocks.criteria import lowest, score, windows
from keras_lottery.blocks.criteria.scoring import as_batches, as_loss
from keras_lottery.blocks.discovery import find_blocks
from keras_lottery.blocks.rewrite import remove, resolve_blocks

__all__ = ["calibration_loss", "prune", "select", "sleb"]


def calibration_loss(model, batches, loss):
    """Mean of ``loss(y, model(x))`` over the batches (inference mode)."""
    values = [float(keras.ops.convert_to_numpy(loss(y, model(x, training=False)))) for x, y in batches]
    return float(np.mean(values))


def sleb(model, batches, k, loss=None, candidates=None):
    """SLEB's iterative selection: ``k`` block names, in removal order (see the module docstring).

    Each round rebuilds ``model`` without the chosen blocks plus one candidate (``remove``) and
    measures the calibration loss: ``k * len(candidates)`` rebuilds and evaluations in all.
    """
    loss = as_loss(loss, model)
    found = find_blocks(model, warn=False)
    candidates = [b.name for b in (resolve_blocks(model, candidates, found) if candidates else found.removable)]
    if not isinstance(k, int) or not 0 <= k < max(len(candidates), 1):
        raise ValueError(f"k must be an int from 0 to {len(candidates) - 1} (the removable blocks minus one), got {k!r}.")
    chosen, history = [], []
    for _ in range(k):
        losses = {name: calibration_loss(remove(model, chosen + [name]), batches, loss)
                  for name in candidates if name not in chosen}
        best = min(losses, key=losses.get)
        chosen.append(best)
        history.append(losses[best])
    return chosen


def select(model, data, k, criterion="block_influence", loss=None, seed=0, **options):
    """``k`` removable block names of ``model`` to remove, by ``criterion`` (see the module docstring).

    Args:
        model: a functional model (KerasHub backbones and task models included); not modified.
        data: calibration ``(x, y)`` batches, a ``tf.data.Dataset`` or one ``(x, y)`` tuple; ``None`` for
            data-free criteria (``last``, ``random``, ``l1``, ``synflow``).
        k: how many blocks.
        criterion: a registered criterion name or callable, ``"angular_window"`` or ``"sleb"``.
        loss, seed, **options: as for :func:`keras_lottery.blocks.score` (``positions="last"`` for the
            angular criteria, ...).

    Returns:
        Block names: lowest scores first; for ``"angular_window"`` the window in graph order; for
        ``"sleb"`` the removal order.
    """
    batches = as_batches(data)
    removable = find_blocks(model, warn=False).removable
    if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= len(removable):
        raise ValueError(f"k must be an int from 0 to {len(removable)} (the removable blocks of {model.name!r}), "
                         f"got {k!r}.")
    if k == 0:
        return []
    if criterion == "sleb":
        if batches is None:
            raise ValueError("Criterion 'sleb' needs calibration data: (x, y) batches.")
        return sleb(model, batches, k, loss=loss)
    if criterion == "angular_window":
        if batches is None:
            raise ValueError("Criterion 'angular_window' needs calibration data: (x, y) batches.")
        distances = windows(model, removable, batches, k, positions=options.get("positions", "last"))
        return list(min(distances, key=distances.get))
    return lowest(score(model, batches, criterion=criterion, seed=seed, loss=loss, **options), k)


def prune(model, data, k, criterion="block_influence", loss=None, seed=0, **options):
    """``remove(model, select(model, data, k, criterion, ...))``: the slim model and the removed names."""
    names = select(model, data, k, criterion=criterion, loss=loss, seed=seed, **options)
    return remove(model, names), names
