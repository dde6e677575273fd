"""Criteria comparing the network with and without a block: ``kl`` and ``cka``, on an ablation engine
that zeroes one block's branch."""

from __future__ import annotations

import keras
import numpy as np

from keras_lottery.blocks.criteria.activations import model_inputs
from keras_lottery.blocks.criteria.registry import require_data, register
from keras_lottery.blocks.discovery import operations
from keras_lottery.graph import FunctionalGraph
from keras_lottery.blocks.rewrite import remove


def _zeroable(layer):
    """Whether zeroing ``layer``'s weights makes its output exactly zero."""
    cls = type(layer).__name__
    if cls == "BatchNormalization":
        return layer.scale
    activation = getattr(layer, "activation", None)
    linear = activation is None or getattr(activation, "__name__", "") in ("linear", "relu")
    return cls in ("Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D", "Dense", "SeparableConv2D") and linear


class _Ablation:
    """Outputs of the layers ``names`` with one block's branch forced to zero (inference mode).

    When the branch's last layer is zeroable (batch norm with scale, or a linear/ReLU convolution or
    dense layer), its weights are replaced by zeros through ``stateless_call``; otherwise the block is
    removed with :func:`~keras_lottery.blocks.rewrite.remove` (same function, slower).
    """

    def __init__(self, model, names):
        self.model, self.names = model, list(names)
        self.probe = _probe(model, self.names)

    def reference(self, x):
        return self._listed(self.probe(x, training=False))

    def _listed(self, outputs):
        return [keras.ops.convert_to_numpy(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]

    def __call__(self, block, x):
        layer = operations(self.model, block, [block.branch_output])[0]
        if isinstance(layer, keras.layers.Layer) and _zeroable(layer):
            if type(layer).__name__ == "BatchNormalization":
                zero = {id(layer.gamma)} | ({id(layer.beta)} if layer.center else set())
            else:
                zero = {id(w) for w in layer.weights}
            trainable = [keras.ops.zeros_like(v.value) if id(v) in zero else v.value
                         for v in self.probe.trainable_variables]
            frozen = [keras.ops.zeros_like(v.value) if id(v) in zero else v.value
                      for v in self.probe.non_trainable_variables]
            outputs, _ = self.probe.stateless_call(trainable, frozen, x, training=False)
            return self._listed(outputs)
        ticket = remove(self.model, [block])
        probe = _probe(ticket, self.names)
        return self._listed(probe(x, training=False))


def _probe(model, names):
    """A model from ``model``'s inputs to the outputs of the nodes ``names`` (layers or operations like ``x + y``)."""
    graph = FunctionalGraph(model)
    return keras.Model(model_inputs(model), [graph.operation(n).output for n in names])


def _output_layer_names(model):
    graph = FunctionalGraph(model)
    return graph, [key[0] for key in graph.output_keys]


def _representation_name(model, layer):
    """``layer`` or the name of the layer feeding the model's (first) output layer."""
    if layer is not None:
        FunctionalGraph(model).operation(layer)  # a clear error for an unknown name
        return layer
    graph, outputs = _output_layer_names(model)
    inputs = graph.node_inputs[(outputs[0], 0)]
    if not inputs:
        raise ValueError(f"{model.name!r}: its output layer {outputs[0]!r} has no input; pass layer=.")
    return inputs[0][0]


@register("kl")
def kl_divergence(model, blocks, data, *, loss, seed, from_logits=True):
    """Mean ``KL(p || q)``: network output ``p`` vs output ``q`` with the block's branch removed."""
    batches = require_data(data, "kl")
    ablation = _Ablation(model, _output_layer_names(model)[1][:1])
    sums = {b.name: 0.0 for b in blocks}
    count = 0

    def probabilities(z):
        z = np.asarray(z, np.float64)
        if not from_logits:
            return np.clip(z, 1e-12, 1.0)
        z = z - z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return np.clip(e / e.sum(axis=-1, keepdims=True), 1e-12, 1.0)

    for x, _ in batches:
        p = probabilities(ablation.reference(x)[0])
        for block in blocks:
            q = probabilities(ablation(block, x)[0])
            sums[block.name] += float((p * (np.log(p) - np.log(q))).sum())
        count += p.shape[0]
    return {name: value / count for name, value in sums.items()}


def linear_cka(a, b):
    """Linear centered kernel alignment of two ``(examples, features)`` matrices (Kornblith et al. 2019)."""
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    b = np.asarray(b, np.float64).reshape(len(b), -1)
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    cross = np.linalg.norm(b.T @ a) ** 2
    norm = np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b)
    return float(cross / norm) if norm > 0 else 0.0


@register("cka")
def cka(model, blocks, data, *, loss, seed, layer=None):
    """``1 - linear CKA`` of the representation (input of the output layer, or ``layer``) with and without the block."""
    batches = require_data(data, "cka")
    ablation = _Ablation(model, [_representation_name(model, layer)])
    reference, ablated = [], {b.name: [] for b in blocks}
    for x, _ in batches:
        reference.append(ablation.reference(x)[0])
        for block in blocks:
            ablated[block.name].append(ablation(block, x)[0])
    if sum(len(r) for r in reference) < 2:
        raise ValueError("cka needs at least two examples in data.")
    ref = np.concatenate(reference)
    return {name: 1.0 - linear_cka(ref, np.concatenate(parts)) for name, parts in ablated.items()}
