"""Residual *layers*: one layer object whose call adds its input to a branch computed from it.

A transformer layer (KerasHub's ``TransformerEncoder`` / ``TransformerDecoder``, ``GemmaDecoderBlock``,
Llama's decoder, the zoo ViT's encoder block, a user's own) holds its residual connections inside
one ``call``: the functional graph shows one node, no ``Add``. Such a node is a removable block when
its output has its first input's shape and its computation is residual: traced as a TensorFlow graph
on the node's own argument shapes, an addition takes the layer's first input (through identities and
casts only) as one operand and a tensor computed from that input as the other. Removing the node then
leaves ``y = x``, as removing the branch of an ``Add`` block does.

A layer applying a list of residual layers in its call (ViT's encoder) is residual by this rule too;
:mod:`keras_lottery.blocks.containers` finds such containers first, and their sublayers are the blocks.

The trace is TensorFlow-specific (``tf.function``); on another backend no layer is called residual.
Layers without weights (activations, ``Add``, dropout) and normalization layers are never traced.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_lottery import tracing

__all__ = ["is_residual_layer", "untraceable"]

# Shape-preserving layers with weights that are never residual: not worth a trace.
_NOT_RESIDUAL = {"Dense", "EinsumDense", "BatchNormalization", "LayerNormalization", "GroupNormalization",
                 "RMSNormalization", "UnitNormalization", "Normalization", "Conv1D", "Conv2D", "Conv3D",
                 "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D", "PReLU",
                 "Embedding", "ReversibleEmbedding", "PositionEmbedding", "RotaryEmbedding", "LayerScale"}
_PASS_THROUGH = {"Identity", "Cast", "IdentityN", "StopGradient"}
_ADDS = {"AddV2", "Add"}

_cache = {}  # (id(layer), argument signature) -> bool; layers are not rebuilt in place


def _spec(tensor):
    return tf.TensorSpec(tuple(tensor.shape), tensor.dtype)


def is_residual_layer(layer, args, kwargs, output_shape):
    """Whether the call ``layer(*args, **kwargs)`` (symbolic tensors) is a shape-preserving residual layer.

    ``output_shape`` is the shape of the node's (first) output. See the module docstring.
    """
    if (not isinstance(layer, keras.layers.Layer) or isinstance(layer, keras.Model) or not layer.weights
            or type(layer).__name__ in _NOT_RESIDUAL or keras.backend.backend() != "tensorflow"):
        return False
    symbolic, _ = tracing.node_call(layer, args, kwargs)  # the layer's first input first
    if not symbolic or tuple(symbolic[0].shape) != tuple(output_shape):
        return False
    key = _cache_key(layer, symbolic)
    if key not in _cache:
        _cache[key] = _traced_residual(layer, args, kwargs, symbolic)
    return bool(_cache[key])


def untraceable(layer, args, kwargs):
    """Whether :func:`is_residual_layer` found that the call ``layer(*args, **kwargs)`` cannot be traced on its
    node's shapes (so whether it is residual is unknown): a layer whose symbolic input has a shape its real
    call rejects (KerasHub 0.32 Moonshine's rotary embedding declares rank 1 and returns rank 2)."""
    symbolic, _ = tracing.node_call(layer, args, kwargs)
    key = _cache_key(layer, symbolic)
    return key in _cache and _cache[key] is None


def _cache_key(layer, symbolic):
    """The :data:`_cache` key of a call of ``layer`` on the symbolic tensors ``symbolic``."""
    return id(layer), tuple((tuple(t.shape), str(t.dtype)) for t in symbolic)


def _traced_residual(layer, args, kwargs, symbolic):
    """Trace the call with placeholders for the symbolic tensors; look for ``x + f(x)`` on the first input."""
    _, call = tracing.node_call(layer, args, kwargs)
    graph = tracing.traced_graph(call, [_spec(t) for t in symbolic])
    if graph is None:  # a layer that cannot be traced on its own is not a residual layer (None: see untraceable)
        return None
    x_name = graph.inputs[0].name
    aliases = {x_name}
    derived = set()  # tensors computed from x
    for op in graph.get_operations():  # creation order is a topological order
        inputs = [t.name for t in op.inputs]
        if op.type in _PASS_THROUGH and inputs and inputs[0] in aliases:
            aliases.update(t.name for t in op.outputs)
            continue
        from_x = any(name in aliases or name in derived for name in inputs)
        if op.type in _ADDS and len(inputs) == 2:
            a, b = inputs
            if (a in aliases and b in derived) or (b in aliases and a in derived):
                return True
        if from_x:
            derived.update(t.name for t in op.outputs)
    return False

