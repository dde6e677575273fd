"""IMP on models whose masks are attached in place: a subclassed model, alone or nested in a functional
one, whose sublayers Keras names anew in every instance (``dense_24`` in one, ``dense_36`` in the next)."""

import os

import keras
import numpy as np
import pytest

from keras_lottery import masking, runs
from keras_lottery.lottery import imp
from keras_lottery.masks import Mask
from keras_lottery.training import loop


@keras.saving.register_keras_serializable(package="tests_imp_subclassed")
class SmallNet(keras.Model):
    """Two auto-named dense layers (a .keras file rebuilds it with new names)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.flatten = keras.layers.Flatten()
        self.hidden = keras.layers.Dense(16, activation="relu")
        self.out = keras.layers.Dense(4)

    def call(self, x):
        return self.out(self.hidden(self.flatten(x)))


def _subclassed(seed):
    keras.utils.set_random_seed(seed)
    model = SmallNet()
    model(np.zeros((1, 8, 8, 1), "float32"))
    return model


def _nested(seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    return keras.Model(inputs, keras.layers.Dense(4)(_subclassed(seed)(inputs)))


@pytest.mark.parametrize("build", [_subclassed, _nested], ids=["subclassed", "nested"])
def test_imp_prunes_every_level_and_control_of_a_subclassed_model(tmp_path, build, make_datasets, adam, pruning_hparams):
    rows = imp.run(str(tmp_path), build, make_datasets(), adam, pruning_hparams(rule="global", layer_rates=""),
                   log=None)
    assert {(r["level"], r["kind"]) for r in rows} == {(0, "ticket"), (1, "ticket"), (1, "reinit"), (1, "random"),
                                                       (2, "ticket"), (2, "reinit"), (2, "random")}
    for row in rows:
        directory = runs.level_dir(str(tmp_path), row["level"], row["kind"])
        mask = Mask.load(os.path.join(directory, runs.MASK)) if row["level"] else None
        assert row["density"] == pytest.approx(0.5 ** row["level"], abs=0.01)
        if mask is None:
            continue
        model = loop.load_final_model(directory)  # its attached masks installed again from model.mask.npz
        installed = [(v.numpy(), m.numpy()) for layer in masking.masked_layers(model)
                     for _, v, m in layer.masked_weights()]
        assert len(installed) == len(mask) == (2 if build is _subclassed else 3)
        for array, (weight, installed_mask) in zip(mask.values(), installed):
            np.testing.assert_array_equal(installed_mask != 0, array)
            assert not np.any(weight[~array])  # every dead weight stayed 0 through training
