"""The input ``x`` and output ``y`` of residual blocks on data, blocks of nested models included.

A block of a nested model (a KerasHub backbone inside a task model) is read by running the outer
model up to the nested model's call, then the nested model up to the block. A sublayer of a container
layer (``kind="sublayer"``, e.g. a block of KerasHub's ``ViTEncoder``) has no tensor in any graph: the
whole model is run eagerly with the sublayers' calls recorded (:func:`keras_lottery.blocks.containers.recording`),
and the block's input and output are its call's first argument and output.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_lottery import tracing
from keras_lottery.blocks import containers
from keras_lottery.blocks.discovery import operations
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
    inner_model = model.get_layer(path[0])
    feed = tracing.first_argument(inner_model, args, kwargs)  # by keyword too: Gemma 3's backbone(inputs=...)
    symbolic = [t for t in keras.tree.flatten((args, kwargs)) if isinstance(t, keras.KerasTensor)]
    if len(calls) != 1 or feed is None or len(keras.tree.flatten(feed)) != len(symbolic):
        raise ValueError(f"Nested model {path[0]!r} of {model.name!r} must be called once with one argument to read "
                         f"its blocks' activations.")
    feed = keras.Model(model.input, feed)
    inner = _reader(inner_model, path[1:], keys)
    return lambda x: inner(feed(x, training=False))


def _recorder(model, blocks):
    """A function ``x -> {block name: (input, output)}`` for sublayer blocks: one eager call of ``model``,
    the sublayers' calls recorded."""
    layers = [operations(model, block, [block.add_layer])[0] for block in blocks]

    def read(x):
        with containers.recording(layers) as records:
            model(x, training=False)
        out = {}
        for block, layer, calls in zip(blocks, layers, records):
            if len(calls) != 1:
                raise ValueError(f"Block {block.name!r} was called {len(calls)} times in one call of {model.name!r}; "
                                 f"its input and output must come from exactly one call.")
            call = calls[0]
            pair = (tracing.first_input(layer, call.args, call.kwargs, tracing.is_array),
                    keras.tree.flatten(call.output)[0])
            out[block.name] = tuple(keras.ops.convert_to_numpy(a) for a in pair)
        return out

    return read


def block_io(model, blocks, batches):
    """Yield, per ``(x, y)`` batch, ``(x, {block name: (block input, block output)})`` as NumPy arrays."""
    sublayers = [block for block in blocks if block.kind == "sublayer"]
    record = _recorder(model, sublayers) if sublayers else None
    by_path = {}
    for block in blocks:
        if block.kind != "sublayer":
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
        if record is not None:
            out.update(record(x))
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

