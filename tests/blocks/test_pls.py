"""PLS + VIP against scikit-learn, VIP's defining properties, and the ``pls`` block criterion."""

import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.blocks import pls


def _data(n=60, p=7, m=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p)) * rng.uniform(0.5, 3.0, size=p)
    y = x[:, :2] @ rng.normal(size=(2, m)) + 0.3 * rng.normal(size=(n, m))
    return x, y


def test_fit_matches_scikit_learn_pls_regression():
    from sklearn.cross_decomposition import PLSRegression

    x, y = _data()
    ours = pls.fit(x, y, components=3)
    ref = PLSRegression(n_components=3, scale=True, tol=1e-12, max_iter=5000).fit(x, y)
    for a in range(3):
        sign = np.sign(ours.weights[:, a] @ ref.x_weights_[:, a])
        np.testing.assert_allclose(ours.weights[:, a], sign * ref.x_weights_[:, a], atol=1e-6)
        np.testing.assert_allclose(ours.scores[:, a], sign * ref.x_scores_[:, a], atol=1e-5)


def test_vip_matches_scikit_learn_and_ranks_the_informative_features_first():
    from sklearn.cross_decomposition import PLSRegression

    x, y = _data()
    scores = pls.vip(x, y, components=2)
    ref = PLSRegression(n_components=2, scale=True, tol=1e-12, max_iter=5000).fit(x, y)
    explained = (ref.y_loadings_ ** 2).sum(axis=0) * (ref.x_scores_ ** 2).sum(axis=0)
    expected = np.sqrt(x.shape[1] * (ref.x_weights_ ** 2 @ explained) / explained.sum())
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    assert np.mean(scores ** 2) == pytest.approx(1.0)
    assert set(np.argsort(scores)[-2:]) == {0, 1}  # y is built from features 0 and 1


def test_constant_features_get_no_component_and_zero_vip():
    _, y = _data()
    x = np.ones((60, 4))
    assert pls.fit(x, y).weights.shape == (4, 0)
    np.testing.assert_array_equal(pls.vip(x, y), np.zeros(4))


def test_fit_rejects_bad_shapes():
    with pytest.raises(ValueError, match="2 feature rows but 3 response rows"):
        pls.fit(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="components must be a positive int"):
        pls.fit(np.zeros((4, 3)), np.zeros((4, 2)), components=0)


def test_pls_criterion_scores_a_silent_block_zero_and_lowest(resnet14, images16, zeroed_branch_copy):
    x, y = images16
    silent = "stage2_block2_add"
    copy = zeroed_branch_copy(resnet14, [silent])
    scores = kl.blocks.score(copy, (x, y), criterion="pls")
    assert scores[silent] == 0.0
    assert kl.blocks.lowest(scores, 1) == [silent]
    assert all(v > 0 for name, v in scores.items() if name != silent)
    assert kl.blocks.score(copy, (x, y), criterion="pls") == scores  # deterministic
    # one-hot labels and average pooling: the silent block still scores 0, the others differ from max pooling
    avg = kl.blocks.score(copy, (x, np.eye(10)[y]), criterion="pls", pooling="avg")
    assert list(avg) == list(scores) and avg[silent] == 0.0
    assert all(avg[name] != pytest.approx(scores[name], rel=1e-6) for name in scores if name != silent)


def test_pls_criterion_rejects_unusable_labels(resnet14, images16):
    x, y = images16
    with pytest.raises(ValueError, match="at least 2 classes"):
        kl.blocks.score(resnet14, (x, np.zeros_like(y)), criterion="pls")
    with pytest.raises(ValueError, match="needs class labels"):
        kl.blocks.score(resnet14, (x, y + 0.5), criterion="pls")
    with pytest.raises(ValueError, match="pooling must be"):
        kl.blocks.score(resnet14, (x, y), criterion="pls", pooling="median")
