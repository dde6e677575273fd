"""The fused batch normalization on a KerasHub image classifier (batch norms inside its nested backbone)."""

import keras
import numpy as np

from keras_lottery.training import fuse_batch_norm


def test_fused_batch_norm_reaches_the_backbone_and_keeps_keras_results(image_classifier):
    model, x, _ = image_classifier
    reference = type(model).from_config(model.get_config())
    reference.set_weights(model.get_weights())
    count = sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.backbone.layers)
    assert count > 0 and fuse_batch_norm(model) == count
    assert type(model).__name__ == "ImageClassifier"
    # training mode: batch statistics, and the moving statistics updated as Keras does
    np.testing.assert_allclose(model(x, training=True), reference(x, training=True), rtol=1e-3, atol=1e-4)
    for fused, plain in zip(model.non_trainable_weights, reference.non_trainable_weights):
        np.testing.assert_allclose(fused, plain, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model(x, training=False), reference(x, training=False), rtol=1e-3, atol=1e-4)
