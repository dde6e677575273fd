"""keras_lottery.sparsity.schedules: TFMOT's schedule semantics and get_config round trips."""

import keras
import numpy as np
import pytest

from keras_lottery.sparsity import schedules
from keras_lottery.sparsity.schedules import ConstantSparsity, PolynomialDecay, PruningSchedule


@keras.saving.register_keras_serializable(package="tests")
class EveryOther(PruningSchedule):
    """A user schedule in TFMOT's style: returns TensorFlow tensors."""

    def __init__(self, sparsity):
        self.sparsity_value = sparsity

    def __call__(self, step):
        import tensorflow as tf
        return tf.equal(tf.math.floormod(step, 2), 0), tf.constant(self.sparsity_value, tf.float32)

    def get_config(self):
        return {"class_name": "EveryOther", "config": {"sparsity": self.sparsity_value}}


@pytest.mark.parametrize("schedule", [ConstantSparsity(0.7, 3, 40, frequency=5),
                                      PolynomialDecay(0.1, 0.9, 10, 110, power=2, frequency=7),
                                      EveryOther(0.3)])
def test_get_config_round_trips(schedule):
    config = schedule.get_config()
    assert set(config) == {"class_name", "config"}
    again = schedules.deserialize(config)
    assert type(again) is type(schedule) and again.get_config() == config
    assert type(schedule).from_config(config["config"]).get_config() == config
    for step in range(0, 130):
        assert schedules.evaluate(again, step) == schedules.evaluate(schedule, step)


def test_when_to_prune_follows_tfmot():
    turns = [s for s in range(0, 60) if ConstantSparsity(0.5, 10, 40, frequency=10)(s)[0]]
    assert turns == [10, 20, 30, 40]
    forever = [s for s in range(0, 35) if ConstantSparsity(0.5, 0, frequency=10)(s)[0]]
    assert forever == [0, 10, 20, 30]
    poly = PolynomialDecay(0.2, 0.8, 100, 200, frequency=50)
    assert [s for s in range(0, 300) if poly(s)[0]] == [100, 150, 200]


def test_polynomial_decay_values_and_float32():
    poly = PolynomialDecay(0.2, 0.8, 100, 200, power=3, frequency=10)
    assert abs(poly(50)[1] - 0.2) < 1e-6 and abs(poly(500)[1] - 0.8) < 1e-6
    middle = 0.8 + (0.2 - 0.8) * 0.5 ** 3
    assert abs(float(poly(150)[1]) - middle) < 1e-6
    assert isinstance(poly(150)[1], np.float32)


def test_tensor_returning_subclass_is_evaluated():
    assert schedules.evaluate(EveryOther(0.25), 4) == (True, 0.25)
    assert schedules.evaluate(EveryOther(0.25), 5)[0] is False


@pytest.mark.parametrize("make, message", [
    (lambda: ConstantSparsity(1.0, 0), "target_sparsity"),
    (lambda: ConstantSparsity(0.5, -1), "begin_step"),
    (lambda: ConstantSparsity(0.5, 10, 5), "end_step"),
    (lambda: ConstantSparsity(0.5, 0, frequency=0), "frequency"),
    (lambda: PolynomialDecay(0.1, 0.5, 0, -1), "end_step"),
    (lambda: schedules.deserialize({"class_name": "Nope", "config": {}}), "Unknown pruning schedule"),
])
def test_bad_arguments_fail_clearly(make, message):
    with pytest.raises(ValueError, match=message):
        make()
