"""keras_lottery.sparsity.structured: magnitude, block and M:N masks (NumPy)."""

import numpy as np
import pytest

from keras_lottery.sparsity import structured


def test_magnitude_mask_keeps_tfmots_count_and_ties():
    w = np.arange(1, 101, dtype=np.float32).reshape(10, 10) * np.where(np.arange(100) % 2, 1, -1).reshape(10, 10)
    mask, threshold = structured.magnitude_mask(w, 0.73)
    assert mask.sum() == round(100 * (1 - 0.73)) and threshold == 74.0
    tied = np.ones((4, 4), np.float32)
    assert structured.magnitude_mask(tied, 0.5)[0].all()  # ties at the threshold are all kept, as in TFMOT
    assert structured.magnitude_mask(w, 0.9999)[0].sum() == 1  # at least one weight survives


@pytest.mark.parametrize("shape", [(16, 8), (3, 3, 8, 4), (5, 12, 6), (10, 3)])
def test_m_by_n_mask_is_two_of_four_along_the_input_axis(shape):
    rng = np.random.default_rng(0)
    w = rng.normal(size=shape).astype(np.float32)
    mask = structured.m_by_n_mask(w, (2, 4))
    assert mask.shape == w.shape
    assert structured.is_m_by_n(w * mask, (2, 4))
    moved = np.moveaxis(np.abs(w), -2, -1)
    kept = np.moveaxis(mask, -2, -1)
    cin = shape[-2]
    for start in range(0, cin, 4):
        group, keep = moved[..., start:start + 4], kept[..., start:start + 4]
        assert (keep.sum(axis=-1) == min(2, group.shape[-1])).all()
        # the kept ones are the largest of their group
        smallest_kept = np.where(keep, group, np.inf).min(axis=-1)
        largest_dropped = np.where(keep, -np.inf, group).max(axis=-1)
        assert (smallest_kept >= largest_dropped).all()


def test_is_m_by_n_rejects_a_dense_group():
    w = np.zeros((8, 2), np.float32)
    w[0:3, 0] = 1.0  # three non-zeros in the first group of four inputs
    assert not structured.is_m_by_n(w, (2, 4))
    assert structured.is_m_by_n(w, (1, 4))


@pytest.mark.parametrize("pooling", ["AVG", "MAX"])
def test_block_mask_keeps_whole_blocks(pooling):
    rng = np.random.default_rng(1)
    w = rng.normal(size=(8, 6)).astype(np.float32)
    mask, _ = structured.block_mask(w, 0.5, (2, 3), pooling)
    blocks = mask.reshape(4, 2, 2, 3)
    assert (blocks.all(axis=(1, 3)) | ~blocks.any(axis=(1, 3))).all()
    assert blocks.all(axis=(1, 3)).sum() == 4
    pool = np.abs(w).reshape(4, 2, 2, 3)
    scores = pool.mean(axis=(1, 3)) if pooling == "AVG" else pool.max(axis=(1, 3))
    assert scores[blocks.all(axis=(1, 3))].min() >= scores[~blocks.any(axis=(1, 3))].max()


def test_block_mask_on_conv_kernels_and_partial_blocks():
    w = np.random.default_rng(2).normal(size=(3, 3, 5, 4)).astype(np.float32)
    mask, _ = structured.block_mask(w, 0.5, (4, 2))
    matrix = mask.reshape(45, 4)
    padded = np.zeros((48, 4), bool)
    padded[:45] = matrix
    blocks = padded.reshape(12, 4, 2, 2)
    full = blocks[:-1]  # the last row of blocks is partial
    assert (full.all(axis=(1, 3)) | ~full.any(axis=(1, 3))).all()


@pytest.mark.parametrize("bad, message", [((4, 2), "0 < m < n"), ((2,), "tuple of 2"), (("2", 4), "0 < m < n")])
def test_bad_m_by_n_fails_clearly(bad, message):
    with pytest.raises(ValueError, match=message):
        structured.check_m_by_n_arg(bad)
