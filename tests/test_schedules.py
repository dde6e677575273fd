"""Schedules, GradualPruning / SparsityLogger callbacks, and the TFMOT cross-checks (subprocess)."""

import json
import math

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery import schedules
from tests.helpers import dead_entries, run_python


def test_iterative_densities():
    np.testing.assert_allclose(schedules.iterative_densities(0.2, 3), [0.8, 0.64, 0.512])
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        schedules.iterative_densities(1.0, 3)
    with pytest.raises(ValueError, match="rounds"):
        schedules.iterative_densities(0.2, -1)


def test_polynomial_decay_and_constant_sparsity():
    s = schedules.PolynomialDecay(0.0, 0.8, begin_step=10, end_step=50, frequency=10)
    assert s(5) == (False, 0.0)
    assert s(10) == (True, 0.0)
    should, value = s(30)
    assert should and math.isclose(value, 0.8 + (0.0 - 0.8) * 0.5 ** 3)
    assert s(31)[0] is False and s(50) == (True, 0.8) and s(60)[0] is False
    c = schedules.ConstantSparsity(0.5, begin_step=2, frequency=3)
    assert [c(t)[0] for t in range(9)] == [False, False, True, False, False, True, False, False, True]
    with pytest.raises(ValueError, match="end_step"):
        schedules.PolynomialDecay(0.0, 0.5, begin_step=10, end_step=5)
    with pytest.raises(ValueError, match="final_sparsity"):
        schedules.PolynomialDecay(0.0, 1.0, begin_step=0, end_step=5)
    with pytest.raises(TypeError, match="pruning schedule"):
        schedules.as_schedule(0.5)


@pytest.mark.parametrize("scope", ["layerwise", "global"])
def test_gradual_pruning_reaches_final_sparsity(scope, mlp, mlp_data, tmp_path):
    masked = kl.mask(mlp)
    masked.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    schedule = schedules.PolynomialDecay(0.0, 0.75, begin_step=0, end_step=6, frequency=2)
    callback = kl.callbacks.GradualPruning(schedule, scope=scope, exclude=["predictions"])
    logger = kl.callbacks.SparsityLogger(log_dir=str(tmp_path / "tb"))
    history = masked.fit(*mlp_data, batch_size=8, epochs=2, verbose=0, callbacks=[callback, logger])
    assert [h[0] for h in callback.history] == [2, 4, 6]  # step 0 targets sparsity 0: nothing to do
    densities = [h[2] for h in callback.history]
    assert densities == sorted(densities, reverse=True)
    mask = kl.Mask.from_model(masked)
    assert mask["predictions/kernel"].all()
    if scope == "layerwise":
        assert mask.report()["layers"]["fc1/kernel"]["alive"] == round(0.25 * 512)
    else:
        assert mask.alive == round(0.25 * mask.total)
    assert all(np.all(v == 0) for v in dead_entries(masked).values())
    assert math.isclose(history.history["density"][-1], mask.density)
    assert "density/fc1/kernel" in history.history
    lines = (tmp_path / "tb" / "sparsity.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[-1])["density"] == pytest.approx(mask.density)


def test_gradual_pruning_errors(mlp):
    with pytest.raises(ValueError, match="scope"):
        kl.callbacks.GradualPruning(schedules.ConstantSparsity(0.5, 0), scope="unit")
    model = keras.Model.from_config(mlp.get_config())
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="no MaskedLayer"):
        model.fit(np.zeros((4, 16)), np.zeros((4, 4)), verbose=0,
                  callbacks=[kl.callbacks.GradualPruning(schedules.ConstantSparsity(0.5, 0))])


TFMOT_SCRIPT = r"""
import json
import numpy as np
import tensorflow_model_optimization as tfmot   # first: legacy Keras for tf.keras in this process
import tf_keras
import keras
import keras_lottery as kl
from keras_lottery import schedules

out = {}
# 1. TFMOT schedule objects are accepted and give the same numbers.
poly = tfmot.sparsity.keras.PolynomialDecay(0.1, 0.8, begin_step=10, end_step=100, frequency=5)
ours = schedules.as_schedule(poly)
out["poly_max_diff"] = max(abs(float(poly(s)[1]) - ours(s)[1]) for s in range(0, 120, 7))
out["poly_turns_equal"] = all(bool(poly(s)[0]) == ours(s)[0] for s in range(0, 120))
const = tfmot.sparsity.keras.ConstantSparsity(0.5, begin_step=3, frequency=4)
out["const_equal"] = all((bool(const(s)[0]), float(const(s)[1])) == schedules.as_schedule(const)(s) for s in range(30))

# 2. GradualPruning with a TFMOT schedule on a Keras 3 model.
rng = np.random.default_rng(0)
x, y = rng.normal(size=(32, 16)).astype("float32"), rng.integers(0, 4, 32)
base = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, name="fc1"), keras.layers.Dense(4, name="out")])
masked = kl.mask(base)
masked.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
masked.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[kl.callbacks.GradualPruning(
    tfmot.sparsity.keras.ConstantSparsity(0.5, begin_step=0, frequency=1))])
out["gradual_density"] = kl.Mask.from_model(masked).density

# 3. Layerwise magnitude vs TFMOT prune_low_magnitude + ConstantSparsity on a tf_keras copy.
shapes = [(20, 30), (30,), (30, 10), (10,)]
weights = [rng.normal(size=s).astype("float32") for s in shapes]
a = np.abs(weights[0]).ravel()
order = np.argsort(a, kind="stable")
half = a.size // 2
weights[0].flat[order[half - 8:half]] = np.sign(weights[0].flat[order[half - 8:half]]) * a[order[half]]  # 9 tied
inputs = tf_keras.Input((20,))
h = tf_keras.layers.Dense(30, name="fc1")(inputs)
ref = tf_keras.Model(inputs, tf_keras.layers.Dense(10, name="out")(h))
ref.set_weights(weights)
pruned = tfmot.sparsity.keras.prune_low_magnitude(
    ref, pruning_schedule=tfmot.sparsity.keras.ConstantSparsity(0.5, begin_step=0, frequency=1))
pruned.compile(tf_keras.optimizers.SGD(0.0), "mse")
pruned.fit(np.zeros((4, 20), "float32"), np.zeros((4, 10), "float32"), epochs=1, verbose=0,
           callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
tf_masks = {}
for layer in pruned.layers:
    for w in layer.weights:
        if w.name.split("/")[-1].startswith("mask"):
            tf_masks[layer.layer.name + "/kernel"] = w.numpy().astype(bool)
k_in = keras.Input((20,))
k_model = keras.Model(k_in, keras.layers.Dense(10, name="out")(keras.layers.Dense(30, name="fc1")(k_in)))
k_model.set_weights(weights)
k_masked = kl.mask(k_model)
ours = kl.prune(k_masked, kl.LayerwiseMagnitude(0.5))
diff = {p: int(np.count_nonzero(ours[p] != tf_masks[p])) for p in ours}
w = {"fc1/kernel": weights[0], "out/kernel": weights[2]}
ties = {}
for p, m in tf_masks.items():
    a = np.abs(w[p])
    thr = np.sort(a.ravel())[a.size // 2]  # TFMOT keeps |w| >= its k-th largest
    ties[p] = int(np.count_nonzero(a == thr))
out["diff"], out["ties"], out["tf_density"] = diff, ties, {p: float(m.mean()) for p, m in tf_masks.items()}
out["only_ties_differ"] = all(
    np.all(np.abs(w[p])[ours[p] != tf_masks[p]] == np.sort(np.abs(w[p]).ravel())[w[p].size // 2]) for p in ours)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def tfmot_results():
    return run_python(TFMOT_SCRIPT, timeout=180)


def test_tfmot_schedules_are_accepted(tfmot_results):
    assert tfmot_results["poly_max_diff"] < 1e-6  # TFMOT computes in float32
    assert tfmot_results["poly_turns_equal"] and tfmot_results["const_equal"]
    assert tfmot_results["gradual_density"] == pytest.approx(0.5)


def test_layerwise_rule_agrees_with_tfmot(tfmot_results):
    """TFMOT keeps every weight tied at its threshold; we prune exactly ceil(rate x alive), first in C order.

    fc1 has 9 weights tied at the threshold, 8 of them below the cut: TFMOT keeps all 9, we prune
    those 8, so the masks differ in exactly these 8 tied entries; out/kernel (no ties) is identical.
    """
    diff, ties = tfmot_results["diff"], tfmot_results["ties"]
    assert diff["out/kernel"] == 0
    assert tfmot_results["only_ties_differ"]
    assert ties["fc1/kernel"] == 9 and diff["fc1/kernel"] == 8
    print(f"entries differing from TFMOT: {diff} (tied-at-threshold entries: {ties})")
