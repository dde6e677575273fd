"""Pruning policies: which layers ``prune_low_magnitude`` wraps when given a whole model."""

import abc

import keras

from keras_lottery import compat, layers

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

    ``ensure_model_supports_pruning`` checks what can be checked from the layer list: a built
    Sequential or functional model in NHWC with at least one such convolution and a
    ``GlobalAveragePooling2D``. TFMOT also walks the graph between the first 3x3 stride-2 convolution
    and the pooling to reject operations XNNPACK cannot run sparse; that walk is not done here, so
    a model that passes may still run partly dense in XNNPACK.
    """

    @staticmethod
    def _sparse_1x1(layer):
        return (type(layer) is keras.layers.Conv2D and tuple(layer.kernel_size) == (1, 1)
                and tuple(layer.strides) == (1, 1) and tuple(layer.dilation_rate) == (1, 1)
                and getattr(layer, "groups", 1) == 1)

    def allow_pruning(self, layer):
        return self._sparse_1x1(layer)

    def ensure_model_supports_pruning(self, model):
        if not (isinstance(model, keras.Sequential) or compat.is_functional_class(model)):
            raise ValueError("PruneForLatencyOnXNNPack: subclassed models are not supported.")
        if not model.built:
            raise ValueError("PruneForLatencyOnXNNPack: build the model first.")
        found = list(layers.walk(model))
        if not any(self._sparse_1x1(layer) for layer in found):
            raise ValueError("PruneForLatencyOnXNNPack: the model has no 1x1 Conv2D (stride 1) to prune.")
        if not any(isinstance(layer, keras.layers.GlobalAveragePooling2D) for layer in found):
            raise ValueError("PruneForLatencyOnXNNPack: the model has no GlobalAveragePooling2D ending the sparse part.")
        if any(getattr(layer, "data_format", "channels_last") != "channels_last" for layer in found):
            raise ValueError("PruneForLatencyOnXNNPack: XNNPACK sparse inference needs channels_last layers.")
