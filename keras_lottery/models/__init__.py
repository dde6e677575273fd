"""The model zoo: functional Keras models with stable, meaningful layer names.

Every builder takes ``input_shape``, ``classes`` and ``seed`` (which fixes the initialization) and
returns a built functional ``keras.Model`` whose output is logits. ``get(name, ...)`` builds
a model by its short name (``lenet_300_100``, ``conv2``, ``conv4``, ``conv6``, ``vgg16``,
``resnet20``, ``resnet32``, ``resnet56``, ``resnet110``, or any ``resnet<6n+2>``; ``vit_2``, ``vit_4``,
``vit_6`` or any ``vit_<depth>``: a small vision transformer with that many encoder blocks).
"""

import re

from keras_lottery.models.conv import conv_net, vgg16
from keras_lottery.models.dense import lenet_300_100
from keras_lottery.models.resnet import resnet_cifar
from keras_lottery.models.vit import PositionEmbedding, vit

_FIXED = {
    "lenet_300_100": lambda **kw: lenet_300_100(**kw),
    "conv2": lambda **kw: conv_net(2, **kw),
    "conv4": lambda **kw: conv_net(4, **kw),
    "conv6": lambda **kw: conv_net(6, **kw),
    "vgg16": lambda **kw: vgg16(**kw),
}
_RESNET = re.compile(r"^resnet(\d+)$")
_VIT = re.compile(r"^vit_(\d+)$")


def names():
    """The model names ``get`` accepts (ResNets listed by their usual depths)."""
    return sorted(_FIXED) + ["resnet20", "resnet32", "resnet56", "resnet110", "vit_2", "vit_4", "vit_6"]


def check_name(name):
    """Raises ValueError unless ``name`` is a zoo model (a ResNet's depth must be 6n+2)."""
    match = _RESNET.match(name)
    if name in _FIXED or (match and int(match.group(1)) >= 8 and (int(match.group(1)) - 2) % 6 == 0):
        return
    vit_match = _VIT.match(name)
    if vit_match and int(vit_match.group(1)) >= 1:
        return
    raise ValueError(f"Unknown model {name!r}. Accepted: {', '.join(names())} (or resnet<6n+2>, vit_<depth>).")


def get(name, input_shape, classes, seed=None, **kwargs):
    """Builds the zoo model called ``name`` for ``input_shape`` and ``classes``."""
    check_name(name)
    if name in _FIXED:
        return _FIXED[name](input_shape=input_shape, classes=classes, seed=seed, **kwargs)
    match = _RESNET.match(name)
    if match:
        return resnet_cifar(int(match.group(1)), input_shape=input_shape, classes=classes, seed=seed, **kwargs)
    match = _VIT.match(name)
    if match:
        return vit(int(match.group(1)), input_shape=input_shape, classes=classes, seed=seed, **kwargs)
    raise ValueError(f"Unknown model {name!r}. Accepted: {', '.join(names())} (or resnet<6n+2>).")


__all__ = ["PositionEmbedding", "check_name", "conv_net", "get", "lenet_300_100", "names", "resnet_cifar", "vgg16", "vit"]
