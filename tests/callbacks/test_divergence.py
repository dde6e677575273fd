"""StopOnDivergence: a non-finite loss or weight ends training at once, with one line naming the step
and the learning rate; training.fit then writes nothing that marks the run finished."""

import os

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery import training
from tests.helpers import tiny_datasets, tiny_lenet


def _data(n=64):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 8, 8, 1)).astype("float32"), rng.integers(0, 4, size=n)


def test_a_non_finite_loss_stops_fit_at_that_step_naming_the_learning_rate():
    model = tiny_lenet()
    training.compile_for_classification(model, training.TrainingHparams(optimizer="sgd", lr=1e6), steps_per_epoch=8)
    x, y = _data()
    seen = []
    later = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(float(logs["loss"])))
    with pytest.raises(kl.callbacks.DivergenceError) as error:
        model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[kl.callbacks.StopOnDivergence(), later])
    message = str(error.value)
    assert "\n" not in message
    assert f"Training diverged at step {error.value.step}: the loss (" in message
    assert "The learning rate (1e+06 at this step) is the likely cause: lower it (--lr)" in message
    assert error.value.step == int(model.optimizer.iterations.numpy()) == len(seen) + 1  # stopped at once
    assert all(np.isfinite(seen))


def test_non_finite_weights_are_caught_at_the_epoch_end_with_their_name():
    model = tiny_lenet()
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="sparse_categorical_crossentropy")
    kernel = model.get_layer("fc1").kernel

    class Poison(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            kernel.assign(np.full(kernel.shape, np.inf, "float32"))

    x, y = _data()
    # Poison runs first, so at the epoch end StopOnDivergence finds the weight (the loss was finite).
    with pytest.raises(kl.callbacks.DivergenceError, match="weight fc1/kernel is not finite"):
        model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[Poison(), kl.callbacks.StopOnDivergence()])
    kernel.assign(np.zeros(kernel.shape, "float32"))
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[kl.callbacks.StopOnDivergence()])  # finite: no error


def test_training_fit_that_diverges_writes_no_metrics_and_no_checkpoint_after_it(tmp_path):
    datasets = tiny_datasets()
    hparams = training.TrainingHparams(optimizer="sgd", lr=1e6, steps="3ep")
    with pytest.raises(kl.callbacks.DivergenceError, match=f"in {tmp_path}: the loss"):
        training.fit(tiny_lenet(), datasets, hparams, str(tmp_path), verbose=0)
    assert not os.path.exists(tmp_path / "metrics.json") and not os.path.exists(tmp_path / "model.keras")
    assert not [name for name in os.listdir(tmp_path) if name.startswith("ckpt-")]  # it diverged in the first epoch
    # Turned off, fit trains on as Keras does (the caller asked for it).
    _, metrics = training.fit(tiny_lenet(), datasets, hparams, str(tmp_path / "off"), verbose=0,
                              stop_on_divergence=False)
    assert not np.isfinite(metrics["test_loss"])
