"""Subclassed models (a ``keras.Model`` with its own ``call()``), alone or nested in a functional model:
masks, pruning, stripping, FLOPs and export work on them as on graph models."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_lottery as kl
from keras_lottery import graph


@keras.saving.register_keras_serializable(package="tests_subclassed")
class Residual(keras.layers.Layer):
    """A layer of layers whose sublayers get Keras' automatic names."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.inner = [keras.layers.Dense(units, activation="relu"), keras.layers.Dense(units)]

    def call(self, x):
        y = x
        for dense in self.inner:
            y = dense(y)
        return x + y

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="tests_subclassed")
class Net(keras.Model):
    """A subclassed model whose config is Keras' default one (no name in it)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.stem = keras.layers.Dense(8)
        self.stack = [Residual(8) for _ in range(2)]
        self.head = keras.layers.Dense(3)

    def call(self, features):
        x = self.stem(features)
        for block in self.stack:
            x = block(x)
        return self.head(x)


X = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")
NET_FLOPS = (2 * 5 * 8 + 8) + 2 * (2 * (2 * 8 * 8 + 8) + 8 + 8) + (2 * 8 * 3 + 3)  # dense, relu, residual add


def _built_net():
    keras.utils.set_random_seed(1)
    net = Net()
    net(X)
    return net


def _pruned(model):
    masked = kl.mask(model)
    kl.prune(masked, kl.GlobalMagnitude(0.5))
    return masked


def _serve(path, **inputs):
    served = tf.saved_model.load(path).signatures["serving_default"]
    return served(**{name: tf.constant(value) for name, value in inputs.items()})


def test_functional_view_takes_the_call_argument_names_and_shares_the_variables():
    net = _built_net()
    view = graph.functional_view(net)
    assert [t.name for t in view.inputs] == ["features"] and tuple(view.inputs[0].shape) == (None, 5)
    assert view.name == net.name and {id(v) for v in view.weights} == {id(v) for v in net.weights}
    np.testing.assert_allclose(view(X), net(X), rtol=1e-6)
    functional = keras.Model(view.inputs, view.outputs)
    assert graph.functional_view(functional) is functional


def test_functional_view_refuses_what_it_cannot_read():
    with pytest.raises(ValueError, match="never called or built; .*model.build"):
        graph.functional_view(Net(), "exporting")

    class NeedsValues(keras.Model):
        def __init__(self):
            super().__init__()
            self.fc = keras.layers.Dense(2)

        def call(self, x):
            return self.fc(x) * float(keras.ops.convert_to_numpy(keras.ops.max(x)))  # a concrete value

    model = NeedsValues()
    model(X)
    with pytest.raises(ValueError, match="to run on symbolic inputs .* needs concrete values"):
        graph.functional_view(model)


def test_an_argument_holding_several_inputs_becomes_a_list_of_named_inputs():
    class TwoInputs(keras.Model):
        def __init__(self):
            super().__init__()
            self.fc = keras.layers.Dense(4)

        def call(self, pair):
            return self.fc(pair[0]) + pair[1]

    model = TwoInputs()
    model([X, np.zeros((4, 4), "float32")])
    view = graph.functional_view(model)
    assert [(t.name, tuple(t.shape)) for t in view.inputs] == [("pair_0", (None, 5)), ("pair_1", (None, 4))]
    assert kl.metrics.flops(model) == (2 * 5 * 4 + 4) + 4


def test_a_model_marked_built_without_weights_is_refused_before_masking():
    net = Net()
    net.build((None, 5))  # Keras marks it built; without a build() method it creates no weights
    with pytest.raises(ValueError, match="marked built but none of its layers is.*call the model on a batch"):
        kl.mask(net)


def test_flops_of_a_subclassed_model_are_traced_and_memory_is_refused():
    net = _built_net()
    assert kl.metrics.flops(net) == NET_FLOPS
    assert kl.metrics.layer_flops(net) == {"layers": {"features": 0, net.name: NET_FLOPS}, "uncounted": []}
    with pytest.raises(TypeError, match="memory reads every layer's output.*subclassed Net"):
        kl.metrics.memory(net)
    with pytest.raises(ValueError, match="not built"):
        kl.metrics.flops(Net())


def test_a_masked_copy_of_a_built_subclassed_model_is_built_under_its_name_and_exports(tmp_path):
    net = _built_net()
    masked = _pruned(net)
    assert type(masked) is Net and masked.built and masked.name == net.name
    result = kl.export.for_serving(masked, tmp_path / "net", dense_model=net, require_sparse=True)
    assert list(result.card["signature"]["inputs"]) == ["features"]
    assert result.card["density"]["global"]["density"] == pytest.approx(0.5, abs=0.01)
    assert result.card["flops"] == {"ticket": NET_FLOPS, "dense": NET_FLOPS, "ratio": 1.0}  # zeros are not skipped
    served = _serve(result.path, features=X)
    np.testing.assert_allclose(served["logits"], masked(X), rtol=1e-5, atol=1e-6)


def test_sparsity_api_on_a_subclassed_model_exports_its_pruned_weights(tmp_path):
    net = _built_net()
    pruned = kl.sparsity.prune_low_magnitude(net, pruning_schedule=kl.sparsity.ConstantSparsity(0.5, 0, frequency=1))
    pruned.compile("sgd", "mse")
    pruned.fit(X, np.zeros((4, 3), "float32"), verbose=0, callbacks=[kl.sparsity.UpdatePruningStep()])
    result = kl.export.for_serving(pruned, tmp_path / "net")
    assert result.card["density"]["global"]["density"] == pytest.approx(0.5, abs=0.01)
    np.testing.assert_allclose(_serve(result.path, features=X)["logits"], pruned(X), rtol=1e-5, atol=1e-6)


def test_a_subclassed_model_nested_in_a_functional_model_is_masked_stripped_and_exported(tmp_path):
    inputs = keras.Input((5,), name="features")
    outer = keras.Model(inputs, keras.layers.Dense(2, name="out")(_built_net()(inputs)))
    masked = _pruned(outer)
    inner = masked.layers[1]
    assert type(inner) is Net and len(kl.masking.masked_layers(inner)) == 6  # stem, 2 x 2 residual, head
    total = sum(int(np.prod(v.shape)) for v in outer.weights if len(v.shape) == 2)
    assert kl.sparsity_report(masked, print_fn=None)["global"]["total"] == total

    stripped = kl.strip(masked)
    assert not kl.masking.masked_layers(stripped)
    np.testing.assert_allclose(stripped(X), masked(X), rtol=1e-6, atol=1e-6)
    assert sum(int(np.count_nonzero(v.numpy() == 0)) for v in stripped.weights if len(v.shape) == 2) == total // 2

    again = kl.mask(outer)  # copy_weights pairs the nested model by name, its renamed sublayers in order
    np.testing.assert_allclose(again(X), outer(X), rtol=1e-6)
    result = kl.export.for_serving(masked, tmp_path / "outer", dense_model=outer)
    np.testing.assert_allclose(_serve(result.path, features=X)["logits"], masked(X), rtol=1e-5, atol=1e-6)
