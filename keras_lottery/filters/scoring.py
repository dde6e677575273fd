"""Filter scores at initialization: the block criteria's per-weight saliencies, summed per channel.

Aggregation: a channel's score is the **sum of the per-weight saliency over every trainable weight the
channel owns in its group** (:attr:`ChannelGroup.slices`): its filter and bias in each source layer,
its batch-norm scale and shift and depthwise kernel in the members, and its kernel rows in every
consumer (each row once per spatial position after a ``Flatten``). Removing the channel removes all
of these weights at once, and the first-order (Taylor) effect of zeroing a set of weights is the sum
of their per-weight terms, the rule the block criteria use for a block's weights. Batch-norm moving
statistics are not trainable and get no saliency.

Criteria (low score = remove first, as for blocks):

* ``snip``: ``|w * dL/dw|`` (Lee et al. 2019);
* ``grasp``: ``w * (H g)``, sign-aware (minus GraSP's score; Wang et al. 2020), exact batch norm;
* ``synflow``: ``|w| * dR/d|w|`` (Tanaka et al. 2020), data-free;
* ``l1`` (alias ``magnitude``): ``|w|``, the L1 norm of what the channel owns (Li et al. 2017 use the
  filter alone; here the consumer rows and batch-norm weights count too);
* ``random``: uniform numbers from ``numpy.random.default_rng(seed)``, group by group in graph order.

The per-weight saliencies are those of :mod:`keras_lottery.blocks.criteria.saliency`.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_lottery.blocks.criteria.saliency import grasp_saliency, snip_saliency, synflow_saliency
from keras_lottery.blocks.criteria.scoring import as_batches, as_loss
from keras_lottery.filters.groups import check_model, find_groups

__all__ = ["CRITERIA", "channel_scores", "score", "weight_saliency"]

CRITERIA = ("grasp", "l1", "magnitude", "random", "snip", "synflow")
_NEEDS_DATA = ("grasp", "snip")


def _by_layer(model, arrays):
    """``{(layer name, weight index): array}`` for arrays aligned with ``model.trainable_variables``."""
    position = {id(v): i for i, v in enumerate(model.trainable_variables)}
    out = {}
    for layer in model.layers:
        for index, w in enumerate(layer.weights):
            if id(w) in position:
                out[(layer.name, index)] = arrays[position[id(w)]]
    return out


def weight_saliency(model, criterion, batches=None, loss=None):
    """Per-weight saliency of ``criterion`` as ``{(layer name, weight index): float64 array}`` (trainable weights).

    ``batches``: a list of ``(x, y)`` batches (``snip`` and ``grasp``); ``loss``: a ``loss(y_true, y_pred)``
    callable (default: sparse categorical cross-entropy from logits).
    """
    loss = as_loss(loss, model)
    if criterion == "snip":
        return _by_layer(model, snip_saliency(model, batches, loss))
    if criterion == "grasp":
        return _by_layer(*grasp_saliency(model, batches, loss))
    if criterion == "synflow":
        return _by_layer(*synflow_saliency(model))
    if criterion in ("l1", "magnitude"):
        return _by_layer(model, [np.abs(np.asarray(keras.ops.convert_to_numpy(v.value), np.float64))
                                 for v in model.trainable_variables])
    raise ValueError(f"Unknown filter criterion {criterion!r}; accepted: {', '.join(CRITERIA)}.")


def channel_scores(group, saliency):
    """One float per channel of ``group``: the sum of ``saliency`` over the weight slices it owns."""
    total = np.zeros(group.size, np.float64)
    for s in group.slices:
        array = saliency.get((s.layer, s.weight))
        if array is None:
            continue  # not trainable (batch-norm statistics)
        per_index = np.moveaxis(array, s.axis, 0).reshape(array.shape[s.axis], -1).sum(axis=1)
        # row s * stride + offset + c belongs to channel c, for every spatial position s < repeat
        spread = np.arange(s.repeat)[:, None] * s.stride + s.offset + np.arange(group.size)[None, :]
        total += per_index[spread].sum(axis=0)
    return total


def score(model, data=None, criterion="snip", seed=0, loss=None, groups=None):
    """Score every channel of ``model``'s prunable groups; low score = remove first.

    Args:
        model: a functional ``keras.Model`` (not modified).
        data: ``(x, y)`` batches as for :func:`keras_lottery.blocks.score` (a ``tf.data.Dataset``, an
            iterable of batches or one tuple); needed by ``snip`` and ``grasp``.
        criterion: one of :data:`CRITERIA` (see the module docstring).
        seed: seeds ``random``.
        loss: as for :func:`keras_lottery.blocks.score`.
        groups: the groups to score (default: the prunable groups of :func:`find_groups`).

    Returns:
        ``{group name: float64 array of one score per channel}``, in group order.
    """
    check_model(model, "filters.score")
    if criterion not in CRITERIA:
        raise ValueError(f"Unknown filter criterion {criterion!r}; accepted: {', '.join(CRITERIA)}.")
    batches = as_batches(data)
    if criterion in _NEEDS_DATA and batches is None:
        raise ValueError(f"Filter criterion {criterion!r} needs data: (x, y) batches.")
    groups = find_groups(model).prunable if groups is None else list(groups)
    if not groups:
        raise ValueError(f"{model.name!r} has no prunable channel group to score.")
    if criterion == "random":
        rng = np.random.default_rng(seed)
        return {g.name: rng.random(g.size) for g in groups}
    saliency = weight_saliency(model, criterion, batches, loss)
    out = {}
    for g in groups:
        values = channel_scores(g, saliency)
        if not np.all(np.isfinite(values)):
            raise ValueError(f"Filter criterion {criterion!r} gave group {g.name!r} a non-finite score.")
        out[g.name] = values
    return out
