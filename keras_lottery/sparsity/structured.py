"""Mask arithmetic of ``keras_lottery.sparsity``, pure NumPy: magnitude, block and M:N masks, and the
M:N checker.

* :func:`magnitude_mask` is TFMOT's rule: keep ``k = max(round(size x (1 - sparsity)), 1)`` weights,
  namely every entry whose magnitude is at least the k-th largest (ties at the threshold are all
  kept). ``size`` and ``1 - sparsity`` are multiplied in float32, as TFMOT does.
* :func:`block_mask`: the same rule on blocks. The weight, seen as a matrix (a rank-2 kernel as it
  is; a convolution kernel as ``[prod(shape[:-1]), filters]``, rows = inputs), is cut into
  ``block_size`` blocks (partial blocks at the edges), each scored by the mean (``"AVG"``) or the max
  (``"MAX"``) magnitude of its entries, and whole blocks are kept or dropped. TFMOT does this for
  rank-2 weights only.
* :func:`m_by_n_mask`: in every group of ``n`` consecutive weights along the input dimension, the
  ``m`` smallest magnitudes are dropped (2:4: two zeros in every four). The input dimension is the
  second-to-last axis of a Keras kernel (``Dense [in, out]``, ``Conv2D [h, w, in, out]``), the last
  axis of TFLite's layout, as TFMOT and NVIDIA's sparse tensor cores define it. Groups run over the
  input channels only, each group at a fixed output channel and kernel position; an input dimension
  that is not a multiple of ``n`` ends with a shorter group, which keeps ``n - m`` entries at most.
"""

import numpy as np

__all__ = ["block_mask", "is_m_by_n", "m_by_n_mask", "magnitude_mask", "check_block_size", "check_m_by_n_arg"]


def check_m_by_n_arg(m_by_n):
    """``(m, n)`` as a tuple of two ints with ``0 < m < n``, or a clear ``ValueError``."""
    try:
        m, n = tuple(m_by_n)
    except (TypeError, ValueError):
        raise ValueError(f"sparsity_m_by_n must be a tuple of 2 integers (m zeros in every n); got {m_by_n!r}.") from None
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (m, n)) or not 0 < m < n:
        raise ValueError(f"sparsity_m_by_n must be 2 integers with 0 < m < n; got {m_by_n!r}.")
    return int(m), int(n)


def check_block_size(block_size):
    """``block_size`` as a tuple of two positive ints, or a clear ``ValueError``."""
    try:
        rows, cols = tuple(block_size)
    except (TypeError, ValueError):
        raise ValueError(f"block_size must be 2 positive integers (rows, columns); got {block_size!r}.") from None
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in (rows, cols)):
        raise ValueError(f"block_size must be 2 positive integers (rows, columns); got {block_size!r}.")
    return int(rows), int(cols)


def kept_count(size, sparsity):
    """TFMOT's number of kept entries: ``max(round(float32(size) x (1 - float32(sparsity))), 1)``."""
    f32 = np.float32
    return max(int(np.round(f32(size) * (f32(1.0) - f32(sparsity)))), 1)


def magnitude_mask(weights, sparsity):
    """``(mask, threshold)``: keep the entries whose magnitude is at least the k-th largest."""
    scores = np.abs(np.asarray(weights))
    k = kept_count(scores.size, sparsity)
    threshold = np.partition(scores.reshape(-1), scores.size - k)[scores.size - k]
    return scores >= threshold, threshold


def _as_matrix(weights):
    weights = np.asarray(weights)
    if weights.ndim < 2:
        raise ValueError(f"Block and M:N sparsity need a weight of rank >= 2; got shape {weights.shape}.")
    return weights.reshape(-1, weights.shape[-1])


def block_mask(weights, sparsity, block_size, pooling="AVG"):
    """``(mask, threshold)`` of block sparsity (module doc); ``block_size=(1, 1)`` is :func:`magnitude_mask`."""
    rows, cols = check_block_size(block_size)
    if pooling not in ("AVG", "MAX"):
        raise ValueError(f"block_pooling_type must be 'AVG' or 'MAX'; got {pooling!r}.")
    if (rows, cols) == (1, 1):
        return magnitude_mask(weights, sparsity)
    weights = np.asarray(weights)
    matrix = np.abs(_as_matrix(weights))
    height, width = matrix.shape
    grid = (-(-height // rows), -(-width // cols))
    padded = np.zeros((grid[0] * rows, grid[1] * cols), dtype=matrix.dtype)
    padded[:height, :width] = matrix
    blocks = padded.reshape(grid[0], rows, grid[1], cols)
    if pooling == "MAX":
        pooled = blocks.max(axis=(1, 3))
    else:  # the mean over the entries inside the weight (padding excluded), as TensorFlow's SAME pooling
        valid = np.zeros_like(padded)
        valid[:height, :width] = 1
        pooled = blocks.sum(axis=(1, 3)) / valid.reshape(blocks.shape).sum(axis=(1, 3))
    kept, threshold = magnitude_mask(pooled, sparsity)
    full = np.repeat(np.repeat(kept, rows, axis=0), cols, axis=1)[:height, :width]
    return full.reshape(weights.shape), threshold


def _groups(weights, n):
    """The weight as ``[groups, n]`` along the input axis (zero padded), and how to undo it."""
    weights = np.asarray(weights)
    moved = np.moveaxis(weights, -2, -1)  # [..., out, in]
    rows = moved.reshape(-1, moved.shape[-1])
    width = rows.shape[1]
    padded = np.zeros((rows.shape[0], -(-width // n) * n), dtype=rows.dtype)
    padded[:, :width] = rows
    return padded.reshape(-1, n), (moved.shape, width)


def _ungroup(groups, layout):
    moved_shape, width = layout
    rows = groups.reshape(-1, groups.size // int(np.prod(moved_shape[:-1])))[:, :width]
    return np.moveaxis(rows.reshape(moved_shape), -1, -2)


def m_by_n_mask(weights, m_by_n=(2, 4)):
    """The M:N mask of ``weights`` (module doc): ``m`` zeros in every ``n`` along the input axis.

    Within a group, the smallest magnitudes go first; between equal magnitudes the later position goes.
    """
    m, n = check_m_by_n_arg(m_by_n)
    scores, layout = _groups(np.abs(np.asarray(weights, dtype=np.float64)), n)
    order = np.argsort(-scores, axis=1, kind="stable")  # largest first; earlier position first on ties
    keep = np.zeros(scores.shape, dtype=bool)
    np.put_along_axis(keep, order[:, :n - m], True, axis=1)
    return _ungroup(keep, layout)


def is_m_by_n(weights, m_by_n=(2, 4)):
    """Whether every group of ``n`` consecutive weights along the input axis has at least ``m`` zeros
    (a last, shorter group: at most ``n - m`` non-zeros)."""
    m, n = check_m_by_n_arg(m_by_n)
    groups, _ = _groups(np.asarray(weights) != 0, n)
    return bool((groups.sum(axis=1) <= n - m).all())
