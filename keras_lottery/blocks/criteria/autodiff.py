"""Autodiff for the criteria: batch-averaged gradients and Hessian-vector products, and the model twin
(optionally float64, optionally with :class:`ExactBatchNormalization`) they run on.

TensorFlow-specific (``tf.GradientTape``, ``tf.function``).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_lottery import compat, layers
from keras_lottery.masking import copy_weights


def gradients(model, batches, loss, training=True, offset=None):
    """Loss gradients w.r.t. ``model.trainable_variables``, averaged over batches, as arrays of the variables' dtype.

    TensorFlow-specific (``tf.GradientTape`` in a ``tf.function``, traced once per batch shape). The
    model runs through ``stateless_call``, so neither weights nor batch-norm statistics change. With
    ``offset`` (arrays aligned with the trainable variables) the gradient is taken at
    ``weights + offset``.
    """
    variables = model.trainable_variables
    values = [tf.convert_to_tensor(v.value) for v in variables]
    if offset is not None:
        values = [v + tf.cast(o, v.dtype) for v, o in zip(values, offset)]
    frozen = [tf.convert_to_tensor(v.value) for v in model.non_trainable_variables]

    @tf.function(reduce_retracing=True)  # one graph for all batches: eager back-propagation is op-by-op
    def batch_gradient(values, x, y):
        with tf.GradientTape() as tape:
            tape.watch(values)
            outputs, _ = model.stateless_call(values, frozen, x, training=training)
            value = loss(y, outputs)
        return _dense(tape.gradient(value, values), values)

    return _batch_average(lambda x, y: batch_gradient(values, x, y), values, batches)


def _dense(grads, values):
    """``grads`` as dense tensors (an embedding's ``IndexedSlices`` included), zero where a variable got none."""
    return [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for v, g in zip(values, grads)]


def _batch_average(per_batch, values, batches):
    """Mean over ``batches`` of ``per_batch(x, y)`` (tensors aligned with ``values``), as NumPy arrays."""
    total = [tf.zeros_like(v) for v in values]
    for x, y in batches:
        total = [t + g for t, g in zip(total, per_batch(x, y))]
    return [(t / len(batches)).numpy() for t in total]


class ExactBatchNormalization(keras.layers.BatchNormalization):
    """Batch norm whose training-mode moments are plain ``mean`` / ``mean((x - mean)^2)``.

    TensorFlow's ``tf.nn.moments`` (behind Keras batch norm) stops the gradient through the batch
    mean inside the variance: first derivatives stay exact, second derivatives do not. Scoring that
    needs Hessian-vector products runs on a twin of the model with this layer instead (same weights).
    Inference mode is the parent's.
    """

    def call(self, inputs, training=None, mask=None):
        if not training:
            return super().call(inputs, training=training, mask=mask)
        x = keras.ops.cast(inputs, self.compute_dtype)
        rank = len(x.shape)
        axis = self.axis % rank
        axes = [i for i in range(rank) if i != axis]
        mean = keras.ops.mean(x, axis=axes, keepdims=True)
        variance = keras.ops.mean(keras.ops.square(x - mean), axis=axes, keepdims=True)
        out = (x - mean) * keras.ops.rsqrt(variance + self.epsilon)
        shape = [1] * rank
        shape[axis] = x.shape[axis]
        if self.scale:
            out = out * keras.ops.reshape(keras.ops.cast(self.gamma, out.dtype), shape)
        if self.center:
            out = out + keras.ops.reshape(keras.ops.cast(self.beta, out.dtype), shape)
        return out


class DepthwiseGroupedConv2D(keras.layers.Conv2D):
    """``Conv2D`` that runs a grouped convolution with one input channel per group (ConvNeXt's and
    many MobileNet-style "depthwise" layers written as ``Conv2D(groups=channels)``) as a depthwise
    convolution; any other convolution runs as the parent's.

    Same function, same weights (the kernel keeps its ``(kh, kw, 1, filters)`` shape, reshaped to the
    depthwise ``(kh, kw, groups, filters // groups)`` in the call). Why: on CPU, Keras compiles every
    grouped convolution with XLA, whose grouped-convolution gradients are slow; double
    back-propagation through them (GraSP) took over 12 minutes for one batch of ConvNeXtTiny.
    """

    def convolution_op(self, inputs, kernel):
        strided_and_dilated = max(self.strides) > 1 and max(self.dilation_rate) > 1  # depthwise allows one
        if self.groups == 1 or kernel.shape[-2] != 1 or strided_and_dilated:
            return super().convolution_op(inputs, kernel)
        height, width = kernel.shape[:2]
        depthwise = keras.ops.reshape(kernel, (height, width, self.groups, self.filters // self.groups))
        return keras.ops.depthwise_conv(inputs, depthwise, strides=self.strides, padding=self.padding,
                                        data_format=self.data_format, dilation_rate=self.dilation_rate)


def has_grouped_convolutions(model):
    """Whether :func:`twin` would run any layer of ``model`` faster (a ``Conv2D`` with ``groups > 1``)."""
    return any(type(layer).__name__ == "Conv2D" and layer.groups > 1 for layer in layers.walk(model))


def twin(model, dtype=None, exact_batch_norm=False):
    """A copy of functional ``model`` (same graph, layer names and weights), optionally in ``dtype``
    and with :class:`ExactBatchNormalization` in place of ``BatchNormalization``; functional models
    nested in it are converted too. Grouped convolutions become :class:`DepthwiseGroupedConv2D`
    (same function, computed faster). A functional subclass (a KerasHub backbone or task model) is
    copied as a plain functional graph of the same layers (see :func:`keras_lottery.compat.graph_config`)."""
    config = model.get_config() if compat.is_graph_model(model) else compat.graph_config(model)[0]
    _convert_layers(config, dtype, exact_batch_norm)
    copy = keras.Model.from_config(config, custom_objects={"ExactBatchNormalization": ExactBatchNormalization,
                                                           "DepthwiseGroupedConv2D": DepthwiseGroupedConv2D})
    if compat.is_graph_model(model):
        copy_weights(model, copy)
    else:
        layers.copy_by_layer_name(model, copy)
    return copy


def has_batch_normalization(model):
    """Whether ``model`` holds a ``BatchNormalization`` layer (at any depth)."""
    return any(isinstance(layer, keras.layers.BatchNormalization) for layer in layers.walk(model))


def _convert_layers(config, dtype, exact_batch_norm):
    """Set ``dtype``, swap batch norm for :class:`ExactBatchNormalization` and grouped ``Conv2D`` for
    :class:`DepthwiseGroupedConv2D` in a functional config, nested ones included."""
    for layer_config in config["layers"]:
        inner = layer_config.get("config", {})
        if isinstance(inner, dict) and "layers" in inner and "output_layers" in inner:
            _convert_layers(inner, dtype, exact_batch_norm)  # a nested functional model
        if dtype is not None and "dtype" in inner:
            inner["dtype"] = dtype
        if exact_batch_norm and layer_config["class_name"] == "BatchNormalization":
            layer_config.update(class_name="ExactBatchNormalization", module=None,
                                registered_name="ExactBatchNormalization")
        if layer_config["class_name"] == "Conv2D" and inner.get("groups", 1) > 1:
            layer_config.update(class_name="DepthwiseGroupedConv2D", module=None,
                                registered_name="DepthwiseGroupedConv2D")


def _hessian_product(model, values, frozen, x, y, loss, training, vector=None):
    """``(g, H v)`` on one batch, inside a ``tf.function``: the loss gradient ``g`` w.r.t. ``values`` and
    the Hessian times ``vector`` (``g`` itself, held constant, when ``vector`` is None).

    Forward-over-reverse: the gradient is differentiated along ``vector`` in forward mode
    (``tf.autodiff.ForwardAccumulator``). Not reverse-over-reverse (a second ``GradientTape`` over
    the gradient): on TensorFlow 2.21 Grappler's arithmetic optimizer and constant folding together
    miscompile that graph when an ``EinsumDense`` kernel has a size-1 dimension (the one key-value
    head of a multi-query attention: Gemma, Llama with ``num_key_value_heads=1``): it gives a wrong
    ``H g`` silently, or fails with a broadcasting error (``tests/blocks/test_criteria.py``).
    """

    def loss_gradient():
        with tf.GradientTape() as tape:
            tape.watch(values)
            outputs, _ = model.stateless_call(values, frozen, x, training=training)
            value = loss(y, outputs)
        return _dense(tape.gradient(value, values), values)

    if vector is None:  # the forward-mode direction must be known before the pass it differentiates
        vector = [tf.stop_gradient(g) for g in loss_gradient()]
    with tf.autodiff.ForwardAccumulator(values, vector) as accumulator:
        gradient = loss_gradient()
    product = [accumulator.jvp(g, unconnected_gradients=tf.UnconnectedGradients.ZERO) for g in gradient]
    return gradient, _dense(product, values)  # an embedding's product comes back as IndexedSlices


def hessian_vector_product(model, batches, loss, vector, training=True):
    """``H @ vector`` for the Hessian ``H`` of the batch-averaged loss w.r.t. ``model.trainable_variables``.

    Forward-over-reverse differentiation (see :func:`_hessian_product`) through ``stateless_call`` (no
    state changes), one ``tf.function`` graph for all batches of a shape.
    Call it on ``twin(model, exact_batch_norm=True)`` for models with batch norm (see
    :class:`ExactBatchNormalization`); :func:`grasp` does.
    """
    values = [tf.convert_to_tensor(v.value) for v in model.trainable_variables]
    frozen = [tf.convert_to_tensor(v.value) for v in model.non_trainable_variables]
    vector = [tf.convert_to_tensor(v, dtype=t.dtype) for v, t in zip(vector, values)]

    @tf.function(reduce_retracing=True)
    def batch_product(values, vector, x, y):
        return _hessian_product(model, values, frozen, x, y, loss, training, vector)[1]

    return _batch_average(lambda x, y: batch_product(values, vector, x, y), values, batches)


def gradient_and_hessian_product(model, batches, loss, training=True):
    """``(g, H g)``: the batch-averaged loss gradient ``g`` and the Hessian times it, as GraSP needs.

    With one batch both come from one graph (``g``, held constant, is the forward-mode direction),
    which saves tracing a separate gradient function: most of GraSP's time on large graphs is the
    trace. With several batches ``g`` must be averaged over all
    of them first, so it takes :func:`gradients` then :func:`hessian_vector_product`.
    """
    if len(batches) != 1:
        g = gradients(model, batches, loss, training=training)
        return g, hessian_vector_product(model, batches, loss, g, training=training)
    values = [tf.convert_to_tensor(v.value) for v in model.trainable_variables]
    frozen = [tf.convert_to_tensor(v.value) for v in model.non_trainable_variables]
    (x, y), = batches
    first, product = tf.function(_hessian_product)(model, values, frozen, x, y, loss, training)
    return [f.numpy() for f in first], [p.numpy() for p in product]
