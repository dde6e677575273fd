"""The input ``x`` and output ``y`` of residual blocks on data, blocks of nested models included.

A block of a nested model (a KerasHub backbone inside a task model) is read by running the outer
model up to the nested model's call, then the nested model up to the block.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_lottery.graph import FunctionalGraph

__all__ = ["block_io", "token_weights"]


def _reader(model, path, keys):
    """A function ``x -> [arrays of keys]`` for tensors ``keys`` of the model nested at ``path`` in ``model``."""
    graph = FunctionalGraph(model)
    if not path:
        probe = keras.Model(model.input, [graph.tensor(k) for k in keys])
        return lambda x: keras.tree.flatten(probe(x, training=False))
    calls = [node for node in graph.nodes if node[0] == path[0] and graph.node_inputs.get(node)]
    args, kwargs = graph.call_arguments(calls[0]) if len(calls) == 1 else ((), {})
    if len(calls) != 1 or len(args) != 1 or any(isinstance(t, keras.KerasTensor) for t in keras.tree.flatten(kwargs)):
        raise ValueError(f"Nested model {path[0]!r} of {model.name!r} must be called once with one argument to read "
                         f"its blocks' activations.")
    feed = keras.Model(model.input, args[0])
    inner = _reader(model.get_layer(path[0]), path[1:], keys)
    return lambda x: inner(feed(x, training=False))


def block_io(model, blocks, batches):
    """Yield, per ``(x, y)`` batch, ``(x, {block name: (block input, block output)})`` as NumPy arrays."""
    by_path = {}
    for block in blocks:
        by_path.setdefault(block.path, []).append(block)
    readers = []
    for path, group in by_path.items():
        keys = []
        for block in group:
            keys += [tuple(block.input_tensor), (block.add_layer, block.add_node, 0)]
        readers.append((group, _reader(model, path, keys)))
    for x, _ in batches:
        out = {}
        for group, read in readers:
            arrays = [keras.ops.convert_to_numpy(a) for a in read(x)]
            for i, block in enumerate(group):
                out[block.name] = (arrays[2 * i], arrays[2 * i + 1])
        yield x, out


def token_weights(x, array):
    """Per-position weights of ``array`` (batch, positions..., features): the padding mask when ``x`` has one
    of that shape (KerasHub's ``padding_mask``), else ones."""
    shape = array.shape[:-1]
    if isinstance(x, dict) and "padding_mask" in x:
        mask = np.asarray(keras.ops.convert_to_numpy(x["padding_mask"]), np.float64)
        if mask.shape == shape:
            return mask
    return np.ones(shape, np.float64)

