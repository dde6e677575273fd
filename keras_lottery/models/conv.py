"""Plain convolutional networks: Conv-2/4/6 (Frankle & Carbin) and VGG-16 for 32x32 inputs."""

import keras

from keras_lottery.models._init import BN_MOMENTUM, InitializerFactory

_CONV_FILTERS = {2: [[64, 64]], 4: [[64, 64], [128, 128]], 6: [[64, 64], [128, 128], [256, 256]]}
_VGG16_FILTERS = [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]]


def conv_net(depth, input_shape=(32, 32, 3), classes=10, seed=None):
    """Conv-2, Conv-4 or Conv-6 of the LTH paper: VGG-like 3x3 conv pairs with max pooling, then
    fully connected layers 256-256-classes. Glorot-normal initialization, logits output.

    Layers: ``block{i}_conv{j}``, ``block{i}_pool``, ``fc1``, ``fc2``, ``predictions``.
    """
    if depth not in _CONV_FILTERS:
        raise ValueError(f"conv_net depth must be one of {sorted(_CONV_FILTERS)}, got {depth!r}.")
    init = InitializerFactory(seed)
    inputs = keras.Input(shape=tuple(input_shape), name="images")
    x = inputs
    for i, filters in enumerate(_CONV_FILTERS[depth], start=1):
        for j, f in enumerate(filters, start=1):
            x = keras.layers.Conv2D(f, 3, padding="same", activation="relu",
                                    kernel_initializer=init("GlorotNormal"), name=f"block{i}_conv{j}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(256, activation="relu", kernel_initializer=init("GlorotNormal"), name="fc1")(x)
    x = keras.layers.Dense(256, activation="relu", kernel_initializer=init("GlorotNormal"), name="fc2")(x)
    outputs = keras.layers.Dense(classes, kernel_initializer=init("GlorotNormal"), name="predictions")(x)
    return keras.Model(inputs, outputs, name=f"conv{depth}")


def vgg16(input_shape=(32, 32, 3), classes=10, seed=None):
    """VGG-16 for 32x32 inputs as in open_lth / the rewinding paper: 13 conv layers with batch norm
    and ReLU, max pooling after each of the first four stages, then global average pooling and one dense
    output layer.
    He-normal initialization, logits output.

    Layers: ``block{i}_conv{j}``, ``block{i}_bn{j}``, ``block{i}_relu{j}``, ``block{i}_pool``,
    ``pool``, ``predictions``.
    """
    init = InitializerFactory(seed)
    inputs = keras.Input(shape=tuple(input_shape), name="images")
    x = inputs
    for i, filters in enumerate(_VGG16_FILTERS, start=1):
        for j, f in enumerate(filters, start=1):
            x = keras.layers.Conv2D(f, 3, padding="same", use_bias=False,
                                    kernel_initializer=init("HeNormal"), name=f"block{i}_conv{j}")(x)
            x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"block{i}_bn{j}")(x)
            x = keras.layers.ReLU(name=f"block{i}_relu{j}")(x)
        if i < len(_VGG16_FILTERS):  # 32x32 reaches 2x2 after four poolings; the last is global.
            x = keras.layers.MaxPooling2D(2, padding="same", name=f"block{i}_pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(classes, kernel_initializer=init("HeNormal"), name="predictions")(x)
    return keras.Model(inputs, outputs, name="vgg16")
