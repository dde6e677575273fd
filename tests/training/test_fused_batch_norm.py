"""The fused batch normalization computes what Keras' BatchNormalization computes (float rounding aside)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_lottery.training.fused_batch_norm import fuse_batch_norm, is_fused


def _pair(**kwargs):
    """Two identical small conv nets with batch norm; the second fused."""
    def build():
        keras.utils.set_random_seed(3)
        x = keras.Input((6, 6, 2))
        h = keras.layers.Conv2D(4, 3, padding="same", name="conv")(x)
        h = keras.layers.BatchNormalization(momentum=0.8, name="bn", **kwargs)(h)
        return keras.Model(x, keras.layers.Dense(3, name="out")(keras.layers.Flatten()(h)))

    plain, fused = build(), build()
    assert fuse_batch_norm(fused) == 1 and is_fused(fused.get_layer("bn")) and not is_fused(plain.get_layer("bn"))
    return plain, fused


@pytest.mark.parametrize("kwargs", [{}, {"scale": False}, {"center": False, "epsilon": 0.1}])
def test_training_step_matches_keras(kwargs):
    plain, fused = _pair(**kwargs)
    x = np.random.default_rng(0).normal(2.0, 3.0, size=(5, 6, 6, 2)).astype("float32")
    grads, outputs = [], []
    for model in (plain, fused):
        with tf.GradientTape() as tape:
            y = model(x, training=True)
            loss = tf.reduce_sum(y * y)
        grads.append(tape.gradient(loss, model.trainable_variables))
        outputs.append(y)
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-4, atol=1e-4)
    for g_plain, g_fused in zip(*grads):
        np.testing.assert_allclose(g_fused, g_plain, rtol=1e-3, atol=1e-4)
    for name in ("moving_mean", "moving_variance"):
        np.testing.assert_allclose(getattr(fused.get_layer("bn"), name), getattr(plain.get_layer("bn"), name),
                                   rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fused(x, training=False), plain(x, training=False), rtol=1e-4, atol=1e-4)


def test_fit_and_frozen_layers_match_keras():
    plain, fused = _pair()
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(32, 6, 6, 2)).astype("float32"), rng.integers(0, 3, 32)
    for model in (plain, fused):
        model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(plain.weights, fused.weights):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-4)
    for model in (plain, fused):  # a frozen layer normalizes with its moving statistics, even in training
        model.get_layer("bn").trainable = False
    np.testing.assert_allclose(fused(x, training=True), plain(x, training=True), rtol=1e-4, atol=1e-4)


def test_calls_the_kernel_cannot_serve_run_keras_own_call():
    layer = keras.layers.BatchNormalization(axis=1)  # channels first
    model = keras.Sequential([keras.Input((3, 4, 4)), layer])
    reference = keras.layers.BatchNormalization(axis=1)
    reference.build((None, 3, 4, 4))
    fuse_batch_norm(model)
    x = np.random.default_rng(2).normal(size=(2, 3, 4, 4)).astype("float32")
    np.testing.assert_allclose(model(x, training=True), reference(x, training=True), rtol=1e-5, atol=1e-5)


def test_the_model_keeps_its_class_config_and_saved_form(tmp_path):
    plain, fused = _pair()
    assert fuse_batch_norm(fused) == 1  # twice: still one fused call, not a fused call of a fused call
    assert type(fused.get_layer("bn")) is keras.layers.BatchNormalization
    assert fused.get_layer("bn").get_config() == plain.get_layer("bn").get_config()
    fused.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    x = np.ones((2, 6, 6, 2), "float32")
    np.testing.assert_allclose(loaded(x), fused(x), rtol=1e-5, atol=1e-6)
