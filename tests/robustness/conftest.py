"""Fixtures of the robustness tests: a small LeNet trained on 8x8 synthetic images (pixels in [0, 1])."""

import keras
import numpy as np
import pytest

from keras_lottery import data, models


@pytest.fixture(scope="session")
def trained():
    """``(model, datasets, pixels, labels)``: LeNet-300-100 trained a few epochs on the tiny task; the
    test split (128 images) as pixels in [0, 1] and labels."""
    keras.utils.set_random_seed(7)
    datasets = data.load(data.DatasetHparams(dataset="synthetic:8x8x1:4:512", batch_size=32, validation_size=0))
    model = models.lenet_300_100((8, 8, 1), classes=4, seed=3)
    model.compile(optimizer=keras.optimizers.Adam(2e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(datasets.train(0), steps_per_epoch=datasets.steps_per_epoch, epochs=6, verbose=0)
    scale = datasets.normalization[0]
    return model, datasets, (datasets.x_test / scale).astype(np.float32), datasets.y_test
