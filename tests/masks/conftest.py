"""Fixtures for the weight-mask tests: tiny models covering the prunable layer types."""

import numpy as np
import pytest


@pytest.fixture
def conv_model():
    """Functional model with Conv2D, DepthwiseConv2D, SeparableConv2D, Conv2DTranspose, BN and Dense."""
    import keras

    inputs = keras.Input((8, 8, 3), name="x")
    y = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    y = keras.layers.BatchNormalization(name="bn")(y)
    y = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(y)
    y = keras.layers.SeparableConv2D(6, 3, padding="same", name="sep")(y)
    y = keras.layers.Conv2DTranspose(4, 3, strides=2, padding="same", name="deconv")(y)
    y = keras.layers.GlobalAveragePooling2D(name="pool")(y)
    y = keras.layers.Dropout(0.1, name="drop")(y)
    outputs = keras.layers.Dense(5, name="predictions")(y)
    return keras.Model(inputs, outputs, name="conv_model")


@pytest.fixture
def mlp():
    """A small MLP (16 -> 32 -> 24 -> 4); output layer named ``predictions``."""
    import keras

    inputs = keras.Input((16,), name="x")
    y = keras.layers.Dense(32, activation="relu", name="fc1")(inputs)
    y = keras.layers.Dense(24, activation="relu", name="fc2")(y)
    outputs = keras.layers.Dense(4, name="predictions")(y)
    return keras.Model(inputs, outputs, name="mlp")


@pytest.fixture
def mlp_data():
    rng = np.random.default_rng(1)
    return rng.normal(size=(32, 16)).astype("float32"), rng.integers(0, 4, 32)
