"""The layer-lottery experiment end to end on a tiny ResNet and synthetic data."""

import csv
import json
import os
import subprocess
import sys

import keras
import pytest

from keras_lottery import data, metrics, training
from keras_lottery.blocks import lottery

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def tiny():
    arrays = data.synthetic((8, 8, 1), classes=4, train_size=160, seed=0)
    datasets = data.Datasets(arrays, data.DatasetHparams(batch_size=32, validation_size=32), data_seed=0)
    return datasets, training.ModelHparams(model="resnet14", model_seed=0)


def test_algorithm_2_trains_dense_and_tickets_and_writes_the_table(tiny, tmp_path):
    datasets, model_hp = tiny
    hp = training.TrainingHparams(lr=0.05, steps="2ep")
    config = lottery.LayerLotteryHparams(criterion="random,l1", blocks="1,3")
    rows = lottery.run(str(tmp_path), datasets, model_hp, hp, config, log=lambda *_: None)
    per_replicate = [r for r in rows if r["replicate"] != "mean"]
    assert len(per_replicate) == len(rows) == 2 * 2
    for row in per_replicate:
        assert row["winning"] == (row["ticket_accuracy"] + 0.0 >= row["dense_accuracy"])
        assert row["accuracy_diff_pp"] == pytest.approx(100 * (row["ticket_accuracy"] - row["dense_accuracy"]), abs=0.02)
        assert len(row["removed"].split()) == row["p"] and row["speedup"] > 0
    p1, p3 = (next(r for r in per_replicate if r["criterion"] == "random" and r["p"] == p) for p in (1, 3))
    assert 0 < p1["flops_down_pct"] < p3["flops_down_pct"] and 0 < p1["params_down_pct"] < p3["params_down_pct"]
    assert p3["memory_down_pct"] > 0
    for name in ("table.csv", "table.json", "table.md"):
        assert os.path.getsize(tmp_path / name) > 0
    assert len(list(csv.DictReader(open(tmp_path / "table.csv")))) == len(rows)
    assert "| replicate | criterion | p |" in (tmp_path / "table.md").read_text()
    ticket = keras.saving.load_model(tmp_path / "ticket_random_p3_r0.keras")
    dense = keras.saving.load_model(tmp_path / "replicate_0" / "dense" / "model.keras")
    assert len(ticket.layers) < len(dense.layers) and metrics.flops(ticket) < metrics.flops(dense)
    # the same call again reads everything back instead of training
    again = lottery.run(str(tmp_path), datasets, model_hp, hp, config, log=lambda *_: None)
    assert again == rows


def test_algorithm_1_rewinds_to_epoch_i_and_replays_the_schedule(tiny, tmp_path):
    datasets, model_hp = tiny
    hp = training.TrainingHparams(lr=0.05, steps="3ep", milestones="2ep")
    config = lottery.LayerLotteryHparams(criterion="l1", blocks="2", algorithm="trained", rewind_epoch=1)
    rows = lottery.run(str(tmp_path), datasets, model_hp, hp, config, log=lambda *_: None)
    spe = datasets.steps_per_epoch
    ticket_metrics = json.load(open(tmp_path / "replicate_0" / "l1_p2" / "metrics.json"))
    assert ticket_metrics["start_step"] == spe and ticket_metrics["end_step"] == 3 * spe
    ticket = keras.saving.load_model(tmp_path / "ticket_l1_p2_r0.keras")
    assert int(ticket.optimizer.iterations) == 3 * spe  # learning-rate rewinding: the schedule ran from i to T
    assert float(ticket.optimizer.learning_rate) == pytest.approx(0.005)
    assert rows[0]["p"] == 2


def test_replicates_are_averaged_and_counted():
    rows = [{"replicate": r, "criterion": "grasp", "p": 1, "removed": "a", "ticket_accuracy": acc,
             "dense_accuracy": 0.8, "accuracy_diff_pp": 100 * (acc - 0.8), "energy_kwh": 1e-5 * (r + 1),
             "winning": acc >= 0.8} for r, acc in enumerate((0.82, 0.79))]
    (mean,) = lottery._means(rows, xi=0.0)
    assert mean["ticket_accuracy"] == pytest.approx(0.805) and mean["energy_kwh"] == pytest.approx(1.5e-5)
    assert mean["winning"] and mean["winning_replicates"] == "1/2"
    (strict,) = lottery._means([dict(r, dense_accuracy=0.81) for r in rows], xi=0.0)
    assert not strict["winning"]
    (tolerant,) = lottery._means([dict(r, dense_accuracy=0.81) for r in rows], xi=0.01)
    assert tolerant["winning"]


@pytest.mark.parametrize("changes,match", [
    ({"criterion": "grasp,nope"}, "unknown.*nope"),
    ({"blocks": "1,x"}, "comma-separated integers"),
    ({"blocks": "0"}, ">= 1"),
    ({"algorithm": "later"}, "--algorithm must be one of init, trained"),
    ({"rewind_epoch": 2}, "only meaningful with --algorithm=trained"),
])
def test_bad_settings_are_refused(changes, match):
    with pytest.raises(ValueError, match=match):
        lottery.LayerLotteryHparams(**changes).validate()


def _binary(tmp_path, *flags):
    return subprocess.run([sys.executable, "-m", "experiments.layer_lottery", "--dataset=synthetic:8x8x1:4:200",
                           "--validation_size=40", "--batch_size=32", "--emissions=false", f"--run_root={tmp_path}",
                           *flags], cwd=REPO, capture_output=True, text=True)


def test_the_binary_refuses_impossible_requests_before_training(tmp_path):
    too_many = _binary(tmp_path, "--model=resnet14", "--blocks=5")
    assert too_many.returncode != 0 and "only 4 removable residual blocks" in too_many.stderr
    plain = _binary(tmp_path, "--model=vgg16")
    assert plain.returncode != 0 and "has no removable residual blocks" in plain.stderr
    assert not any(tmp_path.iterdir())
