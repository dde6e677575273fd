"""Small tickets shared by the export tests (imported by conftest.py and test modules)."""

def masked_lenet():
    """A tiny LeNet and its weight ticket: masked, then 80% of the hidden kernels pruned by magnitude.

    Returns ``(dense, masked, mask)``; ``mask`` is the ``Mask`` installed in ``masked``.
    """
    import keras_lottery as kl
    from keras_lottery.masks import Mask

    dense = kl.models.lenet_300_100(input_shape=(6, 6, 1), classes=4, seed=3)
    masked = kl.mask(dense)
    kl.prune(masked, kl.GlobalMagnitude(rate=0.8, exclude=["predictions"]))
    return dense, masked, Mask.from_model(masked)


def layer_ticket():
    """A tiny ResNet-14 and the same network with one removable residual block removed."""
    import keras_lottery as kl
    from keras_lottery import blocks

    dense = kl.models.resnet_cifar(14, input_shape=(8, 8, 3), classes=4, width=4, seed=5)
    removable = blocks.find_blocks(dense, warn=False).removable
    ticket = blocks.remove(dense, [removable[0].name])
    return dense, ticket, removable[0].name
