"""The lean train function trains exactly as Keras' own (weights, optimizer state, losses), masks included."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_lottery as kl
from keras_lottery import models as zoo
from keras_lottery.pruning import LayerwiseMagnitude, prune
from keras_lottery.sparsity import ConstantSparsity, UpdatePruningStep, prune_low_magnitude
from keras_lottery.training import TrainingHparams, compile_for_classification
from keras_lottery.training.train_function import is_streamlined, streamline_train_function, uses_lean_function

BATCH, STEPS = 8, 5


def _data(input_shape=(6, 6, 1)):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH * STEPS,) + input_shape).astype("float32")
    y = rng.integers(0, 10, BATCH * STEPS)
    return x, y, tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)


def _compile(model, **kwargs):
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], **kwargs)
    return model


def _pair(build, **compile_kwargs):
    """Two identical compiled models; the second streamlined."""
    plain, lean = _compile(build(), **compile_kwargs), _compile(build(), **compile_kwargs)
    assert streamline_train_function(lean) and is_streamlined(lean) and not is_streamlined(plain)
    return plain, lean


def _lenet():
    return zoo.get("lenet_300_100", (6, 6, 1), 10, seed=0)


def _assert_same_training(plain, lean, fit_data, epochs=3, callbacks=lambda: []):
    histories = [m.fit(**fit_data, epochs=epochs, shuffle=False, verbose=0, callbacks=callbacks()).history
                 for m in (plain, lean)]
    for key in histories[0]:
        np.testing.assert_allclose(histories[1][key], histories[0][key], rtol=1e-6, atol=1e-6)
    for a, b in zip(plain.weights, lean.weights):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6, err_msg=a.path)
    for a, b in zip(plain.optimizer.variables, lean.optimizer.variables):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6, err_msg=a.path)


@pytest.mark.parametrize("input_kind", ["dataset", "numpy"])
def test_fit_matches_keras(input_kind):
    x, y, dataset = _data()
    plain, lean = _pair(_lenet)
    fit_data = {"x": dataset} if input_kind == "dataset" else {"x": x, "y": y, "batch_size": BATCH}
    _assert_same_training(plain, lean, fit_data)
    assert uses_lean_function(lean) and not uses_lean_function(plain)


def test_masked_model_matches_keras_and_keeps_dead_weights_zero():
    _, _, dataset = _data()

    def build():
        model = kl.mask(_lenet())
        prune(model, LayerwiseMagnitude(density=0.3))
        return model

    plain, lean = _pair(build)
    _assert_same_training(plain, lean, {"x": dataset})
    alive = kl.Mask.from_model(lean)
    weights = kl.pruning.weights_of(lean)
    assert uses_lean_function(lean) and all(np.all(weights[p][~a] == 0) for p, a in alive.items())


def test_sparsity_api_with_its_callback_matches_keras():
    _, _, dataset = _data()

    def build():
        return prune_low_magnitude(_lenet(), pruning_schedule=ConstantSparsity(0.8, begin_step=0, frequency=2))

    plain, lean = _pair(build)
    _assert_same_training(plain, lean, {"x": dataset}, callbacks=lambda: [UpdatePruningStep()])
    assert uses_lean_function(lean)


def test_batch_norm_model_under_xla_matches_keras():
    _, _, dataset = _data((8, 8, 3))
    plain, lean = _pair(lambda: zoo.get("resnet8", (8, 8, 3), 10, seed=0), jit_compile=True)
    _assert_same_training(plain, lean, {"x": dataset}, epochs=2)
    assert uses_lean_function(lean)


def test_falls_back_to_keras_where_the_lean_function_does_not_apply():
    x, y, dataset = _data()
    plain, lean = _pair(_lenet, steps_per_execution=2)
    _assert_same_training(plain, lean, {"x": dataset}, epochs=1)
    assert not uses_lean_function(lean)
    _compile(lean)  # compiling again re-decides: steps_per_execution=1 now
    lean.fit(dataset, epochs=1, verbose=0)
    assert uses_lean_function(lean)
    loss = lean.train_on_batch(x[:BATCH], y[:BATCH])  # batches given directly: Keras' function
    assert np.isfinite(loss).all()
    _compile(lean, run_eagerly=True)
    lean.fit(dataset, epochs=1, verbose=0)
    assert not uses_lean_function(lean)


def test_end_of_unknown_length_data_ends_the_epoch_as_in_keras():
    _, _, dataset = _data()
    dataset = dataset.filter(lambda a, b: True)  # unknown cardinality: the epoch ends at OutOfRange
    plain, lean = _pair(_lenet)
    with pytest.warns(UserWarning, match="ran out of data"):  # Keras' own warning, with either function
        _assert_same_training(plain, lean, {"x": dataset}, epochs=2)


def test_compile_for_classification_streamlines():
    model = compile_for_classification(_lenet(), TrainingHparams(optimizer="adam", lr=1e-3, steps="2it"), 10)
    assert is_streamlined(model) and streamline_train_function(model)  # again: harmless
    assert is_streamlined(model) and model.make_train_function.__self__ is model
