"""Criteria at initialization from gradients: ``snip``, ``grasp`` and ``synflow``, per-weight saliencies
summed (or averaged) per block."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_lottery.blocks.criteria.autodiff import (gradient_and_hessian_product, gradients,
                                                  has_batch_normalization, has_grouped_convolutions, twin)
from keras_lottery.blocks.criteria.registry import require_data, register
from keras_lottery.blocks.discovery import branch_weights


def _block_variable_indices(model, blocks, variables):
    """``{block name: [indices into variables]}`` for the weights of each block's branch layers."""
    position = {id(v): i for i, v in enumerate(variables)}
    result = {}
    for block in blocks:
        indices = [position[id(w)] for w in branch_weights(model, block) if id(w) in position]
        result[block.name] = list(dict.fromkeys(indices))
    return result


def _aggregate(per_weight, model, blocks, variables, aggregate):
    """Reduce per-weight saliencies (arrays aligned with ``variables``) to one float per block."""
    if aggregate not in ("sum", "mean"):
        raise ValueError(f"aggregate must be 'sum' or 'mean', got {aggregate!r}.")
    indices = _block_variable_indices(model, blocks, variables)
    out = {}
    for block in blocks:
        arrays = [np.asarray(per_weight[i], dtype=np.float64) for i in indices[block.name]]
        total = float(sum(a.sum() for a in arrays))
        count = sum(a.size for a in arrays)
        out[block.name] = total / max(count, 1) if aggregate == "mean" else total
    return out


def snip_saliency(model, batches, loss, training=True):
    """SNIP's per-weight ``|w * dL/dw|``, float64 arrays aligned with ``model.trainable_variables``.

    A model with grouped convolutions is scored on a :func:`twin` (same graph, so the same variables
    in the same order): the same function, with grouped convolutions run as depthwise ones.
    """
    fast = twin(model) if has_grouped_convolutions(model) else model
    grads = gradients(fast, batches, loss, training=training)
    return [np.abs(np.asarray(v.numpy(), np.float64) * g) for v, g in zip(fast.trainable_variables, grads)]


def grasp_saliency(model, batches, loss, training=True):
    """GraSP's per-weight ``w * (H g)`` (minus GraSP's score), on the exact-batch-norm twin of ``model``.

    Returns ``(twin, arrays)``: the arrays are aligned with ``twin.trainable_variables``, whose layers
    have ``model``'s names (the twin is ``model`` itself when it has no batch norm).
    """
    # Only batch norm needs the twin; a transformer (KerasHub backbones included) is differentiated as is.
    exact = twin(model, exact_batch_norm=True) if has_batch_normalization(model) else model
    _, hg = gradient_and_hessian_product(exact, batches, loss, training=training)
    return exact, [np.asarray(v.numpy(), np.float64) * h for v, h in zip(exact.trainable_variables, hg)]


@register("snip")
def snip(model, blocks, data, *, loss, seed, aggregate="sum", training=True):
    """SNIP: sum (or mean) over the block's weights of ``|w * dL/dw|``."""
    batches = require_data(data, "snip")
    saliency = snip_saliency(model, batches, loss, training=training)
    return _aggregate(saliency, model, blocks, model.trainable_variables, aggregate)


@register("grasp")
def grasp(model, blocks, data, *, loss, seed, aggregate="sum", training=True):
    """GraSP, sign-aware: sum (or mean) over the block's weights of ``w * (H g)`` (= minus GraSP's score)."""
    batches = require_data(data, "grasp")
    exact, saliency = grasp_saliency(model, batches, loss, training=training)
    return _aggregate(saliency, exact, blocks, exact.trainable_variables, aggregate)


# score() checks before scoring that a model with several outputs got loss= (see scoring._as_loss).
snip.uses_loss = grasp.uses_loss = True


def synflow_saliency(model):
    """SynFlow's per-weight ``|w| * dR/d|w|`` on a float64 twin of ``model`` with ``|w|``.

    Returns ``(twin, arrays)``, the arrays aligned with ``twin.trainable_variables``.
    """
    linear = twin(model, dtype="float64")
    for v in linear.weights:
        v.assign(keras.ops.abs(v.value))
    variables = linear.trainable_variables
    values = [tf.convert_to_tensor(v.value) for v in variables]
    frozen = [tf.convert_to_tensor(v.value) for v in linear.non_trainable_variables]
    ones = [tf.ones((1,) + tuple(t.shape[1:]), tf.float64) for t in linear.inputs]
    with tf.GradientTape() as tape:
        tape.watch(values)
        outputs, _ = linear.stateless_call(values, frozen, ones if len(ones) > 1 else ones[0], training=False)
        total = tf.add_n([tf.reduce_sum(o) for o in tf.nest.flatten(outputs)])
    grads = tape.gradient(total, values)
    if not np.isfinite(float(total)):
        raise FloatingPointError(f"SynFlow overflowed float64 on {model.name!r} (R = {float(total)}).")
    return linear, [np.zeros(v.shape) if g is None else (v * g).numpy() for v, g in zip(values, grads)]


@register("synflow")
def synflow(model, blocks, data, *, loss, seed, aggregate="sum"):
    """SynFlow: ``|w| * dR/d|w|`` with ``R = sum(f_|w|(1))``, in float64, batch norm in inference mode."""
    linear, saliency = synflow_saliency(model)
    return _aggregate(saliency, linear, blocks, linear.trainable_variables, aggregate)
