"""keras_lottery.sparsity: prune_low_magnitude on layers, lists and models, strip_pruning, saving and
resuming, steps_per_execution, subclassed models, custom training loops, M:N in training."""

import os
import warnings

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery import sparsity
from keras_lottery.sparsity import ConstantSparsity, PolynomialDecay, PruneLowMagnitude


def _data(n=64, features=16, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, features)).astype("float32"), rng.integers(0, classes, n)


def _compile(model):
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    return model


def _kernel_density(layer):
    return float(np.mean(keras.ops.convert_to_numpy(layer.layer.kernel.value) != 0))


def test_module_is_the_api_and_the_density_report_has_one_name(mlp):
    assert kl.sparsity is sparsity and not callable(sparsity)  # no former name: the report is sparsity_report
    report = kl.sparsity_report(mlp, print_fn=None)
    assert report["global"]["density"] == 1.0


def test_prune_a_functional_model_keeps_names_and_weights(mlp, mlp_data):
    pruned = sparsity.prune_low_magnitude(mlp, pruning_schedule=ConstantSparsity(0.75, 0, frequency=4))
    wrapped = [layer.name for layer in pruned.layers if isinstance(layer, PruneLowMagnitude)]
    assert wrapped == ["fc1", "fc2", "predictions"]
    x, _ = mlp_data
    np.testing.assert_allclose(pruned.predict(x, verbose=0), mlp.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    assert getattr(pruned, "optimizer", None) is None  # like TFMOT: compile again


def test_fit_prunes_on_the_schedule_and_strip_bakes_it_in(mlp):
    x, y = _data()
    pruned = _compile(sparsity.prune_low_magnitude(mlp, pruning_schedule=PolynomialDecay(0.0, 0.8, 0, 8, frequency=2)))
    callback = sparsity.UpdatePruningStep()
    pruned.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[callback])  # 16 steps
    assert sorted({step for step, _, _ in callback.history}) == [2, 4, 6, 8]
    for layer in sparsity.wrapper.pruning_wrappers(pruned):
        assert int(layer.pruning_step.numpy()) == 16
        assert abs(_kernel_density(layer) - 0.2) < 0.02
    stripped = sparsity.strip_pruning(pruned)
    assert not any(isinstance(layer, kl.MaskedLayer) for layer in stripped.layers)
    np.testing.assert_allclose(stripped.predict(x, verbose=0), pruned.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    assert abs(kl.sparsity_report(stripped, print_fn=None)["global"]["density"] - 0.2) < 0.02


def test_layers_lists_sequential_and_clone_model_recipe():
    schedule = ConstantSparsity(0.5, 0, frequency=1)
    model = keras.Sequential([keras.Input((16,)), sparsity.prune_low_magnitude(keras.layers.Dense(8), schedule),
                              keras.layers.Dense(4)])
    assert isinstance(model.layers[0], PruneLowMagnitude) and not isinstance(model.layers[1], PruneLowMagnitude)
    listed = sparsity.prune_low_magnitude([keras.layers.Dense(3), keras.layers.Flatten()], schedule)
    assert all(isinstance(layer, PruneLowMagnitude) for layer in listed)  # as TFMOT: Flatten as a no-op wrapper
    assert isinstance(listed[1].layer, keras.layers.Flatten)
    base = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8, name="a"), keras.layers.Dense(4, name="b")])

    def apply_pruning_to_dense(layer):  # the TFMOT guide's clone_function recipe
        if isinstance(layer, keras.layers.Dense) and layer.name == "b":
            return sparsity.prune_low_magnitude(layer, schedule)
        return layer

    cloned = keras.models.clone_model(base, clone_function=apply_pruning_to_dense)
    assert [type(layer).__name__ for layer in cloned.layers] == ["Dense", "PruneLowMagnitude"]
    x, y = _data()
    _compile(cloned).fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[sparsity.UpdatePruningStep()])
    assert _kernel_density(cloned.layers[1]) == 0.5


def test_bad_inputs_fail_with_one_line_errors(mlp):
    with pytest.raises(ValueError, match="no weights to prune.*get_prunable_weights"):
        sparsity.prune_low_magnitude(keras.layers.Identity())
    with pytest.raises(ValueError, match="block_pooling_type"):
        sparsity.prune_low_magnitude(mlp, block_pooling_type="MIN")
    with pytest.raises(ValueError, match="sparsity_m_by_n"):
        sparsity.prune_low_magnitude(mlp, sparsity_m_by_n=(4, 4))


def test_save_mid_pruning_and_resume_the_schedule(mlp, tmp_path):
    x, y = _data()
    schedule = PolynomialDecay(0.0, 0.9, 0, 16, frequency=2)
    pruned = _compile(sparsity.prune_low_magnitude(mlp, pruning_schedule=schedule))
    pruned.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[sparsity.UpdatePruningStep()])  # steps 1-8
    path = os.path.join(tmp_path, "mid.keras")
    pruned.save(path)
    with sparsity.prune_scope():
        restored = keras.models.load_model(path)
    wrappers = sparsity.wrapper.pruning_wrappers(restored)
    assert [int(w.pruning_step.numpy()) for w in wrappers] == [8, 8, 8]
    assert wrappers[0].pruning_schedule == schedule
    callback = sparsity.UpdatePruningStep()
    restored.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[callback])  # steps 9-16
    assert sorted({s for s, _, _ in callback.history}) == [10, 12, 14, 16]
    assert abs(_kernel_density(wrappers[0]) - 0.1) < 0.01


def test_steps_per_execution_counts_every_step(mlp):
    x, y = _data(n=128)
    pruned = sparsity.prune_low_magnitude(mlp, pruning_schedule=ConstantSparsity(0.5, 4, frequency=6))
    pruned.compile(optimizer="adam", loss="sparse_categorical_crossentropy", steps_per_execution=4)
    callback = sparsity.UpdatePruningStep()
    pruned.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[callback])  # 16 steps in 4 executions
    assert int(sparsity.wrapper.pruning_wrappers(pruned)[0].pruning_step.numpy()) == 16
    # executions run steps 1-4, 5-8, 9-12, 13-16: the turns at 4 and 10 fall inside one and are applied
    # before the next (steps 5 and 13); the turn at 16 would be applied before step 17
    assert sorted({s for s, _, _ in callback.history}) == [4, 10]
    assert all(abs(d - 0.5) < 0.01 for _, _, d in callback.history)


class TwoLayer(keras.Model):
    """A subclassed model that prunes the layers it creates (TFMOT issues #155 and #965)."""

    def __init__(self, units=12, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        schedule = ConstantSparsity(0.5, 0, frequency=2)
        self.hidden = sparsity.prune_low_magnitude(keras.layers.Dense(units, activation="relu"), schedule)
        self.out = sparsity.prune_low_magnitude(keras.layers.Dense(4), schedule)

    def call(self, inputs, training=None):  # Keras 3 passes training=True in fit only if call() takes it
        return self.out(self.hidden(inputs, training=training), training=training)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


keras.saving.register_keras_serializable(package="tests_sparsity")(TwoLayer)


def test_subclassed_model_prunes_strips_saves_and_loads(tmp_path):
    x, y = _data()
    model = TwoLayer()
    model(x[:1])
    _compile(model).fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[sparsity.UpdatePruningStep()])
    assert _kernel_density(model.hidden) == 0.5
    stripped = sparsity.strip_pruning(model)
    assert isinstance(stripped, TwoLayer) and type(stripped.hidden) is keras.layers.Dense
    np.testing.assert_allclose(stripped.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    assert set(sparsity.check_m_by_n(model)) == {"dense/kernel", "dense_1/kernel"}
    path = os.path.join(tmp_path, "stripped.keras")
    stripped.save(path)
    with sparsity.strip_scope():
        loaded = keras.models.load_model(path)
    assert type(loaded.hidden) is keras.layers.Dense
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    assert float(np.mean(keras.ops.convert_to_numpy(loaded.hidden.kernel.value) != 0)) == 0.5


class NoTrainingArg(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = sparsity.prune_low_magnitude(keras.layers.Dense(4))

    def call(self, inputs):
        return self.dense(inputs)


def test_layers_never_told_they_train_fail_clearly():
    x, y = _data()
    model = NoTrainingArg()
    model(x[:1])
    with pytest.raises(ValueError, match="training=None"):
        _compile(model).fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[sparsity.UpdatePruningStep()])


def test_custom_training_loop_recipe(mlp):
    """TFMOT's custom-loop recipe (their issue #271), with a GradientTape."""
    x, y = _data()
    pruned = sparsity.prune_low_magnitude(mlp, pruning_schedule=ConstantSparsity(0.6, 2, frequency=3))
    optimizer = keras.optimizers.SGD(0.05, momentum=0.9)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    pruned.optimizer = optimizer
    step_callback = sparsity.UpdatePruningStep()
    step_callback.set_model(pruned)
    step_callback.on_train_begin()
    import tensorflow as tf
    for epoch in range(2):
        for start in range(0, 64, 16):
            step_callback.on_train_batch_begin(batch=-1)
            with tf.GradientTape() as tape:
                loss = loss_fn(y[start:start + 16], pruned(x[start:start + 16], training=True))
            grads = tape.gradient(loss, pruned.trainable_variables)
            optimizer.apply_gradients(zip(grads, pruned.trainable_variables))
        step_callback.on_epoch_end(epoch)
    assert sorted({s for s, _, _ in step_callback.history}) == [2, 5, 8]
    for wrapper in sparsity.wrapper.pruning_wrappers(pruned):
        assert abs(_kernel_density(wrapper) - 0.4) < 0.01
        assert int(wrapper.pruning_step.numpy()) == 8


def test_turns_are_found_when_the_model_counts_twice_per_step(mlp):
    """A loop that calls the model twice with training=True per step (two counted steps per callback
    call): the callback, which skips reading the counter when no turn can be due, must notice and
    still apply every turn at the call where it is reached."""
    x, _ = _data()
    pruned = sparsity.prune_low_magnitude(mlp, pruning_schedule=ConstantSparsity(0.5, 0, frequency=3))
    step_callback = sparsity.UpdatePruningStep()
    step_callback.set_model(pruned)
    step_callback.on_train_begin()
    for _ in range(8):  # counter after the loop: 16
        step_callback.on_train_batch_begin(batch=-1)
        pruned(x[:4], training=True)
        pruned(x[4:8], training=True)
    # the calls see counters 0, 2, ..., 14, so the upcoming steps are 1, 3, ..., 15: each turn (every third
    # step) is applied at the first call whose upcoming step reaches it
    assert [s for s, name, _ in step_callback.history if name == "fc1"] == [3, 6, 9, 12, 15]


def test_m_by_n_training_keeps_exact_two_of_four(conv_model):
    x = np.random.default_rng(0).normal(size=(32, 8, 8, 3)).astype("float32")
    y = np.random.default_rng(1).integers(0, 5, 32)
    pruned = sparsity.prune_low_magnitude(conv_model, sparsity_m_by_n=(2, 4))
    assert not all(sparsity.check_m_by_n(pruned).values())
    _compile(pruned).fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[sparsity.UpdatePruningStep()])
    checked = sparsity.check_m_by_n(pruned)
    assert {"conv/kernel", "predictions/kernel", "sep/pointwise_kernel", "dw/kernel"} <= set(checked)
    assert all(checked.values()), checked
    stripped = sparsity.strip_pruning(pruned)
    assert all(sparsity.check_m_by_n(stripped).values())


def test_block_sparsity_in_training(mlp):
    x, y = _data()
    pruned = sparsity.prune_low_magnitude(mlp, pruning_schedule=ConstantSparsity(0.5, 0, frequency=1),
                                          block_size=(4, 4))
    _compile(pruned).fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[sparsity.UpdatePruningStep()])
    kernel = keras.ops.convert_to_numpy(pruned.get_layer("fc1").layer.kernel.value)  # 16 x 32
    blocks = (kernel != 0).reshape(4, 4, 8, 4)
    assert (blocks.all(axis=(1, 3)) | ~blocks.any(axis=(1, 3))).all() and (kernel != 0).mean() == 0.5


def test_pruning_policy_and_summaries(tmp_path):
    inputs = keras.Input((8, 8, 3))
    y = keras.layers.ZeroPadding2D(1)(inputs)
    y = keras.layers.Conv2D(8, 3, strides=2, name="stem")(y)
    y = keras.layers.Conv2D(16, 1, name="pointwise")(y)
    y = keras.layers.GlobalAveragePooling2D(keepdims=True)(y)
    outputs = keras.layers.Flatten()(y)
    model = keras.Model(inputs, outputs)
    pruned = sparsity.prune_low_magnitude(model, pruning_policy=sparsity.PruneForLatencyOnXNNPack(),
                                          pruning_schedule=ConstantSparsity(0.5, 0, frequency=1))
    assert [w.name for w in sparsity.wrapper.pruning_wrappers(pruned)] == ["pointwise"]
    with pytest.raises(ValueError, match="3x3 Conv2D"):
        sparsity.prune_low_magnitude(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]),
                                     pruning_policy=sparsity.PruneForLatencyOnXNNPack())
    x = np.random.default_rng(0).normal(size=(16, 8, 8, 3)).astype("float32")
    pruned.compile("sgd", "mse")
    summaries = sparsity.PruningSummaries(log_dir=str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruned.fit(x, np.zeros((16, 16), "float32"), batch_size=4, epochs=2, verbose=0,
                   callbacks=[sparsity.UpdatePruningStep(), summaries])
    assert summaries.pruning_logs()["pointwise/kernel/sparsity"] == 0.5
    events = [f for _, _, files in os.walk(os.path.join(tmp_path, "metrics")) for f in files]
    assert any(f.startswith("events.out.tfevents") for f in events)


def test_a_subclassed_model_nested_in_a_functional_one_is_pruned_in_place():
    class Inner(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.a, self.b = keras.layers.Dense(8, activation="relu"), keras.layers.Dense(4)

        def call(self, x):
            return self.b(self.a(x))

    inputs = keras.Input((5,))
    inner = Inner()
    model = keras.Model(inputs, keras.layers.Dense(3, name="head")(inner(inputs)))
    pruned = sparsity.prune_low_magnitude(model, pruning_schedule=sparsity.ConstantSparsity(0.5, 0, frequency=1))
    assert pruned.layers[1] is inner and len(kl.masking.masked_layers(inner)) == 2  # its own layers, in place
    pruned.compile("sgd", "mse")
    x = np.random.default_rng(0).normal(size=(8, 5)).astype("float32")
    pruned.fit(x, np.zeros((8, 3), "float32"), verbose=0, callbacks=[sparsity.UpdatePruningStep()])
    stripped = sparsity.strip_pruning(pruned)
    kernels = [v.numpy() for v in stripped.weights if len(v.shape) == 2]
    assert len(kernels) == 3 and all(np.mean(k == 0) == 0.5 for k in kernels)
    np.testing.assert_allclose(stripped(x), pruned(x), rtol=1e-5, atol=1e-6)
