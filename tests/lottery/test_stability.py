import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery import data, lottery, training
from keras_lottery.lottery import stability


def test_two_identical_copies_have_zero_instability(datasets, adam, build):
    start = kl.mask(build(0))
    kl.prune(start, kl.GlobalMagnitude(0.5))
    result = lottery.instability(start, datasets, adam, start_step=2, data_seeds=(4, 4), points=5)
    assert result.train_instability == 0.0 and result.test_instability == 0.0
    assert len(set(result.train_error)) == 1 and len(set(result.test_error)) == 1 and len(result.alphas) == 5
    assert result.alphas[0] == 0.0 and result.alphas[-1] == 1.0 and result.start_step == 2
    assert 0.0 < result.test_error[0] < 0.75  # trained: better than chance on 4 classes, not a constant


def _test_error(model, datasets):
    return 1 - model.evaluate(datasets.test(), verbose=0, return_dict=True)["accuracy"]


def test_different_data_orders_give_a_curve_whose_ends_are_the_trained_copies(datasets, adam, build, tmp_path):
    start = kl.mask(build(0))
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in start.layers)
    result = lottery.instability(start, datasets, adam, data_seeds=(1, 2), points=4, directory=str(tmp_path))
    ends = [keras.saving.load_model(str(tmp_path / f"copy_{i}" / "model.keras")) for i in (0, 1)]
    assert not np.array_equal(ends[0].get_weights()[0], ends[1].get_weights()[0])
    for end, error in zip(ends, (result.test_error[0], result.test_error[-1])):
        assert error == pytest.approx(_test_error(end, datasets))
    ends_mean = (result.test_error[0] + result.test_error[-1]) / 2
    assert result.test_instability == pytest.approx(max(result.test_error) - ends_mean)
    assert result.as_dict()["data_seeds"] == [1, 2]
    # An interior point, computed here: (1 - a) w0 + a w1 in a fresh compiled copy (no batch norm to recompute).
    alpha = result.alphas[1]
    assert alpha == pytest.approx(1 / 3)
    mixed = [((1 - alpha) * np.asarray(w0, np.float64) + alpha * np.asarray(w1, np.float64)).astype(w0.dtype)
             for w0, w1 in zip(ends[0].get_weights(), ends[1].get_weights())]
    probe = kl.mask(build(0))
    training.compile_for_classification(probe, adam, datasets.steps_per_epoch)
    probe.set_weights(mixed)
    assert result.test_error[1] == pytest.approx(_test_error(probe, datasets), abs=1e-6)


def test_error_curve_on_a_path_with_a_known_answer():
    # Two classes, x = +1 (class 1) or -1 (class 0). W1 classifies all correctly, W2 = -W1 all wrongly, and the
    # midpoint W = 0 gives tied logits, which argmax reads as class 0: half the examples right.
    x = np.array([[1.0], [-1.0]] * 8, dtype=np.float32).reshape(16, 1, 1, 1)
    y = (x.reshape(-1) > 0).astype(np.int64)
    arrays = data.Arrays(x, y, x, y, source="known")
    datasets = data.Datasets(arrays, data.DatasetHparams(dataset="known", batch_size=4, validation_size=0,
                                                         normalize=False), data_seed=0)
    inputs = keras.Input((1, 1, 1))
    model = keras.Model(inputs, keras.layers.Dense(2, use_bias=False, name="out")(keras.layers.Flatten()(inputs)))
    model.compile(loss="sparse_categorical_crossentropy",
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    w1 = [np.array([[-1.0, 1.0]], dtype=np.float32)]
    alphas, train_error, test_error = stability.error_curve(model, w1, [-w1[0]], datasets, points=3)
    assert alphas == [0.0, 0.5, 1.0]
    assert train_error == pytest.approx([0.0, 0.5, 1.0]) and test_error == pytest.approx([0.0, 0.5, 1.0])
    assert stability._instability(test_error) == pytest.approx(0.5)


def test_batch_norm_statistics_are_recomputed_on_training_data():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.BatchNormalization(momentum=0.9, name="bn")(inputs))
    batches = [np.full((4, 3), value, dtype=np.float32) + np.arange(4, dtype=np.float32)[:, None] for value in (0, 10)]
    assert stability.recompute_batch_norm(model, [(b, None) for b in batches]) == 2
    bn = model.get_layer("bn")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_mean), [6.5] * 3, rtol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_variance), [1.25] * 3, rtol=1e-5)
    assert bn.momentum == 0.9
    plain = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    assert stability.recompute_batch_norm(plain, [(batches[0], None)]) == 0


def test_bad_arguments_are_refused(datasets, adam, build):
    start = kl.mask(build(0))
    with pytest.raises(ValueError, match="start_step=12 must lie in"):
        lottery.instability(start, datasets, adam, start_step=12)
    with pytest.raises(ValueError, match="data_seeds takes two seeds"):
        lottery.instability(start, datasets, adam, data_seeds=(1,))
    with pytest.raises(ValueError, match="points must be >= 2"):
        lottery.instability(start, datasets, adam, points=1)


def test_mask_paths_take_run_directory_names_with_equals_and_commas(tmp_path):
    run = tmp_path / "imp" / "lr=0.01,rewind=0" / "level_2"
    run.mkdir(parents=True)
    (run / "mask.npz").write_bytes(b"")
    one = str(run / "mask.npz")
    assert lottery.StabilityHparams(mask=one).mask_paths() == {None: one}
    other = one.replace("rewind=0", "rewind=100it")
    per_k = lottery.StabilityHparams(mask=f"0={one},100it={other}").mask_paths()
    assert per_k == {"0": one, "100it": other}
    with pytest.raises(ValueError, match=r"'3it' is not k=path"):
        lottery.StabilityHparams(mask=f"0={one},3it").validate()
