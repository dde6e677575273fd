"""Masks and the TFMOT-style pruning API on Keras' JAX backend (the multi-backend first step of
docs/migrating_from_tfmot.md), run in a fresh interpreter with ``KERAS_BACKEND=jax``."""

import pytest

from tests.helpers import run_python

CHILD = r"""
import json
import keras
import numpy as np
import keras_lottery as kl
from keras_lottery import sparsity
from keras_lottery.masking import masked_layers

assert keras.backend.backend() == "jax", keras.backend.backend()
inputs = keras.Input((16,))
h = keras.layers.Dense(32, activation="relu", name="fc1")(inputs)
model = keras.Model(inputs, keras.layers.Dense(4, name="predictions")(h))
rng = np.random.default_rng(0)
x, y = rng.normal(size=(64, 16)).astype("float32"), rng.integers(0, 4, 64)
loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

# kl.mask + a pruning rule, trained with Adam: dead weights stay exactly zero, live ones train
masked = kl.mask(model)
kl.prune(masked, kl.GlobalMagnitude(rate=0.5))
before = {p: np.asarray(v.value).copy() for layer in masked_layers(masked) for p, v, _ in layer.masked_weights()}
masked.compile(keras.optimizers.Adam(1e-2), loss)
masked.fit(x, y, batch_size=16, epochs=2, verbose=0)
dead_nonzero, live_moved = 0, True
for layer in masked_layers(masked):
    for path, variable, mask in layer.masked_weights():
        w, alive = np.asarray(variable.value), np.asarray(mask.value) == 1
        dead_nonzero += int(np.count_nonzero(w[~alive]))
        live_moved &= bool(np.any(w[alive] != before[path][alive]))

# prune_low_magnitude + UpdatePruningStep: the in-layer step counter and the schedule's turns
pruned = sparsity.prune_low_magnitude(model, pruning_schedule=sparsity.PolynomialDecay(0.0, 0.75, 0, 6, frequency=2))
pruned.compile(keras.optimizers.Adam(1e-2), loss)
callback = sparsity.UpdatePruningStep()
pruned.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[callback])
wrappers = sparsity.wrapper.pruning_wrappers(pruned)
masks_before = [np.asarray(m.value).copy() for w in wrappers for m in w.mask_variables().values()]
repeat_changed = [w.prune_to(0.75) for w in wrappers]  # a turn at the same sparsity: the compiled check
repeat_same = all(np.array_equal(a, np.asarray(m.value)) for a, m in
                  zip(masks_before, [m for w in wrappers for m in w.mask_variables().values()]))
rule = [sparsity.structured.magnitude_mask(np.asarray(v.value), 0.75)[1] for w in wrappers for _, v, _ in w.masked_weights()]
thresholds_ok = all(float(np.asarray(t.value)) == float(r) for t, r in
                    zip([t for w in wrappers for t in w.thresholds().values()], rule))
stripped = sparsity.strip_pruning(pruned)
print(json.dumps({
    "dead_nonzero": dead_nonzero, "live_moved": live_moved,
    "steps": [int(np.asarray(w.pruning_step.value)) for w in wrappers],
    "turns": sorted({step for step, _, _ in callback.history}),
    "densities": [float(np.mean(np.asarray(m.value))) for w in wrappers for m in w.mask_variables().values()],
    "repeat_changed": repeat_changed, "repeat_same": repeat_same, "thresholds_ok": thresholds_ok,
    "strip_same": bool(np.allclose(stripped.predict(x[:8], verbose=0), pruned.predict(x[:8], verbose=0), atol=1e-5)),
}))
"""


def test_masks_and_pruning_api_train_on_jax():
    result = run_python(CHILD, timeout=300, KERAS_BACKEND="jax")
    assert result["dead_nonzero"] == 0 and result["live_moved"]
    assert result["steps"] == [8, 8]  # 2 epochs of 4 batches, counted in each layer
    assert result["turns"] == [2, 4, 6]
    assert result["densities"] == pytest.approx([0.25, 0.25], abs=0.01)
    assert result["repeat_changed"] == [False, False] and result["repeat_same"] and result["thresholds_ok"]
    assert result["strip_same"]
