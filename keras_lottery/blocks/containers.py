"""Container layers: one layer whose call applies a list of residual sublayers one after the other.

KerasHub's ``ViTEncoder`` keeps its transformer blocks in a list (``encoder_layers``) and, inside one
``call``, applies them in order and then a final layer norm: the functional graph shows one node for
the whole encoder. Such a layer is a *container* when one of its public list attributes holds layers
that, in a trace of the container's call on its node's argument shapes, are each called once, in list
order, each on the previous one's output (through identities and casts only), and are residual layers
(:func:`keras_lottery.blocks.residual_layers.is_residual_layer`) after any non-residual first ones (a
stage's downsampling first block). The removable blocks are then the residual sublayers, not the
container: removing one leaves ``y = x`` at its place in the chain. A non-residual first sublayer that is
a container itself is looked into the same way (:attr:`Stack.inner`), down to :data:`MAX_DEPTH` levels:
HGNetV2's encoder holds its stages, each stage its blocks.

:func:`recording` wraps sublayers' ``call`` for the length of a ``with`` block, recording their
arguments and outputs: the trace here uses it, and so does :mod:`keras_lottery.blocks.probe` to read a
sublayer's input and output on data. The trace is TensorFlow-specific, as in ``residual_layers``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import weakref

import keras
import tensorflow as tf

from keras_lottery import compat, tracing
from keras_lottery.blocks.residual_layers import is_residual_layer

__all__ = ["Call", "MAX_DEPTH", "Stack", "list_attribute", "may_be_container", "recording", "stack"]

_PASS_THROUGH = {"Identity", "Cast", "IdentityN", "StopGradient"}

# layer -> {argument signature: Stack or None}; weak, so that a freed layer's id, reused by a new layer,
# never finds the old layer's stack
_cache = weakref.WeakKeyDictionary()


@dataclasses.dataclass(frozen=True)
class Call:
    """One recorded call of a sublayer: its positional and keyword arguments and its output."""

    args: tuple
    kwargs: dict
    output: object


@dataclasses.dataclass(frozen=True)
class Stack:
    """The residual sublayers of a container, in call order, with their traced calls (``KerasTensor`` specs);
    ``inner``: ``(sublayer, Stack)`` for the sublayers of the list that are containers themselves."""

    attribute: str
    layers: tuple
    calls: tuple
    inner: tuple = ()

# how deep stack() looks into containers held by containers (HGNetV2: encoder -> stages -> blocks)
MAX_DEPTH = 3


def list_attribute(layer, members):
    """The name of ``layer``'s public list attribute holding every layer of ``members``, or None."""
    ids = {id(m) for m in members}
    return next((name for name, value in compat.layer_lists(layer) if ids <= {id(v) for v in value}), None)


def _candidates(layer):
    """``(attribute, list)`` for each public attribute of ``layer`` that is a non-empty list of layers."""
    if not isinstance(layer, keras.layers.Layer) or isinstance(layer, keras.Model):
        return
    for name, value in compat.layer_lists(layer):
        if not any(isinstance(v, keras.Model) for v in value):
            yield name, list(value)


@contextlib.contextmanager
def recording(layers):
    """Within the ``with`` block, each call of one of ``layers`` appends a :class:`Call` to ``records[i]``
    (``i`` the layer's position in ``layers``); yields ``records``. The layers' ``call`` is restored after."""
    records = [[] for _ in layers]
    undo = []
    try:
        for layer, record in zip(layers, records):
            def wrapped(*args, _original=layer.call, _record=record, **kwargs):
                output = _original(*args, **kwargs)
                _record.append(Call(args, kwargs, output))
                return output

            undo.append(compat.replace_call(layer, wrapped))
        yield records
    finally:
        for restore in reversed(undo):  # a layer listed twice is unwrapped in the right order
            restore()


def may_be_container(layer):
    """Whether ``layer`` has a public list of layers (a cheap test before :func:`stack`'s trace)."""
    return next(_candidates(layer), None) is not None


def stack(layer, args, kwargs, depth=0):
    """The :class:`Stack` of the call ``layer(*args, **kwargs)`` (symbolic tensors), or None when ``layer`` is
    not a container (see the module docstring); sublayers that are containers are looked into down to
    :data:`MAX_DEPTH` levels (``depth``: this one's)."""
    if keras.backend.backend() != "tensorflow" or depth >= MAX_DEPTH:
        return None
    candidates = list(_candidates(layer))
    if not candidates:
        return None
    symbolic, _ = tracing.node_call(layer, args, kwargs)  # in the order its call function takes them
    if not symbolic:
        return None
    signature = tuple((tuple(t.shape), str(t.dtype)) for t in symbolic)
    traced = _cache.setdefault(layer, {})
    if signature not in traced:
        traced[signature] = _traced_stack(layer, args, kwargs, symbolic, candidates, depth)
    return traced[signature]


def _traced_stack(layer, args, kwargs, symbolic, candidates, depth):
    """Trace the call once with every candidate list recorded; the first list that is a chain holding residual
    sublayers (after a prefix of others: a stage's downsampling first block) or containers wins."""
    members = list({id(sub): sub for _, value in candidates for sub in value}.values())
    found = {}
    _, call_layer = tracing.node_call(layer, args, kwargs)

    def call(*values):
        with recording(members) as records:
            output = call_layer(*values)
        found["records"] = records
        return output

    specs = [tf.TensorSpec(tuple(t.shape), t.dtype) for t in symbolic]
    if tracing.traced_graph(call, specs) is None:  # a layer that cannot be traced on its own is not a container
        return None
    records = dict(zip(map(id, members), found["records"]))
    for attribute, value in candidates:
        calls = [records[id(sub)] for sub in value]
        if all(len(c) == 1 for c in calls) and _chained(value, [c[0] for c in calls]):
            found = _chain_stack(attribute, value, [_as_spec(c[0]) for c in calls], depth)
            if found is not None:
                return found
    return None


def _chain_stack(attribute, value, specs, depth):
    """The :class:`Stack` of a chained list: its residual sublayers, which must follow any non-residual ones
    (a leading downsampling block), and the containers among the others; None when it has neither."""
    residual = [_residual(sub, spec) for sub, spec in zip(value, specs)]
    first = residual.index(True) if True in residual else len(value)
    if not all(residual[first:]):
        return None  # a non-residual sublayer after a residual one: removing the latter changes its input
    inner = tuple((sub, found) for sub, spec in zip(value[:first], specs[:first])
                  if may_be_container(sub) and (found := stack(sub, spec.args, spec.kwargs, depth + 1)) is not None)
    if first == len(value) and not inner:
        return None
    return Stack(attribute, tuple(value[first:]), tuple(specs[first:]), inner)


def _root(tensor):
    """``tensor`` with identities and casts stripped (the tensor they pass through)."""
    while getattr(tensor, "op", None) is not None and tensor.op.type in _PASS_THROUGH and tensor.op.inputs:
        tensor = tensor.op.inputs[0]
    return tensor


def _first(structure):
    flat = keras.tree.flatten(structure)
    return flat[0] if flat else None


def _chained(layers, calls):
    """Whether each call's first argument is the previous call's (first) output, up to identities and casts."""
    for layer, previous, current in zip(layers[1:], calls, calls[1:]):
        a, b = _first(previous.output), tracing.first_input(layer, current.args, current.kwargs, tracing.is_array)
        if not isinstance(a, tf.Tensor) or not isinstance(b, tf.Tensor) or _root(a).name != _root(b).name:
            return False
    return True


def _as_spec(call):
    """The recorded call with its graph tensors replaced by ``KerasTensor`` specs of the same shape and dtype."""
    def spec(t):
        return keras.KerasTensor(tuple(t.shape), dtype=t.dtype.name) if isinstance(t, tf.Tensor) else t

    return Call(keras.tree.map_structure(spec, call.args), keras.tree.map_structure(spec, call.kwargs),
                keras.tree.map_structure(spec, call.output))


def _residual(sublayer, call):
    output = _first(call.output)
    return output is not None and is_residual_layer(sublayer, call.args, call.kwargs, tuple(output.shape))
