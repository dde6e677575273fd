"""Which models a robustness run reads from run directories, and the tables it writes from their results."""

import json
import os

import pytest

from keras_lottery.robustness import evaluate, hparams, inventory

DATASET = {"dataset": "fashion_mnist", "batch_size": 128}


def _touch(path, text=""):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def _layer_lottery(root, replicates=2, complete=True):
    _touch(os.path.join(root, "hparams.json"), json.dumps({"dataset": DATASET, "lottery": {"replicates": replicates}}))
    for r in range(replicates):
        _touch(os.path.join(root, f"replicate_{r}", "dense", "model.keras"))
        for p in (1, 2):
            _touch(os.path.join(root, f"ticket_grasp_p{p}_r{r}.keras"))
    if complete:
        _touch(os.path.join(root, "complete.json"), "{}")
    return root


def test_layer_lottery_run(tmp_path):
    found = inventory.find([_layer_lottery(str(tmp_path / "ll=1,b=2"))])
    assert found.kind == "layer_lottery" and found.dataset == DATASET
    assert [(e.id, e.group, e.replicate, e.reference) for e in found.entries] == [
        ("r0_dense", "dense", 0, True), ("r0_grasp_p1", "grasp_p1", 0, False), ("r0_grasp_p2", "grasp_p2", 0, False),
        ("r1_dense", "dense", 1, True), ("r1_grasp_p1", "grasp_p1", 1, False), ("r1_grasp_p2", "grasp_p2", 1, False)]
    assert found.reference(1).path.endswith(os.path.join("replicate_1", "dense", "model.keras"))


def test_paths_with_commas_and_bad_runs(tmp_path):
    a, b = _layer_lottery(str(tmp_path / "x=1,y=2")), str(tmp_path / "m.keras")
    _touch(b)
    assert hparams.split_paths(f"{a},{b}") == [a, b]
    assert hparams.split_paths(f"{tmp_path}/nowhere,{b}") == [f"{tmp_path}/nowhere", b]
    unfinished = _layer_lottery(str(tmp_path / "u"), complete=False)
    with pytest.raises(ValueError, match="has not finished"):
        inventory.find([unfinished])
    with pytest.raises(ValueError, match="of one kind"):
        inventory.find([a, b])
    with pytest.raises(ValueError, match="neither a run directory nor a .keras file"):
        inventory.find([str(tmp_path / "nowhere")])
    os.remove(os.path.join(a, "replicate_1", "dense", "model.keras"))
    with pytest.raises(ValueError, match="model.keras is missing"):
        inventory.find([a])


def _results(clean, fog, pgd):
    return {"clean": clean, "corruptions": {"fog": fog, "contrast": [clean - 0.1] * 5},
            "attacks": {"pgd10": {"0": clean, "0.1": pgd}}, "masking": []}


def test_rows_and_summary():
    entries = [inventory.Entry(f"r{r}_{g}", g, r, "x", g == "dense") for r in (0, 1) for g in ("dense", "t")]
    found = inventory.Inventory("layer_lottery", entries)
    results = {"r0_dense": _results(0.9, [0.8] * 5, 0.3), "r0_t": _results(0.92, [0.9] * 5, 0.4),
               "r1_dense": _results(0.8, [0.6] * 5, 0.2), "r1_t": _results(0.8, [0.6] * 5, 0.2)}
    rows = evaluate.table_rows(found, results)
    ticket0 = rows[1]
    assert ticket0["d_clean"] == pytest.approx(2.0) and ticket0["d_pgd10@0.1"] == pytest.approx(10.0)
    assert ticket0["mean_corruption"] == pytest.approx((0.9 + 0.82) / 2)
    # CE: fog 0.5/1.0 = 50%, contrast 0.9/1.0 = 90% -> mCE 70
    assert ticket0["mce"] == pytest.approx(70.0)
    summary = evaluate.summary_rows(rows)
    assert [s["group"] for s in summary] == ["dense", "t"] and summary[1]["n"] == 2
    assert summary[1]["d_clean"] == pytest.approx(1.0) and summary[1]["d_clean_std"] == pytest.approx(1.41421, 1e-4)
    text = evaluate.markdown_summary(summary)
    assert "| t | 2 |" in text and "+1.00 ± 1.41" in text and "Δ pgd10@0.1" in text and "pgd10@0 " not in text
    # paired differences: 95% Student-t interval (t(0.975, 1 dof) = 12.706) and replicates above dense
    assert summary[1]["d_clean_ci95"] == pytest.approx(12.706, 1e-4) and summary[1]["d_clean_above"] == 1
    assert summary[0]["reference"] and not summary[1]["reference"]
    paired = text[text.index("Paired differences"):]
    assert "| t | 2 | +1.00 [-11.71, +13.71] 1/2 |" in paired and "| dense |" not in paired.split("Difference")[0]
