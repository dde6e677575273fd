"""CIFAR ResNets of depth 6n+2 (He et al. 2016, section 4.2)."""

import keras

from keras_lottery.models._init import BN_MOMENTUM, InitializerFactory

_STAGE_FILTERS = (16, 32, 64)


def _basic_block(x, filters, stride, name, init, weight_decay):
    """conv-bn-relu-conv-bn on the branch, identity or 1x1 projection shortcut, add, relu."""
    reg = keras.regularizers.L2(weight_decay) if weight_decay else None
    conv = dict(padding="same", use_bias=False, kernel_regularizer=reg)
    y = keras.layers.Conv2D(filters, 3, strides=stride, kernel_initializer=init("HeNormal"),
                            name=f"{name}_conv1", **conv)(x)
    y = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn1")(y)
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = keras.layers.Conv2D(filters, 3, kernel_initializer=init("HeNormal"), name=f"{name}_conv2", **conv)(y)
    y = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn2")(y)
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=stride, kernel_initializer=init("HeNormal"),
                                       name=f"{name}_shortcut_conv", **conv)(x)
        shortcut = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_shortcut_bn")(shortcut)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def resnet_cifar(depth=20, input_shape=(32, 32, 3), classes=10, width=16, seed=None, weight_decay=0.0):
    """A CIFAR ResNet of depth 6n+2 (20, 32, 44, 56, 110, ...).

    Three stages of n basic blocks with ``width``, 2x``width`` and 4x``width`` filters; identity
    shortcuts inside a stage and 1x1 projection shortcuts (with batch norm) where a stage starts
    with stride 2. He-normal initialization, logits output. Weight decay, when given, is an L2
    kernel regularizer on the convolutions and the output Dense layer (the optimizer's decoupled decay is
    the alternative).

    Layers: ``stem_conv``, ``stem_bn``, ``stem_relu``, then for stage s and block b
    ``stage{s}_block{b}_conv1`` / ``_bn1`` / ``_relu1`` / ``_conv2`` / ``_bn2`` /
    ``_shortcut_conv`` / ``_shortcut_bn`` / ``_add`` / ``_out``, then ``pool`` and ``predictions``.
    """
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"resnet_cifar depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 56, 110, ...), got {depth!r}.")
    blocks_per_stage = (depth - 2) // 6
    init = InitializerFactory(seed)
    reg = keras.regularizers.L2(weight_decay) if weight_decay else None
    inputs = keras.Input(shape=tuple(input_shape), name="images")
    x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, kernel_initializer=init("HeNormal"),
                            kernel_regularizer=reg, name="stem_conv")(inputs)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    for s, multiplier in enumerate((1, 2, 4), start=1):
        for b in range(1, blocks_per_stage + 1):
            stride = 2 if (s > 1 and b == 1) else 1
            x = _basic_block(x, width * multiplier, stride, f"stage{s}_block{b}", init, weight_decay)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(classes, kernel_initializer=init("HeNormal"), kernel_regularizer=reg,
                                 name="predictions")(x)
    return keras.Model(inputs, outputs, name=f"resnet{depth}")
