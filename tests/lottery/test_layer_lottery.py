"""The layer-lottery experiment end to end on a tiny ResNet and synthetic data."""

import csv
import json
import os
import subprocess
import sys

import keras
import pytest

from keras_lottery import data, metrics, models, runs, training
from keras_lottery.blocks import find_blocks
from keras_lottery.lottery import LayerLotteryHparams, layer_lottery, plots
from tests.helpers import REPO




@pytest.fixture(scope="module")
def tiny():
    arrays = data.synthetic((8, 8, 1), classes=4, train_size=160, seed=0)
    datasets = data.Datasets(arrays, data.DatasetHparams(batch_size=32, validation_size=32), data_seed=0)
    return datasets, training.ModelHparams(model="resnet14", model_seed=0)


def _run(tmp_path, datasets, model_hp, training_hp, config):
    hparams = {"model": model_hp, "training": training_hp, "lottery": config}
    run_dir = runs.RunDirectory(str(tmp_path), "layer_lottery", hparams, name="tiny").prepare()
    rows = layer_lottery.run(run_dir, datasets, hparams, log=lambda *_: None)
    return run_dir.path, rows


def _metrics(path):
    with open(path) as f:
        return json.load(f)


@pytest.mark.slow  # trains dense and four tickets
def test_algorithm_2_trains_dense_and_tickets_and_writes_the_table(tiny, tmp_path):
    datasets, model_hp = tiny
    hp = training.TrainingHparams(lr=0.05, steps="2ep")
    config = LayerLotteryHparams(criterion="random,l1", blocks="1,3")
    directory, rows = _run(tmp_path, datasets, model_hp, hp, config)
    per_replicate = [r for r in rows if r["replicate"] != "mean"]
    assert len(per_replicate) == len(rows) == 2 * 2
    theta_0 = models.get(model_hp.model, datasets.input_shape, datasets.classes, seed=model_hp.model_seed)
    blocks = {b.name: b for b in find_blocks(theta_0)}
    dense_flops = metrics.flops(theta_0)
    dense_accuracy = _metrics(os.path.join(directory, "replicate_0", "dense", "metrics.json"))["test_accuracy"]
    for row in per_replicate:
        ticket_accuracy = _metrics(os.path.join(directory, "replicate_0", f"{row['criterion']}_p{row['p']}",
                                                "metrics.json"))["test_accuracy"]
        assert row["ticket_accuracy"] == round(ticket_accuracy, 4)
        assert row["dense_accuracy"] == round(dense_accuracy, 4)
        assert row["accuracy_diff_pp"] == round(100 * (ticket_accuracy - dense_accuracy), 2)
        assert row["winning"] == (ticket_accuracy >= dense_accuracy)
        removed = row["removed"].split()
        assert len(removed) == row["p"] and all(blocks[name].removable for name in removed)
        removed_flops = sum(blocks[name].flops for name in removed)
        assert row["flops_down_pct"] == pytest.approx(100 * removed_flops / dense_flops, abs=0.01)
    p1, p3 = (next(r for r in per_replicate if r["criterion"] == "random" and r["p"] == p) for p in (1, 3))
    assert 0 < p1["flops_down_pct"] < p3["flops_down_pct"] and 0 < p1["params_down_pct"] < p3["params_down_pct"]
    assert p3["memory_down_pct"] > 0
    assert _metrics(os.path.join(directory, "table.json")) == json.loads(json.dumps(rows))
    with open(os.path.join(directory, "table.csv")) as f:
        table_csv = list(csv.DictReader(f))
    assert [(r["criterion"], r["p"]) for r in table_csv] == [(r["criterion"], str(r["p"])) for r in rows]
    with open(os.path.join(directory, "table.md")) as f:
        assert f.read() == layer_lottery.markdown_table(rows)
    assert layer_lottery.markdown_table(rows).startswith("| replicate | unit | criterion | p | accuracy_diff_pp |")
    ticket = keras.saving.load_model(os.path.join(directory, "ticket_random_p3_r0.keras"))
    dense = keras.saving.load_model(os.path.join(directory, "replicate_0", "dense", "model.keras"))
    assert len(ticket.layers) < len(dense.layers) and metrics.flops(ticket) < metrics.flops(dense)
    # The same run again reads everything back instead of training.
    again = layer_lottery.run(runs.RunDirectory(str(tmp_path), "layer_lottery", {"model": model_hp, "training": hp,
                                                                                  "lottery": config}, name="tiny"),
                              datasets, {"model": model_hp, "training": hp, "lottery": config}, log=lambda *_: None)
    assert again == rows


@pytest.mark.slow  # trains dense, rewinds and trains tickets
def test_algorithm_1_rewinds_to_epoch_i_and_replays_the_schedule(tiny, tmp_path):
    datasets, model_hp = tiny
    hp = training.TrainingHparams(lr=0.05, steps="3ep", milestones="2ep")
    config = LayerLotteryHparams(criterion="l1", blocks="2", algorithm="trained", rewind_epoch=1)
    directory, rows = _run(tmp_path, datasets, model_hp, hp, config)
    spe = datasets.steps_per_epoch
    ticket_metrics = _metrics(os.path.join(directory, "replicate_0", "l1_p2", "metrics.json"))
    assert ticket_metrics["start_step"] == spe and ticket_metrics["end_step"] == 3 * spe
    ticket = keras.saving.load_model(os.path.join(directory, "ticket_l1_p2_r0.keras"))
    assert int(ticket.optimizer.iterations) == 3 * spe  # learning-rate rewinding: the schedule ran from i to T
    assert float(ticket.optimizer.learning_rate) == pytest.approx(0.005)
    assert rows[0]["p"] == 2


@pytest.mark.slow  # trains dense, a layer ticket and a filter ticket (about a minute on 2 cores)
def test_filter_tickets_are_matched_trained_and_tabled(tiny, tmp_path):
    datasets, model_hp = tiny
    hp = training.TrainingHparams(lr=0.05, steps="1ep")
    config = LayerLotteryHparams(criterion="snip", blocks="1", unit="layers,filters", match="flops")
    directory, rows = _run(tmp_path, datasets, model_hp, hp, config)
    assert [(r["unit"], r["p"]) for r in rows] == [("layers", 1), ("filters", 1)]
    layers_row, filters_row = rows
    # matched on FLOPs: the filter ticket saves about what the one-block layer ticket saves
    assert filters_row["flops_down_pct"] == pytest.approx(layers_row["flops_down_pct"], abs=3)
    assert filters_row["params_down_pct"] > 0 and ":" in filters_row["removed"]
    ticket = keras.models.load_model(runs.ticket_file(directory, 0, "snip", 1, unit="filters"))
    assert metrics.flops(ticket) == filters_row["flops"]
    assert runs.parse_ticket_file(runs.ticket_file(directory, 0, "snip", 1, "filters"), with_unit=True) == (
        "snip", 1, 0, "filters")
    assert os.path.isfile(runs.scores_file(directory, 0, "snip", unit="filters"))
    with open(os.path.join(directory, "table.csv")) as f:
        assert [r["unit"] for r in csv.DictReader(f)] == ["layers", "filters"]
    with open(os.path.join(directory, "units.csv")) as f:
        paired = list(csv.DictReader(f))
    assert [(r["p"], r["pairs"]) for r in paired] == [("1", "1"), ("all", "1")]
    assert float(paired[0]["layers_minus_filters_pp"]) == pytest.approx(
        layers_row["accuracy_diff_pp"] - filters_row["accuracy_diff_pp"], abs=0.01)


def test_the_units_plot_draws_means_and_spread(tmp_path):
    rows = [{"replicate": r, "unit": unit, "criterion": "snip", "p": p, "accuracy_diff_pp": d + r}
            for unit, d in (("layers", 0.5), ("filters", -1.0)) for p in (1, 2) for r in range(3)]
    rows.append({"replicate": "mean", "unit": "layers", "criterion": "snip", "p": 1, "accuracy_diff_pp": 99.0})
    path = plots.accuracy_diff_vs_p(rows, str(tmp_path / "units.png"), title="t")
    assert os.path.getsize(path) > 5000


def test_replicates_are_averaged_and_counted():
    rows = [{"replicate": r, "criterion": "grasp", "p": 1, "removed": "a", "ticket_accuracy": acc,
             "dense_accuracy": 0.8, "accuracy_diff_pp": 100 * (acc - 0.8), "energy_kwh": 1e-5 * (r + 1),
             "winning": acc >= 0.8} for r, acc in enumerate((0.82, 0.79))]
    (mean,) = layer_lottery._means(rows, xi=0.0)
    assert mean["ticket_accuracy"] == pytest.approx(0.805) and mean["energy_kwh"] == pytest.approx(1.5e-5)
    assert mean["winning"] and mean["winning_replicates"] == "1/2"
    assert mean["accuracy_diff_sd_pp"] == pytest.approx(round(2 ** 0.5 * 1.5, 2))  # sample SD of +2 and -1 pp
    (strict,) = layer_lottery._means([dict(r, dense_accuracy=0.81) for r in rows], xi=0.0)
    assert not strict["winning"]
    (tolerant,) = layer_lottery._means([dict(r, dense_accuracy=0.81) for r in rows], xi=0.01)
    assert tolerant["winning"]


@pytest.mark.parametrize("changes,match", [
    ({"criterion": "grasp,nope"}, "unknown.*nope"),
    ({"blocks": "1,x"}, "comma-separated integers"),
    ({"blocks": "0"}, ">= 1"),
    ({"algorithm": "later"}, "--algorithm must be one of init, trained"),
    ({"rewind_epoch": 2}, "only meaningful with --algorithm=trained"),
    ({"unit": "layers,blocks"}, "--unit takes layers, filters"),
    ({"unit": "filters", "criterion": "hrank"}, "--unit=filters scores channels with .*; --criterion has hrank"),
    ({"unit": "filters", "algorithm": "trained", "rewind_epoch": 1}, "needs --algorithm=init"),
    ({"unit": "filters", "match": "layers"}, "--match must be one of filters, params, flops"),
    ({"unit": "filters", "min_channel_fraction": 1.0}, r"--min_channel_fraction must be in \[0, 1\)"),
    ({"unit": "filters", "channel_multiple": 0}, "--channel_multiple must be >= 1, got 0"),
])
def test_bad_settings_are_refused(changes, match):
    with pytest.raises(ValueError, match=match):
        LayerLotteryHparams(**changes).validate()


def _binary(tmp_path, *flags):
    return subprocess.run([sys.executable, "-m", "experiments.layer_lottery", "--dataset=synthetic:8x8x1:4:200",
                           "--validation_size=40", "--batch_size=32", "--emissions=false", f"--run_root={tmp_path}",
                           *flags], cwd=REPO, capture_output=True, text=True)


@pytest.mark.slow  # three runs of the binary; the fast bad-input matrix covers the rewind epoch
def test_the_binary_refuses_impossible_requests_before_training(tmp_path):
    too_many = _binary(tmp_path, "--model=resnet14", "--blocks=5")
    assert too_many.returncode != 0 and "only 4 removable residual blocks" in too_many.stderr
    plain = _binary(tmp_path, "--model=vgg16")
    assert plain.returncode != 0 and "has no removable residual blocks" in plain.stderr
    late = _binary(tmp_path, "--model=resnet14", "--algorithm=trained", "--rewind_epoch=2", "--steps=2ep")
    assert late.returncode != 0 and "--rewind_epoch=2 is not before the end of training" in late.stderr
    assert not any(tmp_path.iterdir())


def test_the_check_of_the_rewind_epoch(tiny):
    datasets, model_hp = tiny
    hparams = {"model": model_hp, "training": training.TrainingHparams(steps="2ep"),
               "lottery": LayerLotteryHparams(criterion="l1", blocks="4", algorithm="trained", rewind_epoch=1)}
    assert len(layer_lottery.check(hparams, datasets).removable) == 4
    with pytest.raises(ValueError, match="--rewind_epoch=2 is not before the end of training"):
        layer_lottery.check(dict(hparams, lottery=LayerLotteryHparams(algorithm="trained", rewind_epoch=2)), datasets)
