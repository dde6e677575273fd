"""One call of a layer, as a node of a functional graph makes it, traced as a TensorFlow graph.

Residual-layer discovery (:mod:`keras_lottery.blocks.residual_layers`), container discovery
(:mod:`keras_lottery.blocks.containers`) and the op-level FLOPs counter (:mod:`keras_lottery.op_flops`)
read a layer's computation from such a trace: the node's symbolic tensors become the placeholders of a
``tf.function``, every other argument (masks given as Python values, flags) is passed as the node had it.
TensorFlow backend only.

A call's *first input* is what the layer's ``call`` receives as its first parameter, whether it was
passed by position (``layer(x, mask=m)``) or by keyword (``layer(inputs=x, decoder_padding_mask=m)``, as
KerasHub's Falcon backbone calls its decoder layers and Gemma 3's task model its backbone): flattening
``(args, kwargs)`` sorts keyword names, so its first tensor can be a mask (:func:`first_input`).
"""

from __future__ import annotations

import inspect

import keras
import tensorflow as tf

__all__ = ["first_argument", "first_input", "is_array", "node_call", "traced_graph"]


def is_array(value):
    """Whether ``value`` is a tensor of any kind (symbolic, TensorFlow, NumPy): it has a shape and a dtype."""
    return hasattr(value, "shape") and hasattr(value, "dtype")


def _first_parameter(layer):
    """The name of the first parameter of ``layer.call`` (``"inputs"`` for a functional model), or None."""
    try:
        parameters = list(inspect.signature(layer.call).parameters.values())
    except (TypeError, ValueError):
        return None
    first = next((p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)), None)
    return first.name if first is not None else None


def first_argument(layer, args, kwargs):
    """The value ``layer.call``'s first parameter gets in the call ``layer(*args, **kwargs)``: ``args[0]``,
    else the keyword argument of that parameter's name; None when neither is there."""
    if args:
        return args[0]
    name = _first_parameter(layer)
    return kwargs.get(name) if name is not None else None


def first_input(layer, args, kwargs, is_tensor=None):
    """The first tensor of the call's first argument (:func:`first_argument`), or, failing that, the first
    tensor of ``(args, kwargs)``; None when there is none. ``is_tensor`` tells tensors from other
    values (default: ``keras.KerasTensor``)."""
    is_tensor = is_tensor or (lambda t: isinstance(t, keras.KerasTensor))
    for structure in (first_argument(layer, args, kwargs), (args, kwargs)):
        tensors = [t for t in keras.tree.flatten(structure) if is_tensor(t)]
        if tensors:
            return tensors[0]
    return None


def node_call(layer, args, kwargs):
    """``(symbolic, call)``: the ``keras.KerasTensor`` s among ``args``/``kwargs`` (the call's first input
    first, :func:`first_input`, then in flattening order) and a function of one value per such tensor that
    calls ``layer`` with the node's arguments, those values in the tensors' places."""
    symbolic = [t for t in keras.tree.flatten((args, kwargs)) if isinstance(t, keras.KerasTensor)]
    first = first_input(layer, args, kwargs)
    if first is not None:  # a trace's first placeholder is the layer's input, not a keyword mask sorted first
        symbolic = [first] + [t for t in symbolic if t is not first]
    positions = [id(t) for t in symbolic]

    def call(*values):
        by_id = dict(zip(positions, values))
        filled = keras.tree.map_structure(
            lambda t: by_id[id(t)] if isinstance(t, keras.KerasTensor) else t, (args, kwargs))
        return layer(*filled[0], **filled[1])

    return symbolic, call


def traced_graph(function, specs):
    """The graph of ``tf.function(function)`` traced on ``specs`` (``tf.TensorSpec`` s), or ``None`` when the
    call fails (a layer that cannot be called on its own is treated as opaque by every caller)."""
    try:
        return tf.function(function, autograph=False).get_concrete_function(*specs).graph
    except Exception:  # noqa: BLE001 - any failure means "cannot be traced"
        return None
