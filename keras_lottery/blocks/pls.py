"""Partial least squares (PLS2) and Variable Importance in Projection (VIP), in NumPy.

The block criterion ``pls`` (:mod:`keras_lottery.blocks.criteria`) rests on these two functions.

PLS finds, one component at a time, the direction ``w`` of the (standardized, deflated) features
``X`` whose projection ``t = X w`` has the largest covariance with the (standardized, deflated)
responses ``Y``: ``w`` is the dominant left singular vector of ``X^T Y``. Both matrices are then
deflated by ``t`` (regression mode), as in scikit-learn's ``PLSRegression``: its ``x_weights_`` and
``x_scores_`` equal ``weights`` and ``scores`` here (a test compares them).

VIP (Wold et al.) scores each feature ``j`` by how much the components that explain ``Y`` lean on
it: ``VIP_j = sqrt(p * sum_a SS_a * w_ja^2 / sum_a SS_a)`` with ``SS_a = ||q_a||^2 * ||t_a||^2`` the
part of ``Y``'s variance component ``a`` explains and ``p`` the number of features, so the mean of
``VIP^2`` over the features is 1.
"""

from __future__ import annotations

import dataclasses

import numpy as np

_EXHAUSTED = 1e-12  # relative squared norm below which a score vector counts as zero


@dataclasses.dataclass(frozen=True)
class PLS:
    """A fitted PLS2 model; ``k <= components`` columns (fewer when ``X`` or ``Y`` ran out of variance).

    Attributes:
        weights: ``(p, k)`` unit-norm feature weights ``w_a`` (largest-magnitude entry positive).
        scores: ``(n, k)`` latent scores ``t_a = X_a w_a`` of the training rows.
        y_loadings: ``(m, k)`` regression of the deflated ``Y`` on each ``t_a``.
    """

    weights: np.ndarray
    scores: np.ndarray
    y_loadings: np.ndarray

    @property
    def explained(self):
        """``SS_a = ||q_a||^2 * ||t_a||^2`` per component: the variance of standardized ``Y`` it explains."""
        return np.sum(self.y_loadings ** 2, axis=0) * np.sum(self.scores ** 2, axis=0)


def standardize(a):
    """Columns centred and divided by their standard deviation (ddof=1); constant columns become 0."""
    a = np.asarray(a, dtype=np.float64)
    centred = a - a.mean(axis=0, keepdims=True)
    std = centred.std(axis=0, ddof=1, keepdims=True) if a.shape[0] > 1 else np.zeros((1, a.shape[1]))
    return centred / np.where(std > 0, std, 1.0)


def _check(x, y, components):
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(f"PLS needs 2-D features and responses, got shapes {x.shape} and {y.shape}.")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"PLS: {x.shape[0]} feature rows but {y.shape[0]} response rows.")
    if x.shape[0] < 2:
        raise ValueError(f"PLS needs at least 2 examples, got {x.shape[0]}.")
    if not isinstance(components, int) or isinstance(components, bool) or components < 1:
        raise ValueError(f"components must be a positive int, got {components!r}.")


def fit(x, y, components=2):
    """Fits PLS2 of standardized ``y`` (``(n, m)``) on standardized ``x`` (``(n, p)``); returns :class:`PLS`.

    Stops early when the deflated ``x`` or ``y`` has no variance left, so a constant feature block
    yields zero components.
    """
    _check(x, y, components)
    xa, ya = standardize(x), standardize(y)
    scale = max(float(np.sum(xa ** 2)), 1.0)
    weights, scores, loadings = [], [], []
    for _ in range(min(components, xa.shape[1])):
        cross = xa.T @ ya
        if not np.any(cross):
            break
        w = np.linalg.svd(cross, full_matrices=False)[0][:, 0]
        w = w * np.sign(w[np.argmax(np.abs(w))])  # deterministic sign
        t = xa @ w
        tt = float(t @ t)
        if tt <= _EXHAUSTED * scale:
            break
        xa = xa - np.outer(t, xa.T @ t / tt)
        q = ya.T @ t / tt
        ya = ya - np.outer(t, q)
        weights.append(w)
        scores.append(t)
        loadings.append(q)
    n, p, m = xa.shape[0], xa.shape[1], ya.shape[1]
    stack = lambda cols, rows: np.stack(cols, axis=1) if cols else np.zeros((rows, 0))  # noqa: E731
    return PLS(stack(weights, p), stack(scores, n), stack(loadings, m))


def vip(x, y, components=2):
    """VIP score of each column of ``x`` for predicting ``y`` with ``components`` PLS components.

    Returns a ``(p,)`` array; all zeros when no component explains anything (e.g. constant ``x``).
    """
    model = fit(x, y, components)
    ss = model.explained
    p = np.asarray(x).shape[1]
    if model.weights.shape[1] == 0 or ss.sum() <= 0:
        return np.zeros(p)
    return np.sqrt(p * (model.weights ** 2 @ ss) / ss.sum())
