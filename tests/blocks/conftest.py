"""Shared, session-scoped models for the block tests (built once: TF start-up is slow on 2 cores)."""

import keras
import numpy as np
import pytest

import keras_lottery as kl


def _build(fn):
    keras.utils.set_random_seed(7)
    return fn()


@pytest.fixture(scope="session")
def resnet14():
    """Zoo CIFAR ResNet-14: 6 blocks, 4 removable (the first blocks of stages 2 and 3 project)."""
    return _build(lambda: kl.models.resnet_cifar(14, input_shape=(16, 16, 3), classes=10, width=8, seed=3))


@pytest.fixture(scope="session")
def resnet50():
    return _build(lambda: keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=10))


@pytest.fixture(scope="session")
def resnet50v2():
    return _build(lambda: keras.applications.ResNet50V2(weights=None, input_shape=(32, 32, 3), classes=10))


@pytest.fixture(scope="session")
def mobilenetv2():
    return _build(lambda: keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), classes=10,
                                                         alpha=0.35))


@pytest.fixture(scope="session")
def images16():
    rng = np.random.default_rng(11)
    return rng.normal(size=(8, 16, 16, 3)).astype("float32"), rng.integers(0, 10, size=8)


@pytest.fixture(scope="session")
def images32():
    rng = np.random.default_rng(12)
    return rng.normal(size=(2, 32, 32, 3)).astype("float32")


def zeroed_branch_copy(model, block_names):
    """A clone of ``model`` (same graph) whose listed branches output exactly zero.

    The last layer of each branch gets zero weights: batch norm gamma and beta, or kernel and bias.
    Built with keras.models.clone_model, independently of keras_lottery.blocks.rewrite.
    """
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    blocks = {b.name: b for b in kl.blocks.find_blocks(model)}
    for name in block_names:
        layer = clone.get_layer(blocks[name].branch_output)
        if isinstance(layer, keras.layers.BatchNormalization):
            targets = [layer.gamma, layer.beta]
        else:
            targets = list(layer.weights)
        assert targets, f"cannot zero {layer.name}"
        for w in targets:
            w.assign(np.zeros(w.shape, w.dtype))
    return clone
