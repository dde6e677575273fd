"""Pruning policies: which layers ``prune_low_magnitude`` wraps when given a whole model."""

import abc

import keras

from keras_lottery import compat, graph, layers
from keras_lottery.masking import MaskedLayer

__all__ = ["PruneForLatencyOnXNNPack", "PruningPolicy"]


class PruningPolicy(abc.ABC):
    """Decides which layers of a model are pruned (``allow_pruning``) and whether the model fits the
    policy at all (``ensure_model_supports_pruning``, raising ``ValueError`` if not). Subclass it."""

    @abc.abstractmethod
    def allow_pruning(self, layer):
        """Whether ``layer`` gets a pruning wrapper."""

    @abc.abstractmethod
    def ensure_model_supports_pruning(self, model):
        """Raises ``ValueError`` if ``model`` cannot be pruned under this policy."""


class PruneForLatencyOnXNNPack(PruningPolicy):
    """Prune only the 1x1 ``Conv2D`` layers (stride 1, no groups, no dilation): the layers XNNPACK's
    sparse inference runs faster (Elsen et al., "Fast Sparse ConvNets").

    ``ensure_model_supports_pruning`` does TFMOT's checks on the model's graph (a built Sequential or
    functional model; pruning wrappers are looked into, so a pruned model passes as its dense one does):
    every input branch must reach a 3x3 stride-2 ``Conv2D`` with ``valid`` padding over 3 input
    channels, fed by a ``ZeroPadding2D`` of 1 (where XNNPACK's sparse subgraph starts); every output
    branch must come from a ``GlobalAveragePooling2D`` (where it ends); and every layer between them
    must be one XNNPACK runs sparse (1x1 convolutions, 3x3 / 5x5 depthwise convolutions, batch norm,
    the activations ReLU / ReLU6 / LeakyReLU / ELU / sigmoid, ``Add`` / ``Multiply`` and ``x + y``,
    ``x - y``, ``x * y``, bilinear ``UpSampling2D``, ``ZeroPadding2D``, ``Dropout``). A nested model is
    not looked into (it is refused where it lies between the two ends). A model with no 1x1
    convolution passes and gets no wrapper, as in TFMOT.
    """

    @staticmethod
    def _sparse_1x1(layer):
        return (type(layer) is keras.layers.Conv2D and tuple(layer.kernel_size) == (1, 1)
                and tuple(layer.strides) == (1, 1) and tuple(layer.dilation_rate) == (1, 1)
                and getattr(layer, "groups", 1) == 1)

    def allow_pruning(self, layer):
        return self._sparse_1x1(layer)

    # -- the graph, at the level of layers and operations (TFMOT's _get_producers / _get_consumers) --
    @staticmethod
    def _links(model):
        """``(operations by name, producers, consumers, input names, output names)`` of ``model``'s graph."""
        if isinstance(model, keras.Sequential):
            ops = list(model.layers)
            names = [op.name for op in ops]
            producers = {name: ({names[i - 1]} if i else set()) for i, name in enumerate(names)}
            consumers = {name: ({names[i + 1]} if i + 1 < len(names) else set()) for i, name in enumerate(names)}
            return {op.name: op for op in ops}, producers, consumers, names[:1], names[-1:]
        g = graph.FunctionalGraph(model)
        producers, consumers = {}, {}
        for (name, _), inputs in g.node_inputs.items():
            producers.setdefault(name, set()).update(key[0] for key in inputs)
            consumers.setdefault(name, set())
            for key in inputs:
                consumers.setdefault(key[0], set()).add(name)
        return (g.operations, producers, consumers, [key[0] for key in g.input_keys],
                [key[0] for key in g.output_keys])

    @staticmethod
    def _lookup(sources, stop, following):
        """TFMOT's ``_lookup_layers``: from ``sources``, follow ``following`` until ``stop``; the names where it
        stopped, or an empty set when a branch ends first."""
        to_visit, used, found = list(sources), set(sources), set()
        while to_visit:
            name = to_visit.pop()
            if stop(name):
                found.add(name)
                continue
            after = following(name)
            if not after:
                return set()
            for nxt in after:
                if nxt not in used:
                    used.add(nxt)
                    to_visit.append(nxt)
        return found

    @staticmethod
    def _unwrap(op):
        return op.layer if isinstance(op, MaskedLayer) else op

    def _is_start(self, op, producers):
        op = self._unwrap(op)
        if not isinstance(op, keras.layers.Conv2D) or not op.built:
            return False
        return (tuple(op.kernel.shape[:3]) == (3, 3, 3) and tuple(op.strides) == (2, 2)
                and op.padding.lower() == "valid" and len(producers) == 1
                and isinstance(producers[0], keras.layers.ZeroPadding2D)
                and tuple(map(tuple, producers[0].padding)) == ((1, 1), (1, 1)))

    def _supported(self, op, producers):
        """TFMOT's ``_check_layer_support``: whether XNNPACK's sparse inference runs ``op``."""
        op = self._unwrap(op)
        if not isinstance(op, keras.layers.Layer):  # x + y, keras.ops.add: an operation node
            return type(op).__name__ in ("Add", "Subtract", "Multiply", "Identity")
        if isinstance(op, (keras.layers.Add, keras.layers.Multiply, keras.layers.ZeroPadding2D, keras.layers.ReLU,
                           keras.layers.LeakyReLU, keras.layers.ELU, keras.layers.Dropout)):
            return True
        if isinstance(op, keras.layers.DepthwiseConv2D):
            padding = op.padding.lower()
            pad = producers[0].padding if len(producers) == 1 and isinstance(producers[0], keras.layers.ZeroPadding2D) \
                else None
            pad = None if pad is None else tuple(map(tuple, pad))
            kernel, strides = tuple(op.kernel_size), tuple(op.strides)
            same = padding == "same" and strides == (1, 1) and kernel in ((3, 3), (5, 5))
            padded = (padding == "valid" and strides in ((1, 1), (2, 2))
                      and ((kernel == (3, 3) and pad == ((1, 1), (1, 1))) or (kernel == (5, 5) and pad == ((2, 2), (2, 2)))))
            return op.depth_multiplier == 1 and tuple(op.dilation_rate) == (1, 1) and (same or padded)
        if isinstance(op, keras.layers.Conv2D):
            return self._sparse_1x1(op) or (getattr(op, "groups", 1) == 1 and tuple(op.kernel_size) == (1, 1)
                                            and tuple(op.strides) == (1, 1) and tuple(op.dilation_rate) == (1, 1))
        if isinstance(op, keras.layers.GlobalAveragePooling2D):
            return bool(op.keepdims)
        if isinstance(op, keras.layers.BatchNormalization):
            return op.axis in (3, -1) or list(getattr(op, "axis", [])) in ([3], [-1])
        if isinstance(op, keras.layers.UpSampling2D):
            return op.interpolation == "bilinear"
        if isinstance(op, keras.layers.Activation):
            return getattr(op.activation, "__name__", "") in ("relu", "relu6", "leaky_relu", "elu", "sigmoid")
        return False

    def ensure_model_supports_pruning(self, model):
        if not (isinstance(model, keras.Sequential) or compat.is_functional_class(model)):
            raise ValueError("PruneForLatencyOnXNNPack: subclassed models are not supported; build the model as a "
                             "Sequential or functional model, or prune it without this policy.")
        if not model.built:
            raise ValueError("PruneForLatencyOnXNNPack: unbuilt models are not supported; build the model first "
                             "(give it a keras.Input or call it on data).")
        if any(getattr(layer, "data_format", "channels_last") != "channels_last" for layer in layers.walk(model)):
            raise ValueError("PruneForLatencyOnXNNPack: XNNPACK sparse inference needs channels_last layers.")
        ops, producers, consumers, inputs, outputs = self._links(model)
        producer_ops = lambda name: [ops[p] for p in sorted(producers.get(name, ())) if p in ops]  # noqa: E731
        starts = self._lookup(inputs, lambda name: self._is_start(ops[name], producer_ops(name)),
                              lambda name: consumers.get(name, set()))
        if not starts:
            raise ValueError("PruneForLatencyOnXNNPack: every input branch must start with a 3x3 Conv2D of stride 2, "
                             "3 input channels and 'valid' padding after a ZeroPadding2D of 1 (where XNNPACK's sparse "
                             "part starts); add one, or prune without this policy.")
        ends = self._lookup(outputs, lambda name: isinstance(ops[name], keras.layers.GlobalAveragePooling2D),
                            lambda name: producers.get(name, set()))
        if not ends:
            raise ValueError("PruneForLatencyOnXNNPack: every output branch must come from a GlobalAveragePooling2D "
                             "(where XNNPACK's sparse part ends); add one, or prune without this policy.")

        def visit(name):
            if name not in ends and not self._supported(ops[name], producer_ops(name)):
                op = self._unwrap(ops[name])
                raise ValueError(f"PruneForLatencyOnXNNPack: layer {name!r} ({type(op).__name__}) between the first "
                                 "3x3 convolution and the GlobalAveragePooling2D does not run sparse in XNNPACK; "
                                 "replace it (see the policy's docstring) or prune without this policy.")
            return name in ends

        self._lookup({c for start in starts for c in consumers.get(start, set())}, visit,
                     lambda name: consumers.get(name, set()))
