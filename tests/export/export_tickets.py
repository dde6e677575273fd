"""Small tickets shared by the export tests (imported by conftest.py and test modules)."""

import numpy as np


def masked_lenet():
    """A tiny LeNet, masked, with about 80% of fc1/fc2 and half of predictions pruned by a numpy mask."""
    import keras_lottery as kl
    from keras_lottery import wrappers
    from keras_lottery.masks import Mask

    dense = kl.models.lenet_300_100(input_shape=(6, 6, 1), classes=4, seed=3)
    masked = wrappers.mask(dense)
    rng = np.random.default_rng(7)
    rates = {"fc1/kernel": 0.8, "fc2/kernel": 0.8, "predictions/kernel": 0.5}
    current = Mask.from_model(masked)
    mask = Mask({path: rng.random(current[path].shape) >= rates[path] for path in current})
    mask.apply_to(masked)
    return dense, masked, mask


def layer_ticket():
    """A tiny ResNet-14 and the same network with one removable residual block removed."""
    import keras_lottery as kl
    from keras_lottery import blocks

    dense = kl.models.resnet_cifar(14, input_shape=(8, 8, 3), classes=4, width=4, seed=5)
    removable = blocks.find_blocks(dense, warn=False).removable
    ticket = blocks.remove(dense, [removable[0].name])
    return dense, ticket, removable[0].name
