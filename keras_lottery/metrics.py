"""Cost model of Keras models: FLOPs, multiply-adds, parameters and memory.

Timing helpers (wall time of training steps) live in :mod:`keras_lottery.benchmarks.timing`.

What is counted (per example, i.e. batch size 1, one forward pass):

* **FLOPs** are floating-point operations with a multiply-add counted as **two** FLOPs
  (``FLOPs = 2 x MACs``; :func:`macs` gives the multiply-adds of every contraction). Convolutions (1D/2D/3D, grouped,
  depthwise, separable, transposed) and ``Dense``: ``2 x`` multiply-adds, plus one per output for the
  bias and one per output for an ``activation=`` other than linear (as a separate activation layer
  would count). Normalization (batch/layer norm, ``Rescaling``): two per element (inference form, scale and
  shift); ``RMSNormalization`` (Keras's, Gemma's) and ``LlamaLayerNorm`` too. Activations: one per
  element. ``Add``/``Subtract``/``Multiply``/``Average``/``Maximum``/``Minimum``: ``inputs - 1`` per
  output element. Pooling: one per window element per output; global pooling: one per input element.
  Shape-only layers (input, padding, reshape, flatten, dropout, concatenate, ...) and ``Embedding``
  (a lookup) count zero. ``MultiHeadAttention``: the four projections (two FLOPs per multiply-add,
  plus biases), the attention scores and weighted sum, one per score for the softmax.
  ``EinsumDense``: ``2 x`` the product of its equation's index sizes, plus one per output for the
  bias and for its activation. ``keras_lottery``'s mask wrappers count as the layer they wrap. Nested functional models are
  counted recursively. Dimensions that are ``None`` (a sequence length) count as 1.
* **Other layers** (transformer layers, ``ReversibleEmbedding``, ``Lambda``, a user's own layer,
  a subclassed model, nested or the model itself once built) are counted from the TensorFlow ops of
  one traced call
  (:mod:`keras_lottery.op_flops`, same conventions; softmax one per element). A traced layer also
  counts the element-wise work inside it that the single-layer rules leave out (its norms'
  statistics, residual adds, attention's score scaling). An op without a rule counts zero and is
  listed by :func:`layer_flops` under ``uncounted`` as ``"layer (Class: OpType)"``; a layer that
  cannot be traced alone, or, on a backend other than TensorFlow, any layer without a rule, counts
  zero and is listed as ``"layer (Class)"``.
* **Operation nodes** (Keras 3 makes one for ``x + y``, ``0.1 * h``, ``keras.ops.add(x, y)`` on
  symbolic tensors): element-wise ones (arithmetic, activations) count ``max(tensor inputs - 1, 1)``
  per output element, so ``x + y``, ``0.1 * h`` and ``x + 3.0`` all count one; reductions one per
  input element; ``matmul`` two per multiply-add; shape-only ones (reshape, transpose, slicing, cast,
  concatenation, ...) zero; others zero, listed under ``uncounted``.
* **Parameters** are every weight of the model, trainable or not (batch-norm moving statistics
  included), each variable once: ``params(model, trainable_only=True)`` gives trainable ones.
* **Memory** (:func:`memory`) is an estimate in bytes: parameters (each weight's size times its
  dtype's bytes) and activations (every layer output, once, for ``batch_size`` examples in the
  layer's compute dtype: what a training step keeps for back-propagation).
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from keras_lottery import op_flops
from keras_lottery.graph import FunctionalGraph, functional_view, is_subclassed

_ZERO_COST = {
    "InputLayer", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D",
    "Reshape", "Flatten", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
    "GaussianDropout", "GaussianNoise", "AlphaDropout", "Permute", "RepeatVector", "Identity", "Concatenate",
    "ActivityRegularization", "Masking", "UpSampling1D", "UpSampling2D", "UpSampling3D", "Embedding",
}
_ELEMENTWISE = {"Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax"}
_NORMALIZATION = {"BatchNormalization", "LayerNormalization", "GroupNormalization", "UnitNormalization",
                  "Rescaling", "Normalization", "RMSNormalization", "LlamaLayerNorm"}  # last: Keras's, Gemma's; Llama's
_MERGE = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"}
_ELEMENTWISE_LAYERS = {"LayerScale", "PositionEmbedding"}  # ConvNeXt's scale, the zoo ViT's embedding: one per element
_ZERO_COST_LAYERS = {"StochasticDepth"}  # identity at inference
_MASK_WRAPPERS = {"MaskedLayer", "PruneLowMagnitude"}  # keras_lottery's mask wrappers: the mask is training machinery
# Operation nodes (``keras.ops``), by class name.
_OP_ZERO = {
    "Reshape", "Transpose", "ExpandDims", "Squeeze", "Concatenate", "Stack", "Unstack", "GetItem", "Cast",
    "StopGradient", "Split", "Take", "Slice", "Flatten", "Tile", "Repeat", "BroadcastTo", "Pad", "Identity",
    "ConvertToTensor", "SwapAxes", "MoveAxis", "Roll", "ZerosLike", "OnesLike", "Ravel",
}
_OP_ELEMENTWISE = {
    "Add", "Subtract", "Multiply", "Divide", "TrueDivide", "FloorDivide", "Power", "Maximum", "Minimum",
    "Negative", "Abs", "Absolute", "Square", "Sqrt", "Rsqrt", "Exp", "Log", "Sigmoid", "Relu", "Relu6",
    "HardSigmoid", "HardSwish", "HardSilu", "Silu", "Swish", "Gelu", "Tanh", "Erf", "Elu", "Selu",
    "LeakyRelu", "Softplus", "Clip", "Where", "Reciprocal", "Sign", "Mod", "Softmax", "LogSoftmax", "Floor", "Ceil",
    "Round",
}
ELEMENTWISE_OPS = frozenset(_OP_ELEMENTWISE)  # operation classes computed element by element (public: filters)
_OP_REDUCTION = {"Mean", "Sum", "Max", "Min", "Prod", "Std", "Var", "Norm", "Logsumexp"}


def _prod(shape):
    n = 1
    for d in shape:
        n *= 1 if d is None else int(d)
    return n


def _spatial(shape, data_format):
    return shape[2:] if data_format == "channels_first" else shape[1:-1]


class NodeFlops:
    """FLOPs of each node of a :class:`~keras_lottery.graph.FunctionalGraph` (callable on a node key)."""

    def __init__(self, graph):
        self.graph = graph
        self.uncounted = set()
        self._cache = {}

    def __call__(self, node):
        if node not in self._cache:
            self._cache[node] = int(self._compute(node))
        return self._cache[node]

    def _compute(self, node):
        layer, in_shapes, out_shapes, arguments = _node_call(self.graph, node)
        if not isinstance(layer, keras.layers.Layer):
            return operation_flops(layer, in_shapes, out_shapes, self.uncounted)
        return layer_forward_flops(layer, in_shapes, out_shapes, self.uncounted, arguments)


def _node_call(graph, node):
    """``(layer or operation, input shapes, output shapes, call arguments or None)`` of a graph node."""
    layer = graph.operation(node[0])
    in_shapes = [graph.shapes[t] for t in graph.node_inputs[node] if t in graph.shapes]
    out_shapes = [graph.shapes[t] for t in graph.output_tensors(node) if t in graph.shapes]
    if isinstance(layer, keras.layers.Layer) and not out_shapes and in_shapes:
        out_shapes = [tuple(layer.compute_output_shape(in_shapes[0] if len(in_shapes) == 1 else in_shapes))]
    arguments = graph.call_arguments(node) if node in graph.nodes else None
    return layer, in_shapes, out_shapes, arguments


def operation_flops(operation, in_shapes, out_shapes, uncounted=None):
    """FLOPs of one call of a ``keras.ops`` operation node on one example (see the module docstring)."""
    cls = type(operation).__name__
    n_out = _prod(out_shapes[0][1:]) if out_shapes else 0
    if cls in _OP_ZERO:
        return 0
    if cls in _OP_ELEMENTWISE:
        return max(len(in_shapes) - 1, 1) * n_out
    if cls in _OP_REDUCTION:
        return _prod(in_shapes[0][1:]) if in_shapes else 0
    if cls == "Matmul" and in_shapes:
        return 2 * n_out * int(in_shapes[0][-1])
    if uncounted is not None:
        uncounted.add(f"{operation.name} ({cls})")
    return 0


def _attention_sizes(layer, in_shapes):
    query = in_shapes[0]
    value = in_shapes[1] if len(in_shapes) > 1 else query
    key = in_shapes[2] if len(in_shapes) > 2 else value
    return query, key, value, _prod(query[1:-1]), _prod(value[1:-1])


def _attention_macs(layer, in_shapes, out):
    """Multiply-adds of ``MultiHeadAttention``: the four projections, the scores and the weighted sum."""
    query, key, value, t_q, t_k = _attention_sizes(layer, in_shapes)
    heads, d_k, d_v = layer.num_heads, layer.key_dim, layer.value_dim or layer.key_dim
    return (t_q * query[-1] * heads * d_k + t_k * key[-1] * heads * d_k + t_k * value[-1] * heads * d_v
            + t_q * t_k * heads * (d_k + d_v) + t_q * heads * d_v * out[-1])


def _attention_flops(layer, in_shapes, out):
    """FLOPs of ``MultiHeadAttention``: projections, scores, softmax, weighted sum (one example)."""
    _, _, _, t_q, t_k = _attention_sizes(layer, in_shapes)
    heads, d_k, d_v = layer.num_heads, layer.key_dim, layer.value_dim or layer.key_dim
    bias = (t_q * heads * d_k + t_k * heads * (d_k + d_v) + t_q * out[-1]) if layer.use_bias else 0
    return 2 * _attention_macs(layer, in_shapes, out) + bias + heads * t_q * t_k


def _einsum_dense_flops(layer, in_shapes):
    """``EinsumDense``: two per multiply-add of its equation, plus one per output for the bias (as ``Dense``)."""
    # from the equation: its output shape may keep None for a known size (output_shape=(None, 4))
    shapes = [(1, *in_shapes[0][1:]), tuple(layer.kernel.shape)]
    n_out = op_flops.einsum_output_size(layer.equation, shapes)
    return op_flops.einsum_flops(layer.equation, shapes) + _per_output_flops(layer, n_out)


def _per_output_flops(layer, n_out):
    """The element-wise FLOPs a contraction layer adds to each of its ``n_out`` outputs: one for its bias
    (``use_bias``, or a ``bias`` variable for ``EinsumDense``), one for an ``activation=`` other than linear."""
    bias = getattr(layer, "use_bias", getattr(layer, "bias", None) is not None)
    activation = getattr(layer, "activation", None)
    active = activation is not None and activation is not keras.activations.linear
    return n_out * (int(bool(bias)) + int(active))


def layer_forward_flops(layer, in_shapes, out_shapes, uncounted=None, arguments=None):
    """FLOPs of one call of ``layer`` on one example, from its input and output shapes (batch dim first).

    A layer without a rule here is counted from its traced TensorFlow ops (:mod:`keras_lottery.op_flops`),
    called with ``arguments`` (``(args, kwargs)`` of its functional node, symbolic tensors included) or
    else with one float tensor per input shape. Such a layer is added to ``uncounted`` when it cannot be
    traced (``"name (Class)"``) or for each op type without a rule (``"name (Class: OpType)"``).
    """
    if _is_graph_model(layer):
        return flops(layer)
    if _is_mask_wrapper(layer):  # the wrapped layer's cost
        return layer_forward_flops(layer.layer, in_shapes, out_shapes, uncounted)
    ruled = _rule_flops(layer, in_shapes, out_shapes)
    return ruled if ruled is not None else _traced_layer_flops(layer, in_shapes, arguments, uncounted)


def layer_forward_macs(layer, in_shapes, out_shapes, arguments=None):
    """Multiply-adds of one call of ``layer`` on one example: those of its contractions (see :func:`macs`).

    Arguments as :func:`layer_forward_flops`; a layer without a rule that cannot be traced counts zero.
    """
    cls = type(layer).__name__
    out = out_shapes[0] if out_shapes else ()
    if _is_graph_model(layer):
        return macs(layer)
    if _is_mask_wrapper(layer):
        return layer_forward_macs(layer.layer, in_shapes, out_shapes)
    if cls == "MultiHeadAttention" and in_shapes and out:
        return _attention_macs(layer, in_shapes, out)
    if cls == "EinsumDense" and in_shapes and out:
        return op_flops.einsum_flops(layer.equation, [(1, *in_shapes[0][1:]), tuple(layer.kernel.shape)]) // 2
    if cls == "Dense" or cls.startswith(("Conv", "Depthwise", "Separable")):
        ruled = _rule_flops(layer, in_shapes, out_shapes)
        if ruled is not None:
            return (ruled - _per_output_flops(layer, _prod(out[1:]))) // 2
    elif _rule_flops(layer, in_shapes, out_shapes) is not None:  # a rule, and no multiply-add in it
        return 0
    traced = op_flops.traced_macs(layer, *_arguments(layer, in_shapes, arguments)) if in_shapes else None
    return traced or 0


def _arguments(layer, in_shapes, arguments):
    """The node's ``(args, kwargs)``, or one float tensor per input shape when the node gave none."""
    if arguments is not None:
        return arguments
    dtype = getattr(layer, "compute_dtype", None) or "float32"
    return [keras.KerasTensor(shape, dtype=dtype) for shape in in_shapes], {}


def _is_graph_model(layer):
    return isinstance(layer, keras.Model) and not is_subclassed(layer)


def _is_mask_wrapper(layer):
    return isinstance(layer, keras.layers.Wrapper) and type(layer).__name__ in _MASK_WRAPPERS


def _rule_flops(layer, in_shapes, out_shapes):
    """FLOPs of ``layer`` by the table rules of the module docstring, or None for a layer without a rule."""
    cls = type(layer).__name__
    out = out_shapes[0] if out_shapes else ()
    n_out = _prod(out[1:])
    if cls in _ZERO_COST or cls in _ZERO_COST_LAYERS:
        return 0
    if cls == "MultiHeadAttention" and in_shapes and out:
        return _attention_flops(layer, in_shapes, out)
    if cls == "EinsumDense" and in_shapes and out:
        return _einsum_dense_flops(layer, in_shapes)
    fmt = getattr(layer, "data_format", "channels_last")
    per_output = _per_output_flops(layer, n_out)  # bias and activation
    if cls in ("SeparableConv1D", "SeparableConv2D"):
        spatial = _prod(_spatial(out, fmt))
        return 2 * spatial * (_prod(layer.depthwise_kernel.shape) + _prod(layer.pointwise_kernel.shape)) + per_output
    if cls.startswith("Conv") and cls.endswith("Transpose"):
        return 2 * _prod(_spatial(in_shapes[0], fmt)) * _prod(layer.kernel.shape) + per_output
    if cls in ("Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D"):
        return 2 * _prod(_spatial(out, fmt)) * _prod(layer.kernel.shape) + per_output
    if cls == "Dense":
        rows = _prod(in_shapes[0][1:-1]) if in_shapes else 1
        return 2 * rows * _prod(layer.kernel.shape) + per_output
    if cls in _NORMALIZATION:
        return 2 * n_out
    if cls in _ELEMENTWISE or cls in _ELEMENTWISE_LAYERS:
        return n_out
    if cls in _MERGE:
        return max(len(in_shapes) - 1, 1) * n_out
    if cls.startswith("Global") and "Pooling" in cls:
        return _prod(in_shapes[0][1:]) if in_shapes else 0
    if "Pooling" in cls and getattr(layer, "pool_size", None) is not None:  # Keras' pooling; a user's is traced
        return n_out * _prod(layer.pool_size)
    return None


def _traced_layer_flops(layer, in_shapes, arguments, uncounted):
    """FLOPs of a layer without a rule, from its traced ops; zero and listed when it cannot be traced."""
    cls = type(layer).__name__
    traced = op_flops.traced_flops(layer, *_arguments(layer, in_shapes, arguments)) if in_shapes else None
    if traced is None:
        if uncounted is not None:
            uncounted.add(f"{layer.name} ({cls})")
        return 0
    count, unknown = traced
    if uncounted is not None:
        uncounted.update(f"{layer.name} ({cls}: {op})" for op in unknown)
    return count


def _check_model(model, what):
    if not isinstance(model, keras.Model):
        raise TypeError(f"{what} expects a keras.Model, got {type(model).__name__!r}.")
    if not model.built:
        raise ValueError(f"{what} needs a built model; {model.name!r} is not built (call it on data or build it).")


def _graph_or_raise(model, what, subclassed=True):
    """The graph of ``model`` (:func:`functional_view`: a subclassed model is one node, counted from its
    traced call); with ``subclassed=False`` a subclassed model is refused (its activations are hidden)."""
    _check_model(model, what)
    if not subclassed and is_subclassed(model):
        raise TypeError(f"{what} reads every layer's output from the functional graph; {model.name!r} is a subclassed "
                        f"{type(model).__name__}, whose layer outputs cannot be read. Accepted: functional or "
                        "Sequential models.")
    return FunctionalGraph(functional_view(model, what))


def layer_flops(model):
    """Per-layer FLOPs of one example: ``{"layers": {layer_name: flops}, "uncounted": [...]}``.

    A shared layer's FLOPs add up over its calls. ``uncounted`` names what counted as zero for want of a
    rule: ``"layer (Class)"`` for a layer that could not be traced, ``"layer (Class: OpType)"`` for an
    op of a traced layer (see the module docstring).
    """
    graph = _graph_or_raise(model, "layer_flops")
    counter = NodeFlops(graph)
    per_layer = {}
    for node in graph.order:
        per_layer[node[0]] = per_layer.get(node[0], 0) + counter(node)
    return {"layers": per_layer, "uncounted": sorted(counter.uncounted)}


def flops(model):
    """FLOPs of one forward pass of one example (multiply-add = 2 FLOPs; see the module docstring)."""
    return int(sum(layer_flops(model)["layers"].values()))


def macs(model):
    """Multiply-adds of one forward pass of one example: every contraction of the model.

    Convolutions, ``Dense``, ``EinsumDense``, ``MultiHeadAttention`` (projections, scores, weighted
    sum), ``keras.ops.matmul`` nodes, nested models, and the matmuls, einsums and convolutions inside
    layers without a rule (a transformer layer, a user's layer: from one traced call, as :func:`flops`).
    Biases, normalizations and element-wise work are not multiply-adds.
    """
    graph = _graph_or_raise(model, "macs")
    total = 0
    for node in graph.order:
        layer, in_shapes, out_shapes, arguments = _node_call(graph, node)
        if isinstance(layer, keras.layers.Layer):
            total += layer_forward_macs(layer, in_shapes, out_shapes, arguments)
        elif type(layer).__name__ == "Matmul" and in_shapes and out_shapes:  # the one operation node with multiply-adds
            total += _prod(out_shapes[0][1:]) * int(in_shapes[0][-1])
    return int(total)


def params(model, trainable_only=False):
    """Number of scalar weights of ``model`` (each variable once); only trainable ones if asked."""
    _check_model(model, "params")
    weights = model.trainable_weights if trainable_only else model.weights
    seen, total = set(), 0
    for w in weights:
        if id(w) not in seen:
            seen.add(id(w))
            total += _prod(w.shape)
    return int(total)


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    """Bytes held by a training step: ``parameters`` + ``activations`` = ``total``."""

    parameters: int
    activations: int
    batch_size: int

    @property
    def total(self):
        return self.parameters + self.activations


def memory(model, batch_size=1):
    """Estimate the memory of a training step of ``model`` on ``batch_size`` examples, in bytes.

    Parameters: each weight once, at its dtype's size. Activations: each layer call's outputs once
    (the model input included), ``batch_size`` examples, at the layer's compute dtype. Optimizer
    slots, gradients and framework workspace are not included; use the figure to compare models.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
    _check_model(model, "memory")
    seen, param_bytes = set(), 0
    for w in model.weights:
        if id(w) not in seen:
            seen.add(id(w))
            param_bytes += _prod(w.shape) * np.dtype(w.dtype).itemsize
    act = 0
    graph = _graph_or_raise(model, "memory", subclassed=False)
    for node in graph.order:
        layer = graph.operation(node[0])  # a layer or an operation node (x + y)
        itemsize = np.dtype(getattr(layer, "compute_dtype", None) or "float32").itemsize
        for t in graph.output_tensors(node):
            if t in graph.shapes:
                act += _prod(graph.shapes[t][1:]) * itemsize
    return MemoryEstimate(parameters=int(param_bytes), activations=int(act * batch_size), batch_size=batch_size)

