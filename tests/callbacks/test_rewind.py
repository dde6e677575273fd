import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery import training
from keras_lottery.callbacks import RewindCheckpoint, RewindPoint


def _fit(model, datasets, hparams, steps, callbacks=()):
    training.compile_for_classification(model, hparams, datasets.steps_per_epoch)
    model.fit(datasets.train(0), steps_per_epoch=steps, epochs=1, callbacks=list(callbacks), verbose=0, shuffle=False)
    return model


def _optimizer_values(model):
    return [keras.ops.convert_to_numpy(v.value) for v in model.optimizer.variables]


def test_captures_weights_optimizer_state_and_step_at_k(datasets, adam, build):
    rewind = RewindCheckpoint(at="4it")
    _fit(kl.mask(build(0)), datasets, adam, 10, [rewind])
    reference = _fit(kl.mask(build(0)), datasets, adam, 4)  # the same run stopped at step 4
    assert rewind.point.step == 4 and rewind.rewind_step == 4
    for a, b in zip(rewind.point.weights, reference.get_weights()):
        np.testing.assert_array_equal(a, b)
    captured = rewind.point.optimizer
    assert int(captured[0]) == 4 and len(captured) == len(reference.optimizer.variables)
    for a, b in zip(captured, _optimizer_values(reference)):
        np.testing.assert_array_equal(a, b)


def test_restore_rewinds_survivors_keeps_masks_and_optimizer_state(datasets, adam, build):
    rewind = RewindCheckpoint(at="4it")
    model = _fit(kl.mask(build(0)), datasets, adam, 10, [rewind])
    mask = kl.prune(model, kl.LayerwiseMagnitude(0.5))
    rewind.restore(model)
    assert kl.Mask.from_model(model) == mask
    theta_k = {id(v): w for v, w in zip(model.weights, rewind.point.weights)}
    for layer in kl.masking.masked_layers(model):
        for path, variable in layer.prunable_variables().items():
            value, k_value = keras.ops.convert_to_numpy(variable.value), theta_k[id(variable)]
            np.testing.assert_array_equal(value[mask[path]], k_value[mask[path]])
            assert np.all(value[~mask[path]] == 0) and np.any(k_value[~mask[path]] != 0)
    assert int(model.optimizer.iterations) == 4
    # Keras names a slot "<variable path with / as _>_<slot>": the slots of masked weights are the
    # captured values times the mask; every other optimizer variable (iteration, bias slots) as captured.
    masked = {variable.path.replace("/", "_"): path for layer in kl.masking.masked_layers(model)
              for path, variable in layer.prunable_variables().items()}
    masked_slots, alive_entries = 0, 0
    assert len(model.optimizer.variables) == len(rewind.point.optimizer)
    for variable, captured in zip(model.optimizer.variables, rewind.point.optimizer):
        value = keras.ops.convert_to_numpy(variable.value)
        name = variable.path.rpartition("/")[2]
        owner = next((path for prefix, path in masked.items() if name in (f"{prefix}_momentum", f"{prefix}_velocity")),
                     None)
        if owner is None:
            np.testing.assert_array_equal(value, captured)
        else:
            np.testing.assert_array_equal(value, captured * mask[owner])
            masked_slots += 1
            alive_entries += int(np.count_nonzero(value))
    assert masked_slots == 2 * len(masked) == 6 and alive_entries > 0
    model.fit(datasets.train(4), steps_per_epoch=3, epochs=1, verbose=0, shuffle=False)
    assert all(np.all(w[~mask[p]] == 0) for p, w in kl.pruning.weights_of(model).items())


def test_at_zero_is_the_initialization_and_a_fresh_optimizer(datasets, adam, build):
    init = kl.mask(build(0)).get_weights()
    rewind = RewindCheckpoint(at=0)
    model = _fit(kl.mask(build(0)), datasets, adam, 3, [rewind])
    assert rewind.point.step == 0 and len(rewind.point.optimizer) == 1
    for a, b in zip(rewind.point.weights, init):
        np.testing.assert_array_equal(a, b)
    rewind.restore(model)
    assert int(model.optimizer.iterations) == 0
    assert all(not np.any(keras.ops.convert_to_numpy(v.value)) for v in model.optimizer.variables)


def test_epochs_and_fractions_resolve_and_points_round_trip(datasets, adam, build, tmp_path):
    spe = datasets.steps_per_epoch
    by_epoch = RewindCheckpoint(at="1ep", path=tmp_path / "ep.npz")
    by_fraction = RewindCheckpoint(at="0.25")  # of epochs x steps_per_epoch = 2 x 6 = 12 steps: step 3
    model = kl.mask(build(0))
    training.compile_for_classification(model, adam, spe)
    model.fit(datasets.train(0), steps_per_epoch=spe, epochs=2, callbacks=[by_epoch, by_fraction], verbose=0,
              shuffle=False)
    assert by_epoch.point.step == spe and by_fraction.point.step == 3
    loaded = RewindPoint.load(tmp_path / "ep.npz")
    assert loaded.step == spe and len(loaded.weights) == len(by_epoch.point.weights)
    assert len(loaded.optimizer) == len(by_epoch.point.optimizer)
    for a, b in zip(loaded.weights, by_epoch.point.weights):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(loaded.optimizer, by_epoch.point.optimizer):
        np.testing.assert_array_equal(a, b)


def test_errors_name_the_problem(datasets, adam, build):
    with pytest.raises(ValueError, match="Cannot read duration 'soon'"):
        RewindCheckpoint(at="soon")
    rewind = RewindCheckpoint(at="50it")
    with pytest.raises(ValueError, match="has captured nothing yet"):
        rewind.restore(kl.mask(build(0)))
    point = RewindPoint.capture(kl.mask(build(0)), step=0)
    other = kl.mask(kl.models.lenet_300_100((4, 4, 1), classes=4, seed=0))
    with pytest.raises(ValueError, match="shape"):
        point.restore_weights(other)
    with pytest.raises(ValueError, match="compile it first|needs a compiled model"):
        point.restore(kl.mask(build(0)))
