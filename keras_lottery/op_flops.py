"""FLOPs of a layer the cost model has no rule for, counted from the TensorFlow ops of one traced call.

:func:`traced_flops` traces one call of the layer (``tf.function``, batch size 1, every unknown
dimension 1) and :func:`graph_flops` adds up the FLOPs of the graph's ops with the conventions of
:mod:`keras_lottery.metrics`:

* ``MatMul`` / ``BatchMatMul``: two per multiply-add (``2 x output elements x contracted size``).
  ``Einsum`` with two (or more) operands: ``2 x`` the product of the sizes of all its distinct indices; with
  one operand: one per input element when an index is summed out, zero for a transposition.
  Convolutions (``Conv2D``, ``Conv3D``, depthwise, transposed): two per multiply-add.
* Element-wise arithmetic, comparisons, ``Select`` and activations: one per output element
  (``AddN``: ``inputs - 1``). ``Softmax`` and ``LogSoftmax`` count **one** per element, as the
  ``Softmax`` layer and ``MultiHeadAttention`` rules do, so a traced count and a table count of the
  same computation agree. Fused batch norm: two per element. Pooling: one per window element per
  output.
* Reductions (``Sum``, ``Mean``, ``Max``, ``ArgMax``, ...), scans (``Cumsum``) and ``TopKV2`` (a
  mixture-of-experts router's choice: one comparison per input element, as ``ArgMax``): one per input element.
* Fourier transforms (``FFT``, ``FFT2D``, ``FFT3D`` and their inverses, FNet's token mixing): ``5 N log2 N``
  per transform of ``N`` complex points (the radix-2 Cooley-Tukey count). Building a complex tensor
  from real parts and taking its real or imaginary part (``Complex``, ``Real``, ``Imag``) count zero.
* Shape-only and data-movement ops (reshape, transpose, slicing, gather, concatenation, cast,
  variable reads, constants) count zero, and so does every op on integer or boolean tensors only
  (index arithmetic, masks built from shapes): they are not floating-point operations.
* Any other op counts zero and its type is returned as unknown, so the caller can name it.

TensorFlow's own counter (``tf.compat.v1.profiler`` with ``ProfileOptionBuilder.float_operation()``)
was not used: in TF 2.21 it has no rule for ``Einsum`` (KerasHub's projections and attention),
``Exp``, ``Tanh``, ``Erf``, ``Relu`` or ``Select``, which it counts as zero without saying so.

:func:`traced_macs` counts, from the same trace, the multiply-adds of the contractions only (matmuls,
einsums of two or more operands, convolutions): half their FLOPs.

The trace needs the TensorFlow backend; on another backend :func:`traced_flops` returns ``None``.
"""

from __future__ import annotations

import math
import warnings
import weakref

import keras
import tensorflow as tf

from keras_lottery import tracing

__all__ = ["einsum_flops", "einsum_output_size", "graph_flops", "graph_macs", "traced_flops", "traced_macs"]

_ZERO = {
    "Placeholder", "PlaceholderWithDefault", "Const", "Identity", "IdentityN", "NoOp", "ReadVariableOp",
    "VarHandleOp", "Reshape", "Transpose", "ConjugateTranspose", "ExpandDims", "Squeeze", "Shape", "ShapeN",
    "Size", "Rank", "StridedSlice", "Slice", "ConcatV2", "Concat", "Pack", "Unpack", "Split", "SplitV",
    "GatherV2", "Gather", "GatherNd", "ResourceGather", "ResourceGatherNd", "Tile", "BroadcastTo",
    "BroadcastArgs", "Pad", "PadV2", "MirrorPad", "Cast", "Fill", "ZerosLike", "OnesLike", "Range",
    "StopGradient", "PreventGradient", "Snapshot", "OneHot", "ReverseV2", "Roll", "Where", "Bitcast",
    "CheckNumerics", "EnsureShape", "Assert", "MatrixBandPart", "MatrixDiagV3", "MatrixSetDiagV3", "ScatterNd",
    "TensorScatterUpdate", "DepthToSpace", "SpaceToDepth", "BatchToSpaceND", "SpaceToBatchND",
    "ResizeNearestNeighbor", "InvertPermutation", "LinSpace", "Empty", "Complex", "Real", "Imag",
}
_ELEMENTWISE = {
    "Add", "AddV2", "BiasAdd", "Sub", "Mul", "MulNoNan", "RealDiv", "Div", "DivNoNan", "FloorDiv", "FloorMod",
    "Mod", "TruncateDiv", "Maximum", "Minimum", "Pow", "SquaredDifference", "Neg", "Abs", "Square", "Sqrt",
    "Rsqrt", "Exp", "Expm1", "Log", "Log1p", "Sigmoid", "Tanh", "Relu", "Relu6", "Elu", "Selu", "LeakyRelu",
    "Softplus", "Softsign", "Erf", "Erfc", "Reciprocal", "Inv", "Sign", "Floor", "Ceil", "Round", "Rint",
    "Sin", "Cos", "Tan", "Atan", "Atan2", "Asin", "Acos", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Xlogy",
    "Xdivy", "Select", "SelectV2", "ClipByValue", "Softmax", "LogSoftmax", "Equal", "NotEqual", "Less",
    "LessEqual", "Greater", "GreaterEqual", "IsNan", "IsInf", "IsFinite", "Gelu",
}
_REDUCTION = {"Sum", "Mean", "Max", "Min", "Prod", "ArgMax", "ArgMin", "EuclideanNorm", "Cumsum", "Cumprod",
              "Cumulativelogsumexp", "TopKV2"}
_FFT = {"FFT": 1, "IFFT": 1, "FFT2D": 2, "IFFT2D": 2, "FFT3D": 3, "IFFT3D": 3}  # op -> transformed (last) axes
_CONV = {"Conv2D", "Conv3D", "DepthwiseConv2dNative"}
_CONV_TRANSPOSE = {"Conv2DBackpropInput", "Conv3DBackpropInputV2"}
_POOL = {"AvgPool", "MaxPool", "AvgPool3D", "MaxPool3D"}
_CALLS = {"PartitionedCall", "StatefulPartitionedCall"}

_cache = weakref.WeakKeyDictionary()  # layer -> {call signature: _Traced or None}
_CONTRACTIONS = {"MatMul", "Einsum", *_CONV, *_CONV_TRANSPOSE}  # and BatchMatMul*: their FLOPs are 2 x multiply-adds


def _size(shape):
    n = 1
    for d in shape:
        n *= 1 if d is None else int(d)
    return n


def _dims(tensor):
    return tuple(tensor.shape.as_list()) if tensor.shape.rank is not None else ()


def _floating(op):
    return any(t.dtype.is_floating or t.dtype.is_complex for t in (*op.inputs, *op.outputs))


def _index_sizes(equation, shapes):
    """``(operand terms, output term, {index: size}, broadcast ellipsis dims)`` of an einsum call."""
    lhs, _, rhs = equation.replace(" ", "").partition("->")
    terms = lhs.split(",")
    sizes, ellipsis = {}, []
    for term, shape in zip(terms, shapes):
        letters = term.replace("...", "")
        n_ellipsis = len(shape) - len(letters) if "..." in term else 0
        before = term.index("...") if "..." in term else len(term)
        for i, letter in enumerate(letters):
            axis = i if i < before else i + n_ellipsis
            sizes[letter] = max(sizes.get(letter, 1), _size(shape[axis:axis + 1]))
        if n_ellipsis:
            dims = [_size((d,)) for d in shape[before:before + n_ellipsis]]
            width = max(len(ellipsis), len(dims))  # broadcast, right-aligned
            ellipsis = [max(a, b) for a, b in zip([1] * (width - len(ellipsis)) + ellipsis,
                                                   [1] * (width - len(dims)) + dims)]
    return terms, rhs, sizes, ellipsis


def einsum_flops(equation, shapes):
    """FLOPs of ``tf.einsum(equation, *operands)`` on operands of ``shapes`` (see the module docstring).

    Two (or more) operands: ``2 x`` the product of the sizes of all distinct indices (``...`` broadcast included).
    One operand: one per input element if an index is summed out, else zero (a transposition).
    """
    terms, rhs, sizes, ellipsis = _index_sizes(equation, shapes)
    total = _size(sizes.values()) * _size(ellipsis)
    if len(terms) == 1:
        summed = set(terms[0].replace("...", "")) - set(rhs.replace("...", ""))
        return total if summed else 0
    return 2 * total


def einsum_output_size(equation, shapes):
    """Number of elements of the output of ``tf.einsum(equation, *operands)`` on operands of ``shapes``."""
    _, rhs, sizes, ellipsis = _index_sizes(equation, shapes)
    return _size(sizes[letter] for letter in rhs.replace("...", "")) * (_size(ellipsis) if "..." in rhs else 1)


def _op_flops(op, graph):
    """FLOPs of one op, or None for an op type without a rule."""
    kind = op.type
    if kind in _ZERO:
        return 0
    if kind in _CALLS:  # a nested tf.function: count its own graph
        inner = graph._get_function(op.get_attr("f").name)  # noqa: SLF001 - the only way to reach a call's body
        flops, unknown = graph_flops(inner.graph)
        return None if unknown else flops
    if not _floating(op):  # index arithmetic and boolean masks
        return 0
    out = _dims(op.outputs[0]) if op.outputs else ()
    ins = [_dims(t) for t in op.inputs]
    if kind in _ELEMENTWISE:
        return _size(out)
    if kind == "AddN":
        return (len(ins) - 1) * _size(out)
    if kind in _REDUCTION:
        return _size(ins[0])
    if kind == "MatMul":
        a = ins[0]
        return 2 * _size(out) * (a[0] if op.get_attr("transpose_a") else a[1])
    if kind.startswith("BatchMatMul"):
        a = ins[0]
        return 2 * _size(out) * (a[-2] if op.get_attr("adj_x") else a[-1])
    if kind == "Einsum":
        return einsum_flops(op.get_attr("equation").decode(), ins)
    if kind in _CONV:  # kernel (*window, in, out) or depthwise (*window, in, multiplier)
        kernel = ins[1]
        per_output = _size(kernel[:-2]) * (kernel[-2] if kind != "DepthwiseConv2dNative" else 1)
        return 2 * _size(out) * per_output
    if kind in _CONV_TRANSPOSE:  # inputs (output sizes, kernel (*window, out, in), the layer's input)
        kernel = ins[1]
        return 2 * _size(ins[2]) * _size(kernel[:-1])
    if kind in _FFT:
        return _fft_flops(ins[0], _FFT[kind])
    if kind.startswith("FusedBatchNorm"):
        return 2 * _size(out)
    if kind in _POOL:
        return _size(out) * _size(op.get_attr("ksize"))
    return None


def _fft_flops(shape, axes):
    """``5 N log2 N`` per transform of the last ``axes`` dimensions of ``shape`` (``N`` points), per transform."""
    points = _size(shape[-axes:])
    return 5 * points * math.log2(points) * (_size(shape) // points) if points > 1 else 0


def graph_flops(graph):
    """``(flops, unknown)``: the FLOPs of every op of a TensorFlow graph, and the op types without a rule."""
    total, unknown = 0, set()
    for op in graph.get_operations():
        flops = _op_flops(op, graph)
        if flops is None:
            unknown.add(op.type)
        else:
            total += int(flops)
    return total, sorted(unknown)


def _is_contraction(op):
    if op.type == "Einsum":
        return len(op.inputs) > 1  # one operand: a reduction or a transposition, not a multiply-add
    return op.type in _CONTRACTIONS or op.type.startswith("BatchMatMul")


def graph_macs(graph):
    """Multiply-adds of the contractions (matmul, einsum of two operands, convolutions) of a TensorFlow graph."""
    total = 0
    for op in graph.get_operations():
        if op.type in _CALLS:
            total += graph_macs(graph._get_function(op.get_attr("f").name).graph)  # noqa: SLF001 - see _op_flops
        elif _is_contraction(op) and _floating(op):
            total += int(_op_flops(op, graph)) // 2
    return total


def _leaf_key(value):
    if isinstance(value, keras.KerasTensor):
        return ("tensor", tuple(value.shape), str(value.dtype))
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return type(value).__name__


def traced_flops(layer, args, kwargs):
    """``(flops, unknown op types)`` of the call ``layer(*args, **kwargs)`` on one example, or None.

    ``args`` and ``kwargs`` hold the call's symbolic tensors (``keras.KerasTensor``, as a functional
    node keeps them) and its other arguments (``training=False``, ``use_causal_mask=True``, ...).
    Each tensor is replaced by a placeholder of its shape with batch size 1 and every other unknown
    dimension 1 (as :mod:`keras_lottery.metrics` counts ``None`` dimensions). Returns None when the
    backend is not TensorFlow or the call cannot be traced on its own. Results are cached per layer
    and call signature.
    """
    traced = _traced(layer, args, kwargs)
    return None if traced is None else (traced[0], traced[1])


def traced_macs(layer, args, kwargs):
    """Multiply-adds of the contractions of the call ``layer(*args, **kwargs)`` on one example, or None.

    The same trace as :func:`traced_flops` (and the same cache); None when it cannot be traced.
    """
    traced = _traced(layer, args, kwargs)
    return None if traced is None else traced[2]


def _traced(layer, args, kwargs):
    """``(flops, unknown op types, macs)`` of one traced call, cached per layer and call signature; or None."""
    if keras.backend.backend() != "tensorflow":
        return None
    key = tuple(_leaf_key(v) for v in keras.tree.flatten((args, kwargs)))
    per_layer = _cache.setdefault(layer, {})
    if key not in per_layer:
        per_layer[key] = _trace(layer, args, kwargs)
    return per_layer[key]


def _trace(layer, args, kwargs):
    symbolic, call = tracing.node_call(layer, args, kwargs)
    # batch size 1 whatever the node's batch dimension says, as the table rules skip it
    specs = [tf.TensorSpec(tuple(1 if d is None or i == 0 else int(d) for i, d in enumerate(t.shape)), t.dtype)
             for t in symbolic]
    with warnings.catch_warnings():  # e.g. Keras's softmax-over-a-size-1-axis warning at sequence length 1
        warnings.simplefilter("ignore")
        graph = tracing.traced_graph(call, specs)
    if graph is None:
        return None
    flops, unknown = graph_flops(graph)
    return flops, unknown, graph_macs(graph)

