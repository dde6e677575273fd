"""Batch normalization through TensorFlow's fused kernel, for Keras 3 models on the TensorFlow backend.

Keras 3's ``BatchNormalization`` computes its moments and the normalization with separate ops (a mean,
a squared difference, a second mean, then ``x * scale + offset``): on a CPU without XLA that is several
passes over every activation, where tf_keras called the single fused kernel ``FusedBatchNormV3``. On the
zoo's ResNet-20 the fused kernel makes a training step markedly faster (docs/weight_tickets.md, "Training
speed": ``experiments.bench_step``).

:func:`fuse_batch_norm` changes how a model's ``BatchNormalization`` layers compute, not what: each
layer instance keeps its class, variables, config and saved form (its ``call`` is replaced on the
instance). The result is Keras' own up to float rounding: the fused kernel normalizes with the biased
batch variance, as Keras does, and returns the unbiased one, which is scaled back by ``(n - 1) / n``
before the moving variance is updated with Keras' formula. A call the fused kernel cannot serve (a
mask, renormalization, ``synchronized=True``, inputs that are not float32 rank-4 channels-last) runs
Keras' own ``call``.
"""

import keras
import tensorflow as tf

from keras_lottery import compat

__all__ = ["fuse_batch_norm", "is_fused"]

_FUSED = "_keras_lottery_fused_call"


def fuse_batch_norm(model):
    """Makes every ``BatchNormalization`` layer of ``model`` (at any depth) use the fused kernel; returns
    how many layers now do. Does nothing on other backends (returns 0). Calling it again is harmless."""
    if keras.backend.backend() != "tensorflow":
        return 0
    count = 0
    for layer in _batch_norm_layers(model):
        if not is_fused(layer):
            fused = _fused_call(layer, layer.call)
            setattr(layer, _FUSED, fused)
            layer.call = fused
        count += 1
    return count


def is_fused(layer):
    """Whether :func:`fuse_batch_norm` replaced ``layer``'s call (and it was not replaced again since)."""
    fused = getattr(layer, _FUSED, None)
    return fused is not None and layer.__dict__.get("call") is fused


def _batch_norm_layers(model):
    seen, stack, out = set(), [model], []
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, keras.layers.BatchNormalization):
            out.append(layer)
        stack.extend(compat.sublayers(layer))  # nested models and layers of layers
    return out


def _fusable(layer, inputs, mask):
    return (mask is None and not layer.renorm and not layer.synchronized and len(inputs.shape) == 4
            and layer.axis in (-1, 3) and inputs.dtype == "float32" and layer.compute_dtype == "float32")


def _fused_call(layer, keras_call):
    def call(inputs, training=None, mask=None):
        if not _fusable(layer, inputs, mask):
            return keras_call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        scale = layer.gamma if layer.scale else tf.ones([channels], inputs.dtype)
        offset = layer.beta if layer.center else tf.zeros([channels], inputs.dtype)
        if not (training and layer.trainable):  # Keras: a frozen layer normalizes with its moving statistics
            y, *_ = tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=scale, offset=offset, mean=layer.moving_mean, variance=layer.moving_variance,
                epsilon=layer.epsilon, data_format="NHWC", is_training=False)
            return y
        empty = tf.constant([], inputs.dtype)
        y, mean, unbiased_variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=scale, offset=offset, mean=empty, variance=empty, epsilon=layer.epsilon,
            exponential_avg_factor=1.0, data_format="NHWC", is_training=True)
        count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), inputs.dtype)
        variance = unbiased_variance * tf.maximum(count - 1.0, 0.0) / count  # Keras keeps the biased one
        momentum = layer.momentum
        layer.moving_mean.assign(layer.moving_mean * momentum + tf.stop_gradient(mean) * (1.0 - momentum))
        layer.moving_variance.assign(layer.moving_variance * momentum
                                     + tf.stop_gradient(variance) * (1.0 - momentum))
        return y

    return call
