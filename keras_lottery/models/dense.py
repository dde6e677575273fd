"""Fully connected networks of the lottery ticket papers."""

import keras

from keras_lottery.models._init import InitializerFactory


def lenet_300_100(input_shape=(28, 28, 1), classes=10, seed=None):
    """LeNet-300-100 (Frankle & Carbin): two hidden layers of 300 and 100 ReLU units.

    Weights use Glorot-normal initialization, as in the LTH paper; the output is logits.
    Layers: ``fc1``, ``fc2``, ``predictions``.
    """
    init = InitializerFactory(seed)
    inputs = keras.Input(shape=tuple(input_shape), name="images")
    x = keras.layers.Flatten(name="flatten")(inputs)
    x = keras.layers.Dense(300, activation="relu", kernel_initializer=init("GlorotNormal"), name="fc1")(x)
    x = keras.layers.Dense(100, activation="relu", kernel_initializer=init("GlorotNormal"), name="fc2")(x)
    outputs = keras.layers.Dense(classes, kernel_initializer=init("GlorotNormal"), name="predictions")(x)
    return keras.Model(inputs, outputs, name="lenet_300_100")
