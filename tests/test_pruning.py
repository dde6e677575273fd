"""Pruning rules against a separate plain-NumPy reading of each rule, plus their errors."""

import math
import warnings
from fractions import Fraction

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.masks import Mask
from keras_lottery.pruning import LayerInfo

SHAPES = {"a/kernel": (12, 10), "b/kernel": (10, 7), "c/kernel": (3, 3, 2, 4), "out/kernel": (7, 3)}


def _weights(seed=0, levels=None):
    rng = np.random.default_rng(seed)
    w = {p: rng.normal(size=s) for p, s in SHAPES.items()}
    if levels:  # many exact ties
        w = {p: np.round(v * levels) / levels for p, v in w.items()}
    return w


def _start_mask(seed=1, density=0.7):
    rng = np.random.default_rng(seed)
    return Mask({p: rng.random(s) < density for p, s in SHAPES.items()})


def _n(rate, alive):
    return math.ceil(Fraction(str(rate)) * alive)


def _reference_prune(entries, n):
    """entries: list of (abs value, tensor number, flat index); the n smallest, ties by position."""
    return sorted(entries)[:n]


def ref_global(weights, mask, rate, exclude=()):
    paths = [p for p in mask if p not in exclude]
    entries = []
    for t, p in enumerate(paths):
        flat_w, flat_m = np.abs(weights[p]).ravel(), mask[p].ravel()
        entries += [(float(flat_w[i]), t, i) for i in range(flat_w.size) if flat_m[i]]
    out = {p: mask[p].ravel().copy() for p in mask}
    for _, t, i in _reference_prune(entries, _n(rate, len(entries))):
        out[paths[t]][i] = False
    return {p: out[p].reshape(mask[p].shape) for p in mask}


def ref_layerwise(weights, mask, rates):
    out = {}
    for p in mask:
        flat_w, flat_m = np.abs(weights[p]).ravel(), mask[p].ravel().copy()
        if p in rates:
            entries = [(float(flat_w[i]), 0, i) for i in range(flat_w.size) if flat_m[i]]
            for _, _, i in _reference_prune(entries, _n(rates[p], len(entries))):
                flat_m[i] = False
        out[p] = flat_m.reshape(mask[p].shape)
    return out


def _same(mask, reference):
    return list(mask) == list(reference) and all(np.array_equal(mask[p], reference[p]) for p in reference)


@pytest.mark.parametrize("levels", [None, 4])
@pytest.mark.parametrize("rate", [0.2, 0.5, 0.9])
def test_global_magnitude_matches_numpy_reading(rate, levels):
    w, m = _weights(levels=levels), _start_mask()
    # keep_units=False: the plain global threshold the numpy reading describes
    assert _same(kl.GlobalMagnitude(rate, keep_units=False)(w, m), ref_global(w, m, rate))
    got = kl.GlobalMagnitude(rate, exclude=["out"], keep_units=False)(w, m)
    assert _same(got, ref_global(w, m, rate, exclude=["out/kernel"]))
    assert np.array_equal(got["out/kernel"], m["out/kernel"])


@pytest.mark.parametrize("levels", [None, 4])
def test_layerwise_and_per_layer_rates_match_numpy_reading(levels):
    w, m = _weights(levels=levels), _start_mask()
    info = {p: LayerInfo(p.split("/")[0], keras.layers.Conv2D if p.startswith("c/") else keras.layers.Dense,
                         "kernel", p.startswith("out")) for p in SHAPES}
    got = kl.LayerwiseMagnitude(0.2)(w, m)
    assert _same(got, ref_layerwise(w, m, {p: 0.2 for p in SHAPES}))
    rule = kl.LayerwiseMagnitude(0.2, layer_rates={keras.layers.Conv2D: 0.15, "b": 0.3}, output_rate=0.1,
                                 exclude=["a"])
    expected = ref_layerwise(w, m, {"b/kernel": 0.3, "c/kernel": 0.15, "out/kernel": 0.1})
    assert _same(rule(w, m, info), expected)
    # glob patterns
    got = kl.LayerwiseMagnitude(0.2, layer_rates={"[ab]": 0.5})(w, m)
    assert _same(got, ref_layerwise(w, m, {"a/kernel": 0.5, "b/kernel": 0.5, "c/kernel": 0.2, "out/kernel": 0.2}))


def test_ties_break_deterministically_by_position():
    w = {"a/kernel": np.ones((2, 3)), "b/kernel": np.ones((4,))}
    m = Mask({p: np.ones(v.shape, bool) for p, v in w.items()})
    got = kl.GlobalMagnitude(0.5, keep_units=False)(w, m)  # 5 of 10 tied weights: the first 5 in C order
    np.testing.assert_array_equal(got["a/kernel"], [[False, False, False], [False, False, True]])
    np.testing.assert_array_equal(got["b/kernel"], [True, True, True, True])
    assert kl.GlobalMagnitude(0.3, keep_units=False)(w, m)["a/kernel"].ravel().tolist() == [False, False, False, True, True, True]


def test_pruned_weights_stay_pruned_and_iterative_rounds(mlp):
    masked = kl.mask(mlp)
    densities = []
    previous = kl.Mask.from_model(masked)
    for _ in range(4):
        # make dead weights the largest ones: the rule must still never revive them
        for layer in kl.masking.masked_layers(masked):
            for path, v in layer.prunable_variables().items():
                v.assign(np.where(previous[path], v.numpy(), 100.0))
        new = kl.prune(masked, kl.GlobalMagnitude(0.2))
        assert all(not np.any(new[p] & ~previous[p]) for p in new)
        densities.append(new.density)
        previous = new
    expected = kl.schedules.iterative_densities(0.2, 4)
    np.testing.assert_allclose(densities, expected, atol=2e-3)
    weights = kl.pruning.weights_of(masked)
    assert all(np.all(weights[p][~previous[p]] == 0) for p in previous)


def test_prune_through_model_uses_output_layer(mlp):
    masked = kl.mask(mlp)
    mask = kl.prune(masked, kl.LayerwiseMagnitude(0.2, output_rate=0.1))
    report = mask.report()["layers"]
    assert report["fc1/kernel"]["alive"] == 512 - math.ceil(0.2 * 512)
    assert report["predictions/kernel"]["alive"] == 96 - math.ceil(0.1 * 96)
    mask = kl.prune(masked, kl.LayerwiseMagnitude(0.5, exclude=[keras.layers.Dense], layer_rates={"fc1": 0.5}))
    assert mask.report()["layers"]["fc1/kernel"]["alive"] == 409  # excluded: unchanged


def test_random_pruning_control():
    m = _start_mask(density=0.3)
    w = _weights()
    base = Mask({p: np.ones(s, bool) for p, s in SHAPES.items()})
    got = kl.RandomPruning(like=m, seed=3)(w, base)
    assert all(np.count_nonzero(got[p]) == np.count_nonzero(m[p]) for p in m)
    assert not all(np.array_equal(got[p], m[p]) for p in m)
    assert kl.RandomPruning(like=m, seed=3)(w, base) == got
    assert kl.RandomPruning(like=m, seed=4)(w, base) != got
    with pytest.raises(ValueError, match="not in the model"):
        kl.RandomPruning(like={"zz/kernel": np.ones(3, bool)})(w, base)


def test_density_targets_and_one_shot(mlp):
    masked = kl.mask(mlp)
    mask = kl.schedules.one_shot(masked, 0.15, exclude=["predictions"])
    assert mask.alive == round(0.15 * mask.total)
    assert mask["predictions/kernel"].all()
    with pytest.raises(ValueError, match="above the current density"):
        kl.schedules.one_shot(masked, 0.5)
    with pytest.raises(ValueError, match="more sparsity than exists"):
        kl.schedules.one_shot(kl.mask(mlp), 0.05, exclude=["fc1"])  # fc1 alone keeps 512 > 69
    mask = kl.schedules.one_shot(kl.mask(mlp), 0.25, rule="layerwise")
    assert all(r["alive"] == round(0.25 * r["total"]) for r in mask.report()["layers"].values())


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, "0.2", True])
def test_invalid_rates(rate):
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        kl.GlobalMagnitude(rate)
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        kl.LayerwiseMagnitude(0.2, layer_rates={"fc1": rate})


def test_selector_errors():
    w, m = _weights(), _start_mask()
    with pytest.raises(ValueError, match="layer name 'nope' matches no prunable weight.*'a', 'b'"):
        kl.GlobalMagnitude(0.2, exclude=["nope"])(w, m)
    with pytest.raises(ValueError, match="pattern 'z\\*' matches no prunable weight"):
        kl.LayerwiseMagnitude(0.2, layer_rates={"z*": 0.1})(w, m)
    with pytest.raises(ValueError, match="needs layers_info"):
        kl.LayerwiseMagnitude(0.2, exclude=[keras.layers.Dense])(w, m)
    with pytest.raises(ValueError, match="exactly one of rate or density"):
        kl.GlobalMagnitude()
    with pytest.raises(ValueError, match="density must be"):
        kl.GlobalMagnitude(density=0.0)
    with pytest.raises(TypeError, match="rule"):
        kl.prune(None, "global")


# -- layer collapse ---------------------------------------------------------------------------------


def _depthwise_model():
    """A conv net whose depthwise kernel has tiny magnitudes: one global threshold would empty it."""
    x = keras.Input((6, 6, 3))
    h = keras.layers.Conv2D(8, 3, padding="same", name="conv")(x)
    h = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(x, keras.layers.Dense(4, name="out")(h))
    dw = model.get_layer("dw")
    dw.kernel.assign(np.asarray(dw.kernel) * 1e-4)
    return model


def test_global_rule_keeps_every_tensor_alive_by_default():
    masked = kl.mask(_depthwise_model())
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        mask = kl.prune(masked, kl.GlobalMagnitude(0.5, keep_units=False))
    assert mask["dw/kernel"].sum() == 1  # the guard's one weight: the largest of the tensor
    dw = np.abs(np.asarray(masked.get_layer("dw").layer.kernel))
    assert dw[mask["dw/kernel"]].item() == dw.max()
    assert mask.alive == mask.total - math.ceil(0.5 * mask.total)  # the count is still exact
    # A fractional guard keeps a share of every tensor.
    mask = kl.prune(kl.mask(_depthwise_model()), kl.GlobalMagnitude(0.5, min_alive=0.25, keep_units=False))
    assert mask["dw/kernel"].sum() == math.ceil(0.25 * mask["dw/kernel"].size)


def test_default_global_rule_keeps_a_weight_in_every_output_unit():
    mask = kl.prune(kl.mask(_depthwise_model()), kl.GlobalMagnitude(0.5))
    assert mask.alive == mask.total - math.ceil(0.5 * mask.total)  # the count stays exact
    dw = mask["dw/kernel"]  # (3, 3, channels, multiplier): every channel x multiplier keeps a weight
    assert dw.reshape(-1, dw.shape[-2] * dw.shape[-1]).any(axis=0).all()
    for path in ("conv/kernel", "out/kernel"):
        assert mask[path].reshape(-1, mask[path].shape[-1]).any(axis=0).all()
    with pytest.raises(ValueError, match=r"one weight per output unit.*keep_units=False"):
        kl.GlobalMagnitude(0.9)({"a/kernel": np.ones((2, 8))}, Mask({"a/kernel": np.ones((2, 8), bool)}))


def test_emptied_tensors_are_named_when_the_guard_is_off():
    masked = kl.mask(_depthwise_model())
    with pytest.warns(UserWarning, match=r"1 tensor\(s\) with no live weight.*\['dw/kernel'\].*min_alive"):
        mask = kl.prune(masked, kl.GlobalMagnitude(0.5, min_alive=0, keep_units=False))
    assert not mask["dw/kernel"].any()
    with pytest.warns(UserWarning, match=r"no live weight.*'a/kernel'"):  # layerwise: ceil(rate x 1) = 1
        kl.LayerwiseMagnitude(0.5)({"a/kernel": np.ones(3)}, Mask({"a/kernel": np.array([True, False, False])}))
    kept = kl.LayerwiseMagnitude(0.5, min_alive=1)({"a/kernel": np.ones(3)},
                                                   Mask({"a/kernel": np.array([True, False, False])}))
    assert kept["a/kernel"].sum() == 1


def test_guard_that_cannot_be_kept_is_an_error():
    w = {"a/kernel": np.arange(1.0, 5.0), "b/kernel": np.arange(1.0, 5.0)}
    with pytest.raises(ValueError, match=r"must prune 7 weights, but the collapse guard \(min_alive=2"):
        kl.GlobalMagnitude(density=0.125, min_alive=2)(w, Mask({p: np.ones(4, bool) for p in w}))
    for bad in (-1, 1.5, "1", True):
        with pytest.raises(ValueError, match="min_alive must be"):
            kl.GlobalMagnitude(0.5, min_alive=bad)
