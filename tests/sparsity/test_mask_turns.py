"""PruneLowMagnitude.prune_to: a turn that cannot change the masks is recognised without recomputing them,
and gives the same masks and thresholds as the full rule."""

import keras
import numpy as np

from keras_lottery import sparsity
from keras_lottery.sparsity import ConstantSparsity, PolynomialDecay, structured


def _numpy(variable):
    return keras.ops.convert_to_numpy(variable.value)


def _trained(mlp, schedule, steps=12):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8 * steps, 16)).astype("float32"), rng.integers(0, 4, 8 * steps)
    pruned = sparsity.prune_low_magnitude(mlp, pruning_schedule=schedule)
    pruned.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    pruned.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[sparsity.UpdatePruningStep()])
    return sparsity.wrapper.pruning_wrappers(pruned)


def _rule(wrapper, sparsity_level):
    return {path: structured.magnitude_mask(_numpy(variable), sparsity_level)
            for path, variable, _ in wrapper.masked_weights()}


def _assert_installed(wrapper, expected):
    thresholds = wrapper.thresholds()
    for path, variable, mask_var in wrapper.masked_weights():
        mask, threshold = expected[path]
        np.testing.assert_array_equal(_numpy(mask_var) != 0, mask)
        assert _numpy(thresholds[path]) == np.float32(threshold)
        assert not np.any(_numpy(variable)[~mask])


def test_a_constant_turn_keeps_the_masks_and_sets_the_rules_threshold(mlp):
    for wrapper in _trained(mlp, ConstantSparsity(0.75, 0, frequency=4)):
        expected = _rule(wrapper, 0.75)
        assert wrapper.prune_to(0.75) is False  # nothing changed: the optimizer state is left alone
        _assert_installed(wrapper, expected)
        assert abs(wrapper.last_density - 0.25) < 0.01


def test_a_new_sparsity_or_a_weight_set_from_outside_takes_the_full_rule(mlp):
    wrappers = _trained(mlp, PolynomialDecay(0.0, 0.5, 0, 8, frequency=4))
    first = wrappers[0]
    expected = _rule(first, 0.8)
    assert first.prune_to(0.8) is True  # more sparsity: the mask changes
    _assert_installed(first, expected)

    second = wrappers[1]
    path, variable, mask_var = second.masked_weights()[0]
    weights, dead = _numpy(variable), _numpy(mask_var) == 0
    weights[np.unravel_index(np.flatnonzero(dead)[0], dead.shape)] = 100.0  # a dead weight revived from outside
    variable.assign(weights)
    expected = _rule(second, 0.5)
    assert second.prune_to(0.5) is True
    _assert_installed(second, expected)
    assert _numpy(mask_var).reshape(-1)[np.flatnonzero(dead)[0]] == 1  # the largest weight is kept


def test_a_kept_weight_at_exactly_zero_takes_the_full_rule(mlp):
    wrapper = _trained(mlp, ConstantSparsity(0.5, 0, frequency=4))[0]
    path, variable, mask_var = wrapper.masked_weights()[0]
    weights, alive = _numpy(variable), _numpy(mask_var) != 0
    weights[np.unravel_index(np.flatnonzero(alive)[0], alive.shape)] = 0.0
    variable.assign(weights)
    expected = _rule(wrapper, 0.5)
    wrapper.prune_to(0.5)
    _assert_installed(wrapper, expected)


def test_one_call_prunes_several_layers_as_each_would_alone(mlp):
    """prune_layers (what UpdatePruningStep calls at a turn) with layers of every kind: unchanged, changed,
    revived from outside and 2:4, each at its own sparsity; the same result as a prune_to per layer."""
    wrappers = _trained(mlp, ConstantSparsity(0.5, 0, frequency=4))
    twins = _trained(keras.models.clone_model(mlp), ConstantSparsity(0.5, 0, frequency=4))
    for a, b in zip(wrappers, twins):  # the same weights and masks in both copies
        for (_, va, ma), (_, vb, mb) in zip(a.masked_weights(), b.masked_weights()):
            vb.assign(_numpy(va))
            mb.assign(_numpy(ma))
    paired = list(zip(wrappers, twins))
    for layer in paired[2]:  # the output layer: a dead weight revived from outside
        variable, mask_var = layer.masked_weights()[0][1:]
        weights = _numpy(variable)
        weights.reshape(-1)[np.flatnonzero(_numpy(mask_var) == 0)[0]] = 100.0
        variable.assign(weights)
    m_by_n = sparsity.prune_low_magnitude(keras.layers.Dense(8), sparsity_m_by_n=(2, 4))
    m_by_n.build((None, 8))
    m_by_n_twin = sparsity.prune_low_magnitude(keras.layers.Dense(8), sparsity_m_by_n=(2, 4))
    m_by_n_twin.build((None, 8))
    m_by_n_twin.masked_weights()[0][1].assign(_numpy(m_by_n.masked_weights()[0][1]))
    paired.append((m_by_n, m_by_n_twin))
    levels = [0.5, 0.8] + [0.5] * (len(paired) - 2)
    changed = sparsity.wrapper.prune_layers([(a, level) for (a, _), level in zip(paired, levels)])
    alone = [b.prune_to(level) for (_, b), level in zip(paired, levels)]
    assert changed == alone
    assert changed == [False, True, True, True]  # the 2:4 layer's first mask
    for a, b in paired:
        assert a.last_density == b.last_density
        for (_, va, ma), (_, vb, mb) in zip(a.masked_weights(), b.masked_weights()):
            np.testing.assert_array_equal(_numpy(ma), _numpy(mb))
            np.testing.assert_array_equal(_numpy(va), _numpy(vb))
        for ta, tb in zip(a.thresholds().values(), b.thresholds().values()):
            assert _numpy(ta) == _numpy(tb)
    assert m_by_n.last_density == 0.5
