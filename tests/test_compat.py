"""Each reliance on Keras internals (keras_lottery.compat) checked against the installed Keras.

A Keras release that changes one of these fails here, by name, instead of breaking masks,
rewinding or graph surgery quietly."""

import json

import keras
import numpy as np
import pytest

from keras_lottery import compat


def _two_input_model():
    a, b = keras.Input((3,), name="a"), keras.Input((3,), name="b")
    h = keras.layers.Dense(4, name="fc")(a)
    out = keras.layers.Add(name="join")([h, keras.layers.Dense(4, name="side")(b)])
    return keras.Model([a, b], out)


def test_functional_config_serializes_tensors_with_their_history():
    config = json.loads(json.dumps(_two_input_model().get_config()))  # JSON-safe, as Keras writes it
    join = next(layer for layer in config["layers"] if layer["name"] == "join")
    tensors = list(compat.iter_keras_tensors(join["inbound_nodes"]))
    assert [compat.history_key(t) for t in tensors] == [("fc", 0, 0), ("side", 0, 0)]
    assert [compat.tensor_shape(t) for t in tensors] == [(None, 4), (None, 4)]
    compat.set_history_key(tensors[0], ("side", 0, 0))
    rebuilt = keras.Model.from_config(config)  # Keras reads the rewritten history back
    assert [t for t in compat.iter_keras_tensors(rebuilt.get_config()["layers"][-1]["inbound_nodes"])][0][
        "config"]["keras_history"][0] == "side"


def test_functional_class_is_recognised_and_others_are_not():
    class Subclassed(keras.Model):
        def call(self, x):
            return x

    sequential = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    assert compat.is_functional_class(_two_input_model())
    assert not compat.is_functional_class(sequential)
    assert not compat.is_functional_class(Subclassed())
    assert not compat.is_functional_class(keras.layers.Dense(2))


@pytest.mark.parametrize("optimizer", [keras.optimizers.SGD(0.1, momentum=0.9), keras.optimizers.Adam(0.1),
                                       keras.optimizers.RMSprop(0.1, momentum=0.5)])
def test_optimizer_slots_are_found_by_the_weight_path(optimizer):
    model = _two_input_model()
    optimizer.build(model.trainable_variables)
    kernel = model.get_layer("fc").kernel
    slots = compat.optimizer_slots(optimizer, kernel)
    expected = {"SGD": 1, "Adam": 2, "RMSprop": 2}[type(optimizer).__name__]
    assert len(slots) == expected
    assert all(tuple(s.shape) == tuple(kernel.shape) for s in slots)
    other = compat.optimizer_slots(optimizer, model.get_layer("side").kernel)
    assert not {id(s) for s in slots} & {id(s) for s in other}
    assert compat.optimizer_slots(None, kernel) == []


def test_learning_rate_variable_of_fixed_and_scheduled_rates():
    fixed = keras.optimizers.SGD(0.25)
    fixed.build([keras.Variable(np.zeros(2))])
    variable = compat.learning_rate_variable(fixed)
    assert variable is not None and float(variable.numpy()) == pytest.approx(0.25)
    assert any(v is variable for v in fixed.variables)
    scheduled = keras.optimizers.SGD(keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5))
    scheduled.build([keras.Variable(np.zeros(2))])
    assert compat.learning_rate_variable(scheduled) is None


def test_optimizer_state_lists_iterations_then_slots_in_variables_order():
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
    weight = keras.Variable(np.ones(3, dtype="float32"))
    optimizer.build([weight])
    optimizer.apply_gradients([(np.full(3, 2.0, dtype="float32"), weight)])
    state = compat.optimizer_state(optimizer)
    assert len(state) == len(optimizer.variables)
    assert int(state[0]) == 1  # iterations
    for array, variable in zip(state, optimizer.variables):
        np.testing.assert_array_equal(array, keras.ops.convert_to_numpy(variable.value))


def test_steps_per_execution_is_read_from_the_compiled_model_and_paces_batch_callbacks():
    model = _two_input_model()
    assert compat.steps_per_execution(model) == 1  # never compiled
    model.compile("sgd", "mse", steps_per_execution=4)
    assert compat.steps_per_execution(model) == 4
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(int(self.model.optimizer.iterations))

    x = [np.zeros((16, 3), "float32")] * 2
    model.fit(x, np.zeros((16, 4), "float32"), batch_size=2, epochs=1, verbose=0, callbacks=[Record()])
    assert seen == [4, 8]  # one call per execution of 4 steps: why callbacks read the iteration count


def test_input_shape_arg_is_what_sequential_reads_from_its_first_layer():
    with pytest.warns(UserWarning):
        dense = keras.layers.Dense(2, input_shape=(3,))
    assert tuple(compat.input_shape_arg(dense)) == (3,)
    other = keras.layers.Dense(2)
    assert compat.input_shape_arg(other) is None
    compat.set_input_shape_arg(other, (3,))
    assert keras.Sequential([other]).built


def test_build_shapes_are_recorded_by_the_first_call_and_by_build():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.fc = keras.layers.Dense(2)

        def call(self, x):
            return self.fc(x)

    called, built, fresh = Net(), Net(), Net()
    called(np.ones((4, 3), "float32"))
    built.build((None, 3))
    assert [tuple(s) for s in compat.build_shapes(called).values()] == [(4, 3)]
    assert [tuple(s) for s in compat.build_shapes(built).values()] == [(None, 3)]
    assert compat.build_shapes(fresh) is None


def test_clone_graph_keeps_input_names_nested_models_and_leaves_the_clone_uncompiled():
    inputs = keras.Input((3,))  # unnamed: Keras' clone_model would name the clone's Input after the tensor
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="inner_dense")], name="inner")
    model = keras.Model(inputs, inner(keras.layers.Dense(4, name="outer_dense")(inputs)))
    model.compile("sgd", "mse")
    seen = []
    clone = compat.clone_graph(model, lambda layer: seen.append(layer.name) or layer)
    assert compat.input_layer_names(clone) == compat.input_layer_names(model) == [model.layers[0].name]
    assert "inner_dense" in seen and "outer_dense" in seen  # the nested model's layers went through the function
    assert not clone.compiled and model.compiled
    assert compat.clone_graph(model, lambda layer: layer, keep_compiled=True).compiled


def test_graph_config_reads_the_nodes_of_plain_and_subclassed_functional_models():
    import keras

    from keras_lottery import compat

    x = keras.Input((4,))
    h = keras.layers.Dense(4, name="d")(x)
    plain = keras.Model(x, keras.layers.Add(name="add")([x, h]))
    config, nodes = compat.graph_config(plain)
    assert config == plain.get_config()
    assert nodes[("add", 0)].operation.name == "add"

    class Sub(keras.Model):  # a functional subclass whose get_config() is its constructor's arguments
        def __init__(self, width, **kwargs):
            inputs = keras.Input((width,))
            super().__init__(inputs, keras.layers.Dense(width, name="inner")(inputs), **kwargs)
            self.width = width

        def get_config(self):
            return {"width": self.width}

    config, _ = compat.graph_config(Sub(3))
    rebuilt = keras.Model.from_config(config)
    assert [layer.name for layer in rebuilt.layers][-1] == "inner" and compat.is_graph_model(rebuilt)


def test_layer_lists_and_replace_call_reach_the_calls_inside_another_layer():
    class Chain(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.parts = [keras.layers.Dense(2, name="p0"), keras.layers.Dense(2, name="p1")]
            self.single = keras.layers.Dense(2, name="single")

        def call(self, x):
            for part in self.parts:
                x = part(x)
            return x

    x = keras.Input((2,))
    model = keras.Model(x, Chain(name="chain")(x))
    chain = model.get_layer("chain")
    assert [(name, [v.name for v in value]) for name, value in compat.layer_lists(chain)] == [("parts", ["p0", "p1"])]
    seen = []
    restore = compat.replace_call(chain.parts[1], lambda h: seen.append(h.shape) or h * 0.0)
    data = np.ones((3, 2), "float32")
    np.testing.assert_array_equal(model(data), np.zeros((3, 2)))  # the replacement ran, in an eager call
    assert seen == [(3, 2)] and "call" in vars(chain.parts[1])
    restore()
    assert "call" not in vars(chain.parts[1]) and not np.allclose(model(data), 0.0)
