"""Callbacks count steps from the optimizer's iteration counter: with ``steps_per_execution=4`` Keras calls
batch callbacks once per 4 steps, and rewinding, gradual pruning, the resumable fit and the sparsity log
still see the true step."""

import json

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery import schedules, training
from keras_lottery.callbacks import RewindCheckpoint
from tests.helpers import dead_entries


def _compile(model, hparams, datasets, steps_per_execution):
    model.compile(optimizer=training.make_optimizer(hparams, datasets.steps_per_epoch),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                  steps_per_execution=steps_per_execution)
    return model


def _fit(model, datasets, hparams, steps, callbacks=(), steps_per_execution=1):
    _compile(model, hparams, datasets, steps_per_execution)
    model.fit(datasets.train(0), steps_per_epoch=steps, epochs=1, callbacks=list(callbacks), verbose=0, shuffle=False)
    return model


def test_rewind_between_two_calls_captures_the_first_step_after_and_says_so(datasets, adam, build):
    rewind = RewindCheckpoint(at="5it")
    with pytest.warns(UserWarning, match=r"captured step 8, not step 5: with steps_per_execution=4"):
        _fit(kl.mask(build(0)), datasets, adam, 12, [rewind], steps_per_execution=4)
    assert rewind.point is not None and rewind.point.step == 8 and int(rewind.point.optimizer[0]) == 8
    reference = _fit(kl.mask(build(0)), datasets, adam, 8)  # the same run, one step per call, stopped at 8
    for a, b in zip(rewind.point.weights, reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    restored = rewind.restore(_fit(kl.mask(build(1)), datasets, adam, 2))
    assert int(restored.optimizer.iterations) == 8


def test_rewind_at_a_multiple_of_steps_per_execution_is_exact(datasets, adam, build, recwarn):
    rewind = RewindCheckpoint(at="4it")
    _fit(kl.mask(build(0)), datasets, adam, 12, [rewind], steps_per_execution=4)
    assert rewind.point.step == 4 and int(rewind.point.optimizer[0]) == 4
    assert not [w for w in recwarn if "RewindCheckpoint" in str(w.message)]


def test_gradual_pruning_applies_every_turn_of_an_execution(mlp, mlp_data, tmp_path):
    masked = kl.mask(mlp)
    masked.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                   steps_per_execution=4)
    schedule = schedules.PolynomialDecay(0.0, 0.75, begin_step=0, end_step=6, frequency=2)  # turns 0, 2, 4, 6
    callback = kl.callbacks.GradualPruning(schedule, scope="global", exclude=["predictions"])
    logger = kl.callbacks.SparsityLogger(log_dir=str(tmp_path))
    masked.fit(*mlp_data, batch_size=4, epochs=2, verbose=0, callbacks=[callback, logger])  # 8 steps an epoch
    # Called before steps 0, 4, 8, 12: the last turn of [0, 4) is 2, of [4, 8) is 6 (the final sparsity).
    assert [h[0] for h in callback.history] == [2, 6]
    assert [h[1] for h in callback.history] == pytest.approx([schedule(2)[1], 0.75])
    mask = kl.Mask.from_model(masked)
    assert mask.alive == round(0.25 * mask.total)
    assert all(not np.any(v) for v in dead_entries(masked).values())
    rows = [json.loads(line) for line in (tmp_path / "sparsity.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [8, 16]


def test_gradual_pruning_update_reads_the_given_optimizer(mlp):
    masked = kl.mask(mlp)
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
    optimizer.build(masked.trainable_variables)
    callback = kl.callbacks.GradualPruning(schedules.ConstantSparsity(0.5, begin_step=3, frequency=100))
    assert not callback.update(masked, optimizer)  # iteration 0: no turn
    optimizer.iterations.assign(3)
    assert callback.update(masked, optimizer) and callback.history[0][0] == 3
    assert kl.Mask.from_model(masked).report()["layers"]["fc1/kernel"]["density"] == 0.5


def test_resumable_fit_counts_steps_with_steps_per_execution(tiny_datasets, tiny_training, tmp_path):
    spe = tiny_datasets.steps_per_epoch  # 6: an epoch is one call after 4 steps and one after 2
    model = _compile(kl.models.lenet_300_100((8, 8, 1), classes=4, seed=2), tiny_training, tiny_datasets, 4)
    _, metrics = training.fit(model, tiny_datasets, tiny_training, str(tmp_path), compile_model=False, verbose=0)
    state = training.read_state(str(tmp_path))
    assert [row["step"] for row in state["history"]] == [spe, 2 * spe, 3 * spe]
    assert metrics["end_step"] == 3 * spe
