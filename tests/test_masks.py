"""Mask: mapping behaviour, report, save/load, sparsity table, apply_mask errors."""

import json

import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.masks import Mask


def test_report_save_load_roundtrip(tmp_path):
    m = Mask({"a/kernel": np.array([[1, 0], [1, 1]]), "b/kernel": np.zeros(4, bool)})
    assert m["a/kernel"].dtype == bool
    rep = m.report()
    assert rep["layers"]["a/kernel"] == {"total": 4, "alive": 3, "density": 0.75}
    assert rep["global"] == {"total": 8, "alive": 3, "density": 0.375}
    assert m.density == 0.375 and m.sparsity == 0.625
    path = m.save(tmp_path / "mask")
    assert path.endswith("mask.npz")
    assert json.loads((tmp_path / "mask.json").read_text()) == rep
    loaded = Mask.load(path)
    assert loaded == m and list(loaded) == ["a/kernel", "b/kernel"]
    assert Mask.load(tmp_path / "mask") == m
    np.savez(tmp_path / "other.npz", x=np.ones(2))
    with pytest.raises(ValueError, match="not a keras_lottery mask"):
        Mask.load(tmp_path / "other.npz")


def test_bad_keys_and_values():
    with pytest.raises(ValueError, match="weight paths"):
        Mask({"kernel": np.ones(2)})
    with pytest.raises(ValueError, match="boolean"):
        Mask({"a/kernel": np.array([0.5, 1.0])})
    with pytest.raises(KeyError, match="a/kernel"):
        Mask({"a/kernel": np.ones(1)})["b/kernel"]


def test_sparsity_table_and_apply_errors(mlp, capsys):
    masked = kl.mask(mlp)
    kl.prune(masked, kl.GlobalMagnitude(0.5))
    report = kl.sparsity_report(masked)
    out = capsys.readouterr().out
    assert "fc1/kernel" in out and "global" in out and "50.00%" in out
    assert report["global"]["alive"] == report["global"]["total"] // 2  # ceil(0.5 x 1376) pruned
    assert kl.Mask.ones_like(masked).density == 1.0
    with pytest.raises(ValueError, match="does not have.*fc9/kernel"):
        kl.apply_mask(masked, {"fc9/kernel": np.ones((2, 2), bool)})
    with pytest.raises(ValueError, match="shape"):
        kl.Mask({"fc1/kernel": np.ones((3, 3), bool)}).apply_to(masked)
    with pytest.raises(ValueError, match="no MaskedLayer"):
        kl.Mask.from_model(mlp)


def test_a_mask_of_another_instance_is_keyed_like_this_one_by_position():
    from keras_lottery.masks import keyed_like

    theirs = Mask({"net_3/dense_24/kernel": np.ones((2, 3), bool), "dense_7/kernel": np.zeros((3, 1), bool)})
    ours = [("net/dense_36/kernel", (2, 3)), ("dense/kernel", (3, 1))]
    renamed = keyed_like(theirs, ours)
    assert list(renamed) == ["net/dense_36/kernel", "dense/kernel"] and not renamed["dense/kernel"].any()
    assert keyed_like(theirs, [("net/dense_36/kernel", (2, 3)), ("dense/kernel", (3, 2))]) is None  # a shape
    assert keyed_like(theirs, [("net/conv/kernel", (2, 3)), ("dense/kernel", (3, 1))]) is None  # a name
    assert keyed_like(theirs, ours[:1]) is None  # not every weight
