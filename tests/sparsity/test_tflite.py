"""keras_lottery.sparsity.tflite: a stripped pruned model converts to TFLite, runs in the interpreter with
the Keras outputs, and compresses smaller than the dense model."""

import warnings

import keras
import numpy as np

from keras_lottery import sparsity
from keras_lottery.sparsity import tflite


def test_stripped_pruned_model_round_trips_through_tflite():
    inputs = keras.Input((32,))
    hidden = keras.layers.Dense(128, activation="relu", name="fc1")(inputs)
    outputs = keras.layers.Dense(10, name="out")(hidden)
    dense = keras.Model(inputs, outputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flat_dense = tflite.convert(dense)  # before pruning: the pruned model shares the layers (as in TFMOT)
    pruned = sparsity.prune_low_magnitude(dense, pruning_schedule=sparsity.ConstantSparsity(0.8, 0, frequency=1))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 32)).astype("float32"), rng.integers(0, 10, 64)
    pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pruned.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[sparsity.UpdatePruningStep()])
    stripped = sparsity.strip_pruning(pruned)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        flat_pruned = tflite.convert(stripped)
        outputs_lite = tflite.predict(flat_pruned, x[:8])
    np.testing.assert_allclose(outputs_lite, stripped.predict(x[:8], verbose=0), rtol=1e-5, atol=1e-5)
    assert tflite.gzipped_size(flat_pruned) < 0.5 * tflite.gzipped_size(flat_dense)
