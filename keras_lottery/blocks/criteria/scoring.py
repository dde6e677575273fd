"""The public entry points: :func:`score` (data and loss normalised, result checked) and :func:`lowest`."""

from __future__ import annotations

import math

import keras
import numpy as np

from keras_lottery.blocks.criteria.registry import get
from keras_lottery.blocks.discovery import find_blocks
from keras_lottery.graph import is_functional
from keras_lottery.blocks.rewrite import resolve_blocks


def _as_batches(data):
    """``data`` as a list of ``(x, y)`` batches: from a ``tf.data.Dataset``/iterable of batches or one tuple."""
    if data is None:
        return None
    if isinstance(data, tuple) and len(data) in (2, 3) and not isinstance(data[0], tuple):
        return [(data[0], data[1])]
    if isinstance(data, (str, bytes, np.ndarray)) or not hasattr(data, "__iter__"):
        raise TypeError(f"data must be a tf.data.Dataset of (x, y) batches, an iterable of (x, y) batches or one "
                        f"(x, y) tuple; got {type(data).__name__!r}.")
    batches = []
    for item in data:
        if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
            raise TypeError(f"Each batch of data must be an (x, y) pair, got {type(item).__name__!r}"
                            f"{' of length ' + str(len(item)) if isinstance(item, (tuple, list)) else ''}.")
        batches.append((item[0], item[1]))
    if not batches:
        raise ValueError("data holds no batch (an empty dataset? check .take(n)).")
    return batches


def _as_loss(loss, model=None):
    """``loss`` as a callable ``loss(y_true, y_pred)``; per-output losses (list or dict) for models with several outputs."""
    outputs = list(getattr(model, "output_names", None) or ()) if model is not None else []
    if len(outputs) > 1:
        return _multi_output_loss(loss, model, outputs)
    if loss is None:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    elif isinstance(loss, str):
        loss = keras.losses.get(loss)
    if isinstance(loss, keras.losses.Loss):
        # Loss.__call__ divides by the replica count inside a tf.distribute scope (it expects to be
        # summed over replicas); scoring sees whole batches once, so reduce the per-example values here.
        per_example = loss.call
        return lambda y_true, y_pred: keras.ops.mean(per_example(y_true, y_pred))
    if callable(loss):
        # Keras loss functions ("mse" -> mean_squared_error) return one value per example: take the mean,
        # as for Loss objects, rather than letting the gradient sum them.
        return lambda y_true, y_pred: keras.ops.mean(loss(y_true, y_pred))
    raise TypeError(f"loss must be None, a Keras loss name or a callable loss(y_true, y_pred), got {loss!r}.")


def _multi_output_loss(loss, model, outputs):
    """The sum of per-output losses for a model with several outputs (``loss`` a list, tuple or dict)."""
    if isinstance(loss, dict):
        unknown = sorted(set(loss) - set(outputs))
        if unknown or len(loss) != len(outputs):
            raise ValueError(f"loss= for {model.name!r} must give one loss per output {outputs}; got keys {sorted(loss)}.")
        loss = [loss[name] for name in outputs]
    if loss is None or isinstance(loss, (str, keras.losses.Loss)):
        message = (f"{model.name!r} has {len(outputs)} outputs {outputs}: pass loss= as a list of one loss per "
                   f"output (e.g. loss=['sparse_categorical_crossentropy', 'mse']), a dict by output name, or "
                   f"a callable loss(y_true, y_pred) taking the lists of targets and outputs.")

        def missing(y_true, y_pred):  # raised by a criterion that uses a loss; data-free ones need none
            raise ValueError(message)

        missing.missing = message
        return missing
    if not isinstance(loss, (list, tuple)):
        return _as_loss(loss)  # a callable on the lists of targets and outputs
    if len(loss) != len(outputs):
        raise ValueError(f"loss= for {model.name!r} has {len(loss)} entries; the model has {len(outputs)} outputs "
                         f"{outputs}.")
    parts = [_as_loss(item) for item in loss]

    def total(y_true, y_pred):
        targets, predictions = keras.tree.flatten(y_true), keras.tree.flatten(y_pred)
        if len(targets) != len(parts):
            raise ValueError(f"{model.name!r} has {len(parts)} outputs {outputs}; each batch's y must hold one "
                             f"target per output, got {len(targets)}.")
        return sum(part(t, p) for part, t, p in zip(parts, targets, predictions))

    return total


def score(model, data=None, criterion="grasp", seed=0, loss=None, blocks=None, **options):
    """Score the removable residual blocks of ``model``; low score = remove first.

    Args:
        model: a functional ``keras.Model`` (not modified: no weight or batch-norm statistic changes).
        data: a ``tf.data.Dataset`` of ``(x, y)`` batches (bound it with ``.take(n)``), an iterable of
            batches, or one ``(x, y)`` tuple. Required by every criterion except ``synflow``,
            ``random`` and ``l1``.
        criterion: a registered name (see :func:`names`) or a callable with the criterion signature.
        seed: seed for criteria that draw random numbers.
        loss: ``None`` (sparse categorical cross-entropy from logits), a Keras loss name or callable. A
            model with several outputs needs ``loss=``: a list (or dict by output name) of one loss per
            output, summed, with ``y`` holding one target per output; or a callable taking the lists.
            Without it, a ``ValueError`` names the outputs before any scoring starts. ``kl`` and
            ``cka`` compare the first output (or ``layer=``).
        blocks: the blocks to score (default: every removable block of :func:`find_blocks`).
        **options: passed to the criterion (e.g. ``aggregate="mean"``, ``layer="pool"``).

    Returns:
        ``{block name: float}``, one entry per scored block, in the order of ``blocks`` (graph order of the
        removable blocks by default).
    """
    if not isinstance(model, keras.Model) or not is_functional(model):
        raise TypeError(f"score needs a functional keras.Model, got {type(model).__name__!r}.")
    fn = criterion if callable(criterion) else get(criterion)
    found = find_blocks(model, warn=False)
    if blocks is None:
        blocks = found.removable
    else:
        blocks = resolve_blocks(model, blocks, found)
    if not blocks:
        raise ValueError(f"Nothing to score: {found.message}")
    loss = _as_loss(loss, model)
    if getattr(fn, "uses_loss", False) and getattr(loss, "missing", None):
        raise ValueError(loss.missing)  # before any work, rather than from inside a traced function
    result = fn(model, list(blocks), _as_batches(data), loss=loss, seed=seed, **options)
    expected = [b.name for b in blocks]
    if not isinstance(result, dict) or set(result) != set(expected):
        got = sorted(result) if isinstance(result, dict) else type(result).__name__
        raise ValueError(f"Criterion {getattr(fn, '__name__', fn)!r} must return a dict with one score per block "
                         f"{expected}; got {got}.")
    out = {}
    for name in expected:
        value = float(result[name])
        if not math.isfinite(value):
            raise ValueError(f"Criterion {getattr(fn, '__name__', fn)!r} gave block {name!r} the non-finite "
                             f"score {value}.")
        out[name] = value
    return out


def lowest(scores, k):
    """The ``k`` block names with the lowest scores (remove first), lowest first.

    Ties are broken by the order of ``scores`` (graph order for :func:`score`'s output), so the result
    is deterministic.
    """
    if not isinstance(scores, dict):
        raise TypeError(f"scores must be a dict block name -> float, got {type(scores).__name__!r}.")
    if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= len(scores):
        raise ValueError(f"k must be an int between 0 and the number of scored blocks ({len(scores)}), got {k!r}.")
    values = {}
    for name, value in scores.items():
        value = float(value)
        if math.isnan(value):
            raise ValueError(f"Score of block {name!r} is NaN; cannot rank it.")
        values[name] = value
    ranked = sorted(enumerate(values.items()), key=lambda item: (item[1][1], item[0]))
    return [name for _, (name, _) in ranked[:k]]


# Public names for the other scorers of the package (filters): the same data and loss conventions.
as_batches = _as_batches
as_loss = _as_loss
