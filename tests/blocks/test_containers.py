"""Removing the sublayers of a user's container layer (a layer applying a list of residual sublayers in a
loop) by shortening its list in a copy of the model; a container looping over a stored count is refused."""

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.blocks import unlist
from keras_lottery.blocks.discovery import operations
from tests.helpers import ResidualDense as Residual, ResidualStack as Stack


class Counted(Stack):
    """Loops over its stored depth, not over its list: a shorter list breaks it."""

    def call(self, x):
        for i in range(self.depth):
            x = self.residuals[i](x)
        return keras.ops.tanh(x)


CUSTOM = {cls.__name__: cls for cls in (Stack, Counted, Residual)}


def _model(container):
    x = keras.Input((8,))
    h = container(3, name="stack")(keras.layers.Dense(8, name="stem")(x))
    return keras.Model(x, keras.layers.Dense(3, name="head")(h))


def _data():
    return np.random.default_rng(0).normal(size=(2, 8)).astype("float32")


def test_a_sublayer_of_a_users_container_is_removed_from_its_list(tmp_path):
    model = _model(Stack)
    blocks = kl.blocks.find_blocks(model, warn=False)
    assert blocks.names() == ["stack/res_0", "stack/res_1", "stack/res_2"]
    slim = kl.blocks.remove(model, ["stack/res_1"])
    assert [layer.name for layer in slim.get_layer("stack").residuals] == ["res_0", "res_2"]
    assert kl.blocks.find_blocks(slim, warn=False).names() == ["stack/res_0", "stack/res_2"]
    assert slim.count_params() == model.count_params() - blocks[1].params
    x = _data()
    reference = unlist.skipped_outputs(model, operations(model, blocks[1], ["res_1"]), x)
    np.testing.assert_allclose(np.asarray(slim(x)), reference[0], atol=1e-6)
    # the container's config now says depth=2: the slim model saves and loads as itself
    assert slim.get_layer("stack").get_config()["depth"] == 2
    slim.save(str(tmp_path / "slim.keras"))
    loaded = keras.saving.load_model(str(tmp_path / "slim.keras"), custom_objects=CUSTOM)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(slim(x)), atol=1e-6)


def test_a_container_looping_over_a_stored_count_is_refused():
    model = _model(Counted)
    assert kl.blocks.find_blocks(model, warn=False).names() == ["stack/res_0", "stack/res_1", "stack/res_2"]
    with pytest.raises(ValueError, match=r"the container's call fails once they are out of its list .*stored count"):
        kl.blocks.remove(model, ["stack/res_1"])


def test_a_container_whose_output_depends_on_its_list_length_is_refused():
    class Averaged(Stack):  # runs on a shorter list, but computes something else than the block skipped
        def call(self, x):
            for layer in self.residuals:
                x = layer(x)
            return keras.ops.tanh(x / len(self.residuals))

    with pytest.raises(ValueError, match=r"does not compute the original with them skipped") as info:
        kl.blocks.remove(_model(Averaged), ["stack/res_1"])
    assert "\n" not in str(info.value)


def test_a_container_without_a_config_is_refused_in_one_line():
    class Bare(Stack):
        def get_config(self):  # a layer whose config cannot rebuild it: no depth
            return keras.layers.Layer.get_config(self)

    with pytest.raises(ValueError, match=r"could not be removed from their container's list") as info:
        kl.blocks.remove(_model(Bare), ["stack/res_0"])
    assert "\n" not in str(info.value)


def test_sublayers_and_graph_blocks_are_removed_in_two_calls():
    x = keras.Input((8,))
    h = keras.layers.Dense(8, name="stem")(x)
    h = keras.layers.Add(name="add")([h, keras.layers.Dense(8, name="branch")(h)])
    model = keras.Model(x, Stack(2, name="stack")(h))
    assert kl.blocks.find_blocks(model, warn=False).names() == ["add", "stack/res_0", "stack/res_1"]
    with pytest.raises(ValueError, match="in two calls of remove"):
        kl.blocks.remove(model, ["add", "stack/res_0"])


class Stage(keras.layers.Layer):
    """A non-residual first layer (changes the width), then residual layers, in one list."""

    def __init__(self, width, depth, **kwargs):
        super().__init__(**kwargs)
        self.width, self.depth = width, depth
        self.items = [keras.layers.Dense(width, name=f"{self.name}_down")]
        self.items += [Residual(name=f"{self.name}_res_{i}") for i in range(depth)]

    def call(self, x):
        for layer in self.items:
            x = layer(x)
        return x


class Encoder(keras.layers.Layer):
    """A list of stages (containers themselves, none residual), applied in a loop."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.stages = [Stage(8, 1, name="stage_0"), Stage(4, 2, name="stage_1")]

    def call(self, x):
        for stage in self.stages:
            x = stage(x)
        return x


def test_residual_sublayers_of_nested_containers_after_a_first_layer_are_blocks():
    x = keras.Input((6,))
    model = keras.Model(x, Encoder(name="encoder")(x))
    blocks = kl.blocks.find_blocks(model, warn=False)
    assert blocks.names() == ["encoder/stage_0/stage_0_res_0", "encoder/stage_1/stage_1_res_0",
                              "encoder/stage_1/stage_1_res_1"]
    assert blocks[1].container == "encoder/stage_1"
    slim = kl.blocks.remove(model, blocks[1:2])
    stage = slim.get_layer("encoder").stages[1]
    assert [layer.name for layer in stage.items] == ["stage_1_down", "stage_1_res_1"]
    data = np.random.default_rng(0).normal(size=(2, 6)).astype("float32")
    reference = unlist.skipped_outputs(model, operations(model, blocks[1], ["stage_1_res_0"]), data)
    np.testing.assert_allclose(np.asarray(slim(data)), reference[0], atol=1e-6)
