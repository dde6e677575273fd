"""Fixtures of the filter tests: a tiny graph with every channel rule (residual Add layer, ``x + y``
operation, depthwise convolution, Concatenate, Flatten before Dense)."""

import keras
import numpy as np
import pytest


def _tiny_graph():
    L = keras.layers
    x = keras.Input((8, 8, 3), name="x")
    a = L.ReLU(name="r1")(L.BatchNormalization(name="bn1")(L.Conv2D(6, 3, padding="same", name="c1")(x)))
    b = L.ReLU(name="r2")(L.BatchNormalization(name="bn2")(L.DepthwiseConv2D(3, padding="same", name="dw")(a)))
    c = L.BatchNormalization(name="bn3")(L.Conv2D(6, 1, name="c2")(b))
    d = L.Add(name="res_add")([a, c])  # ties c2's channels to c1's
    e = L.ReLU(name="r3")(L.Conv2D(4, 3, padding="same", name="c3")(d))
    f = L.Conv2D(5, 1, name="c4")(d)
    h = L.Concatenate(name="cat")([e, f]) * 0.5  # c3 at offset 0, c4 at offset 4; an operation node
    i = L.MaxPooling2D(2, name="pool")(L.Conv2D(7, 3, strides=2, padding="same", name="c5")(h))
    k = L.Flatten(name="flat")(i)  # 2 x 2 x 7: channel c owns rows 7 s + c of the dense kernels
    m = L.Dense(8, name="fc1")(k) + L.Dense(8, name="fc2")(k)  # an ``x + y`` node ties fc1 and fc2
    out = L.Dense(3, name="out")(keras.ops.relu(m))
    return keras.Model(x, out, name="tiny_graph")


@pytest.fixture
def tiny_graph():
    """A tiny functional model covering the channel rules; BN statistics made non-trivial."""
    model = _tiny_graph()
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([rng.normal(size=w.shape).astype("float32") if i < 3 else
                               rng.uniform(0.5, 2.0, size=w.shape).astype("float32")
                               for i, w in enumerate(layer.weights)])
    return model


@pytest.fixture(scope="session")
def images8():
    rng = np.random.default_rng(3)
    return rng.normal(size=(4, 8, 8, 3)).astype("float32"), rng.integers(0, 3, size=4)
