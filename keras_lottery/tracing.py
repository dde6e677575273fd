"""One call of a layer, as a node of a functional graph makes it, traced as a TensorFlow graph.

Residual-layer discovery (:mod:`keras_lottery.blocks.residual_layers`), container discovery
(:mod:`keras_lottery.blocks.containers`) and the op-level FLOPs counter (:mod:`keras_lottery.op_flops`)
read a layer's computation from such a trace: the node's symbolic tensors become the placeholders of a
``tf.function``, every other argument (masks given as Python values, flags) is passed as the node had it.
TensorFlow backend only.
"""

from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["node_call", "traced_graph"]


def node_call(layer, args, kwargs):
    """``(symbolic, call)``: the ``keras.KerasTensor`` s among ``args``/``kwargs`` (in flattening order) and a
    function of one value per such tensor that calls ``layer`` with the node's arguments, those values in
    the tensors' places."""
    symbolic = [t for t in keras.tree.flatten((args, kwargs)) if isinstance(t, keras.KerasTensor)]
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
