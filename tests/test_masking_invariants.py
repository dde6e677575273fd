"""Dead weights are exactly 0 in the forward pass and after any number of optimizer steps."""

import keras
import numpy as np
import pytest

import keras_lottery as kl
from tests.helpers import dead_entries, run_python

OPTIMIZERS = {
    "sgd_momentum": lambda: keras.optimizers.SGD(0.1, momentum=0.9),
    "nesterov": lambda: keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    "adam": lambda: keras.optimizers.Adam(0.05),
    "adamw": lambda: keras.optimizers.AdamW(0.05, weight_decay=0.5),
    "rmsprop": lambda: keras.optimizers.RMSprop(0.05, momentum=0.9),
    "global_clipnorm": lambda: keras.optimizers.Adam(0.05, global_clipnorm=0.01),
}


def _train_prune_train(model, data, optimizer, jit_compile=False):
    masked = kl.mask(model)
    masked.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=jit_compile)
    masked.fit(*data, batch_size=8, epochs=1, verbose=0, shuffle=False)  # dense steps: momentum everywhere
    mask = kl.prune(masked, kl.GlobalMagnitude(0.6))
    masked.fit(*data, batch_size=8, epochs=1, verbose=0, shuffle=False)
    return masked, mask


def _slots_at_dead(masked, optimizer, mask, path="fc1/kernel"):
    """Non-zero optimizer-state entries at the dead positions of ``path``."""
    variable = masked.get_layer(path.split("/")[0]).layer.kernel
    slots = kl.masking.optimizer_slots(optimizer, variable)
    return sum(int(np.count_nonzero(keras.ops.convert_to_numpy(s.value)[~mask[path]])) for s in slots)


def _assert_exact_zeros(masked, mask, x):
    assert kl.Mask.from_model(masked) == mask
    for path, values in dead_entries(masked).items():
        assert values.size and np.all(values == 0), f"{path}: {np.count_nonzero(values)} dead weights non-zero"
    np.testing.assert_allclose(masked.predict(x, verbose=0), kl.strip(masked).predict(x, verbose=0),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizers_never_revive_dead_weights(name, mlp, mlp_data):
    optimizer = OPTIMIZERS[name]()
    masked, mask = _train_prune_train(mlp, mlp_data, optimizer)
    _assert_exact_zeros(masked, mask, mlp_data[0])
    # Pruning zeroed the optimizer state of the dead entries, and it stayed zero.
    assert kl.masking.optimizer_slots(optimizer, masked.get_layer("fc1").layer.kernel)
    assert _slots_at_dead(masked, optimizer, mask) == 0


def test_without_state_zeroing_momentum_would_leak(mlp, mlp_data):
    """The set-up above is meaningful: state restored after pruning moves dead weights unless re-zeroed."""
    masked = kl.mask(mlp)
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
    masked.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    masked.fit(*mlp_data, batch_size=8, epochs=1, verbose=0)
    saved = [keras.ops.convert_to_numpy(v.value) for v in optimizer.variables]
    mask = kl.prune(masked, kl.GlobalMagnitude(0.6))
    for v, value in zip(optimizer.variables, saved):  # e.g. a rewind restoring optimizer state
        v.assign(value)
    assert _slots_at_dead(masked, optimizer, mask) > 0
    masked.fit(*mlp_data, batch_size=8, epochs=1, verbose=0)
    assert any(np.count_nonzero(v) for v in dead_entries(masked).values())  # leaked into stored weights
    # by default the forward pass reads the stored weights, so the leak shows (strip masks it away)
    assert not np.allclose(masked(mlp_data[0]), kl.strip(masked)(mlp_data[0]), rtol=1e-5, atol=1e-5)
    # the documented fixes: zero_optimizer_state after a restore, or the per-step constraint
    kl.apply_mask(masked, mask)
    assert kl.masking.zero_optimizer_state(masked) > 0 and _slots_at_dead(masked, optimizer, mask) == 0
    masked.fit(*mlp_data, batch_size=8, epochs=1, verbose=0)
    assert all(np.all(v == 0) for v in dead_entries(masked).values())
    strict = kl.mask(mlp, reapply_after_step=True)
    strict_opt = keras.optimizers.SGD(0.1, momentum=0.9)
    strict.compile(strict_opt, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    strict.fit(*mlp_data, batch_size=8, epochs=1, verbose=0)
    saved = [keras.ops.convert_to_numpy(v.value) for v in strict_opt.variables]
    mask = kl.prune(strict, kl.GlobalMagnitude(0.6))
    for v, value in zip(strict_opt.variables, saved):
        v.assign(value)
    strict.fit(*mlp_data, batch_size=8, epochs=1, verbose=0)
    assert all(np.all(v == 0) for v in dead_entries(strict).values())


def test_adamw_decay_and_l2_regularizer_keep_zeros(mlp_data):
    bound = 0.2  # below every initial column norm, and below what this training reaches without it (~0.37)
    inputs = keras.Input((16,))
    y = keras.layers.Dense(32, activation="relu", kernel_regularizer=keras.regularizers.L2(0.1),
                           kernel_constraint=keras.constraints.MaxNorm(bound), name="fc1")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(4, name="predictions")(y))
    assert np.all(np.linalg.norm(model.get_layer("fc1").kernel.numpy(), axis=0) > bound)
    masked, mask = _train_prune_train(model, mlp_data, keras.optimizers.AdamW(0.05, weight_decay=1.0))
    _assert_exact_zeros(masked, mask, mlp_data[0])
    # the layer's own constraint still applies (composed with the mask): it binds at the last step
    norms = np.linalg.norm(masked.get_layer("fc1").layer.kernel.numpy(), axis=0)
    assert np.all(norms <= bound + 1e-5) and norms.max() == pytest.approx(bound, rel=1e-4)


def test_jit_compile(mlp, mlp_data):
    masked, mask = _train_prune_train(mlp, mlp_data, keras.optimizers.Adam(0.05), jit_compile=True)
    _assert_exact_zeros(masked, mask, mlp_data[0])


def test_conv_layers(conv_model):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(16, 8, 8, 3)).astype("float32"), rng.integers(0, 5, 16)
    masked, mask = _train_prune_train(conv_model, data, keras.optimizers.Adam(0.05))
    _assert_exact_zeros(masked, mask, data[0])


def test_mixed_float16(mlp_data):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        inputs = keras.Input((16,))
        y = keras.layers.Dense(32, activation="relu", name="fc1")(inputs)
        y = keras.layers.Dense(4, name="logits")(y)
        model = keras.Model(inputs, keras.layers.Activation("linear", dtype="float32", name="predictions")(y))
        masked = kl.mask(model)
        assert masked.get_layer("fc1").layer.kernel.dtype == "float32"
        assert masked(mlp_data[0]).dtype == "float32"
        masked.compile(keras.optimizers.Adam(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        assert isinstance(masked.optimizer, keras.optimizers.LossScaleOptimizer)
        masked.fit(*mlp_data, batch_size=8, epochs=1, verbose=0)
        mask = kl.prune(masked, kl.GlobalMagnitude(0.6))
        masked.fit(*mlp_data, batch_size=8, epochs=2, verbose=0)
        _assert_exact_zeros(masked, mask, mlp_data[0])
    finally:
        keras.mixed_precision.set_global_policy("float32")


MIRRORED = r"""
import json, os
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
import keras_lottery as kl
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
rng = np.random.default_rng(0)
x, y = rng.normal(size=(64, 16)).astype("float32"), rng.integers(0, 4, 64)
with strategy.scope():
    model = kl.models.lenet_300_100((16,), 4, seed=0)
    masked = kl.mask(model)
    masked.compile(keras.optimizers.SGD(0.1, momentum=0.9), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
masked.fit(x, y, batch_size=16, epochs=1, verbose=0)
mask = kl.prune(masked, kl.GlobalMagnitude(0.7))
masked.fit(x, y, batch_size=16, epochs=2, verbose=0)
bad, replicas_equal = 0, True
for layer in kl.masking.masked_layers(masked):
    for path, v in layer.prunable_variables().items():
        values = [t.numpy() for t in strategy.experimental_local_results(v.value)]
        replicas_equal &= all(np.array_equal(values[0], t) for t in values)
        bad += sum(int(np.count_nonzero(t[~mask[path]])) for t in values)
print(json.dumps({"replicas": strategy.num_replicas_in_sync, "bad": bad, "equal": bool(replicas_equal),
                  "density": kl.Mask.from_model(masked).density}))
"""


def test_mirrored_strategy_two_logical_cpus():
    result = run_python(MIRRORED)
    assert result["replicas"] == 2
    assert result["bad"] == 0 and result["equal"]
    assert abs(result["density"] - 0.3) < 1e-3
