"""TFMOT's pruning contract on Keras 3 (issue 29): what a test of tfmot.sparsity.keras checks, here against
keras_lottery.sparsity. Each test names the TFMOT behaviour it keeps; the deliberate differences are listed
in docs/migrating_from_tfmot.md ("Differences from TFMOT")."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_lottery import sparsity
from keras_lottery.sparsity import ConstantSparsity, PolynomialDecay, PruneForLatencyOnXNNPack, PruneLowMagnitude


def _data(n=32, features=6, classes=3):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, features)).astype("float32"), rng.integers(0, classes, n)


def _compile(model):
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    return model


# 1. layers without prunable weights are wrapped as a no-op ------------------------------------------------
@pytest.mark.parametrize("layer", [keras.layers.Dropout(0.5), keras.layers.MaxPooling2D(),
                                   keras.layers.BatchNormalization(), keras.layers.Flatten()])
def test_layers_without_prunable_weights_wrap_as_a_no_op(layer):
    wrapped = sparsity.prune_low_magnitude(layer)
    assert isinstance(wrapped, PruneLowMagnitude) and wrapped.layer is layer
    wrapped.build((None, 4, 4, 3))
    assert wrapped.pruning_vars == [] and wrapped.get_prunable_weights() == []
    assert int(wrapped.pruning_step.numpy()) == -1


def test_a_list_wraps_every_layer_and_trains_with_no_op_wrappers():
    listed = sparsity.prune_low_magnitude([keras.layers.Dense(8, input_shape=(6,)), keras.layers.Dropout(0.1),
                                           keras.layers.Dense(3, activation="softmax")],
                                          pruning_schedule=ConstantSparsity(0.5, 0, frequency=1))
    assert [type(layer.layer).__name__ for layer in listed] == ["Dense", "Dropout", "Dense"]
    model = _compile(keras.Sequential(listed))
    callback = sparsity.UpdatePruningStep()
    model.fit(*_data(), batch_size=8, epochs=1, verbose=0, callbacks=[callback])
    assert {name for _, name, _ in callback.history} == {listed[0].name, listed[2].name}  # Dropout: nothing to do
    stripped = sparsity.strip_pruning(model)
    assert [type(layer).__name__ for layer in stripped.layers] == ["Dense", "Dropout", "Dense"]
    assert np.mean(stripped.layers[0].kernel.numpy() != 0) == 0.5


# 2. the user's own layer objects ----------------------------------------------------------------------------
def test_the_wrapper_holds_the_layer_object_and_its_pretrained_weights():
    dense = keras.layers.Dense(4)
    dense.build((None, 6))
    kernel = dense.kernel
    wrapped = sparsity.prune_low_magnitude(dense)
    assert wrapped.layer is dense and wrapped.layer.kernel is kernel
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, name="d")])
    pruned = sparsity.prune_low_magnitude(model)
    assert pruned.get_layer("d").layer is model.get_layer("d")


def test_wrapping_a_wrapper_raises_and_a_model_keeps_its_wrappers():
    wrapped = sparsity.prune_low_magnitude(keras.layers.Dense(4))
    with pytest.raises(ValueError, match="already wrapped.*wrap its .layer"):
        sparsity.prune_low_magnitude(wrapped)
    assert sparsity.prune_low_magnitude([wrapped])[0] is wrapped  # as TFMOT's _prune_list
    model = keras.Sequential([keras.Input((6,)), wrapped, keras.layers.Dense(2)])
    pruned = sparsity.prune_low_magnitude(model, pruning_schedule=ConstantSparsity(0.9, 0))
    assert pruned.layers[0] is wrapped and pruned.layers[0].pruning_schedule.target_sparsity == 0.5


class _MyDense(keras.layers.Dense):
    pass


def test_a_subclass_of_a_supported_layer_raises_value_error_as_tfmot():
    with pytest.raises(ValueError, match="subclasses Dense.*get_prunable_weights"):
        sparsity.prune_low_magnitude(_MyDense(3))
    with pytest.raises(ValueError, match="subclasses Dense"):
        sparsity.prune_low_magnitude(keras.Sequential([keras.Input((6,)), _MyDense(3)]))

    class Prunable(_MyDense, sparsity.PrunableLayer):
        def get_prunable_weights(self):
            return [self.kernel]

    assert isinstance(sparsity.prune_low_magnitude(Prunable(3)), PruneLowMagnitude)


# 3. the wrapper's surface ----------------------------------------------------------------------------------
def test_pruning_vars_and_get_prunable_weights():
    wrapped = sparsity.prune_low_magnitude(keras.layers.Dense(4))
    wrapped.build((None, 6))
    [(weight, mask, threshold)] = wrapped.pruning_vars
    assert weight is wrapped.layer.kernel and tuple(mask.shape) == (6, 4) and tuple(threshold.shape) == ()
    assert wrapped.get_prunable_weights() == [wrapped.layer.kernel]


def test_input_shape_is_carried_so_a_sequential_of_wrapped_layers_builds():
    model = keras.Sequential([sparsity.prune_low_magnitude(keras.layers.Dense(5, input_shape=(6,))),
                              keras.layers.Flatten()])
    assert model.built and model.output_shape == (None, 5)


# 4. the callback contract ----------------------------------------------------------------------------------
def test_pruning_step_is_minus_one_until_the_callback_and_training_without_it_raises():
    model = _compile(sparsity.prune_low_magnitude(keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])))
    assert int(model.layers[0].pruning_step.numpy()) == -1
    with pytest.raises(ValueError, match="UpdatePruningStep"):
        model.fit(*_data(), batch_size=8, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="UpdatePruningStep"):
        model(np.zeros((1, 6), "float32"), training=True)
    model(np.zeros((1, 6), "float32"))  # inference needs no callback
    model.fit(*_data(), batch_size=8, epochs=1, verbose=0, callbacks=[sparsity.UpdatePruningStep()])
    assert int(model.layers[0].pruning_step.numpy()) == 4


def test_custom_loop_as_tfmot_writes_it_on_epoch_end_batch():
    model = sparsity.prune_low_magnitude(keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)]),
                                         pruning_schedule=ConstantSparsity(0.5, 0, frequency=1))
    callback = sparsity.UpdatePruningStep()
    callback.set_model(model)
    callback.on_train_begin()
    x, _ = _data()
    for _ in range(2):
        callback.on_train_batch_begin(batch=-1)
        model(x, training=True)
    callback.on_epoch_end(batch=-1)  # TFMOT's guide's spelling
    callback.on_epoch_end(0)  # Keras' spelling
    assert int(model.layers[0].pruning_step.numpy()) == 2
    assert np.mean(model.layers[0].layer.kernel.numpy() != 0) == 0.5


def test_update_pruning_step_on_a_model_without_wrappers_does_nothing():
    model = _compile(keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="softmax")]))
    callback = sparsity.UpdatePruningStep()
    model.fit(*_data(), batch_size=8, epochs=1, verbose=0, callbacks=[callback])
    assert callback.history == []


# 5. schedules as tensors -----------------------------------------------------------------------------------
@pytest.mark.parametrize("schedule", [ConstantSparsity(0.5, begin_step=100, end_step=200, frequency=10),
                                      PolynomialDecay(0.2, 0.8, begin_step=100, end_step=200, frequency=10)])
def test_schedules_take_tensor_steps_and_run_inside_tf_function(schedule):
    step = tf.Variable(150, dtype=tf.int64)
    compiled = tf.function(lambda s: schedule(s))
    for value in (90, 100, 150, 155, 200, 210):
        step.assign(value)
        should, target = schedule(step)
        assert isinstance(should, tf.Tensor) and should.dtype == tf.bool and target.dtype == tf.float32
        in_graph = compiled(step)
        expected = schedule(value)  # the integer path the pruning callback uses
        assert bool(should.numpy()) == bool(in_graph[0].numpy()) == expected[0]
        assert np.float32(target.numpy()) == np.float32(in_graph[1].numpy()) == expected[1]


# 6. PruneForLatencyOnXNNPack -------------------------------------------------------------------------------
def _xnnpack_model(middle=None, stem=True):
    inputs = keras.Input((16, 16, 3))
    y = keras.layers.ZeroPadding2D(1)(inputs)
    y = keras.layers.Conv2D(8, 3, strides=2, name="stem")(y) if stem else keras.layers.Conv2D(8, 1, name="stem")(y)
    y = keras.layers.Conv2D(8, 1, name="pointwise")(y)
    y = keras.layers.ReLU()(y)
    if middle is not None:
        y = middle(y)
    y = keras.layers.GlobalAveragePooling2D(keepdims=True)(y)
    return keras.Model(inputs, keras.layers.Flatten()(y))


def test_xnnpack_policy_walks_the_graph_as_tfmot():
    policy = PruneForLatencyOnXNNPack()
    pruned = sparsity.prune_low_magnitude(_xnnpack_model(), pruning_policy=policy)
    assert [w.name for w in sparsity.wrapper.pruning_wrappers(pruned)] == ["pointwise"]
    again = sparsity.prune_low_magnitude(pruned, pruning_policy=policy)  # wrappers are looked into
    assert [w.name for w in sparsity.wrapper.pruning_wrappers(again)] == ["pointwise"]
    no_1x1 = _xnnpack_model(middle=keras.layers.DepthwiseConv2D(3, padding="same"))
    no_1x1 = keras.Model(no_1x1.inputs, no_1x1.outputs)
    with pytest.raises(ValueError, match="3x3 Conv2D of stride 2"):
        sparsity.prune_low_magnitude(_xnnpack_model(stem=False), pruning_policy=policy)
    with pytest.raises(ValueError, match="'dense'.*Dense.*does not run sparse"):
        sparsity.prune_low_magnitude(_xnnpack_model(middle=keras.layers.Dense(8, name="dense")), pruning_policy=policy)
    with pytest.raises(ValueError, match="GlobalAveragePooling2D"):
        inputs = keras.Input((16, 16, 3))
        stem = keras.layers.Conv2D(8, 3, strides=2)(keras.layers.ZeroPadding2D(1)(inputs))
        sparsity.prune_low_magnitude(keras.Model(inputs, keras.layers.Flatten()(stem)), pruning_policy=policy)
    with pytest.raises(ValueError, match="unbuilt models are not supported"):
        sparsity.prune_low_magnitude(keras.Sequential([keras.layers.Conv2D(8, 1)]), pruning_policy=policy)


def test_xnnpack_policy_accepts_a_model_without_1x1_conv_and_wraps_nothing():
    inputs = keras.Input((16, 16, 3))
    y = keras.layers.Conv2D(8, 3, strides=2)(keras.layers.ZeroPadding2D(1)(inputs))
    y = keras.layers.DepthwiseConv2D(3, padding="same")(y)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D(keepdims=True)(y))
    pruned = sparsity.prune_low_magnitude(model, pruning_policy=PruneForLatencyOnXNNPack())
    assert sparsity.wrapper.pruning_wrappers(pruned) == []


# 7. errors and acceptance ----------------------------------------------------------------------------------
def test_argument_errors_are_value_errors_at_wrap_time():
    for bad in ((4, 4), (2,), "2:4", (2.0, 4)):
        with pytest.raises(ValueError, match="sparsity_m_by_n"):
            sparsity.prune_low_magnitude(keras.layers.Dense(4), sparsity_m_by_n=bad)
    with pytest.raises(ValueError, match="can only prune|takes a keras layer"):
        sparsity.prune_low_magnitude("dense")


def test_block_and_m_by_n_need_rank_2_or_more_and_accept_rank_3():
    conv1d = sparsity.prune_low_magnitude(keras.layers.Conv1D(8, 3), sparsity_m_by_n=(2, 4))
    conv1d.build((None, 10, 8))  # kernel [3, 8, 8]: groups of 4 input channels
    mask, _ = conv1d.new_masks_for(*conv1d.masked_weights()[0][:2], 0.0)
    assert sparsity.structured.is_m_by_n(mask, (2, 4))
    embedding = keras.layers.Embedding(10, 4)  # a rank-2 weight: fine; a bias-like rank-1 one is refused

    class Scale(keras.layers.Layer, sparsity.PrunableLayer):
        def build(self, input_shape):
            self.scale = self.add_weight(shape=(input_shape[-1],), name="scale")

        def call(self, x):
            return x * self.scale

        def get_prunable_weights(self):
            return [self.scale]

    with pytest.raises(ValueError, match="rank >= 2"):
        sparsity.prune_low_magnitude(Scale(), block_size=(2, 2)).build((None, 4))
    sparsity.prune_low_magnitude(embedding, block_size=(2, 2)).build((None, 3))


def test_conv_lstm2d_is_pruned():
    wrapped = sparsity.prune_low_magnitude(keras.layers.ConvLSTM2D(4, 3))
    wrapped.build((None, 2, 8, 8, 3))
    assert [v.name for v in wrapped.get_prunable_weights()] == ["kernel", "recurrent_kernel"]


# 8. strip_pruning through clone_model ---------------------------------------------------------------------
def test_prune_and_strip_return_uncompiled_models_with_the_input_names():
    inputs = keras.Input((6,))  # unnamed: Keras names the layer "input_layer*", the tensor "keras_tensor*"
    model = _compile(keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs)))
    input_name = model.layers[0].name
    pruned = sparsity.prune_low_magnitude(model)
    assert not pruned.compiled and pruned.layers[0].name == input_name
    _compile(pruned).fit(*_data(), batch_size=8, epochs=1, verbose=0, callbacks=[sparsity.UpdatePruningStep()])
    stripped = sparsity.strip_pruning(pruned)
    assert not stripped.compiled and stripped.layers[0].name == input_name
    assert model.compiled and pruned.compiled  # the models given are left as they were
