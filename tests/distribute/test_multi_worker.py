"""Real ``MultiWorkerMirroredStrategy`` runs: 2 worker processes of the binaries on localhost ports."""

import pytest

import csv
import glob
import json
import os

import numpy as np

from tests.helpers import tiny_datasets, tiny_flags, tiny_lenet

TINY = tiny_flags()  # the tiny task: 192 training and 64 test examples
IMP_FLAGS = TINY + ["--optimizer=adam", "--lr=0.002", "--steps=12it", "--eval_every=2it", "--levels=1", "--rate=0.5",
                    "--rule=layerwise", "--layer_rates=predictions=0.25", "--rewind=4it", "--controls=reinit",
                    "--plot=false", "--strategy=multi_worker", "--run_name=mw"]
TIMEOUT = 480


def _steps(path):
    with open(os.path.join(path, "history.csv")) as f:
        return [int(row["step"]) for row in csv.DictReader(f)]


def _reference_masks(directory):
    """The same IMP run on one device, in this process."""
    from keras_lottery import lottery, training

    pruning = lottery.PruningHparams(levels=1, rate=0.5, rule="layerwise", layer_rates="predictions=0.25",
                                     rewind="4it", controls="")
    lottery.imp.run(directory, tiny_lenet, tiny_datasets(),
                    training.TrainingHparams(optimizer="adam", lr=2e-3, steps="12it"), pruning, eval_every=2, log=None)
    return lottery.imp.level_dir(directory, 1)


@pytest.mark.slow  # three worker processes and a restart: about 2 minutes
def test_imp_level_on_two_workers_survives_a_killed_chief(cluster, tmp_path):
    from keras_lottery.masks import Mask

    root = str(tmp_path / "runs")
    run = os.path.join(root, "imp", "mw")
    # First attempt: the chief is SIGKILLed right after its 3rd checkpoint (step 6 of level 0, past the
    # rewind point k = 4); the other worker is then stuck in a collective and is killed too.
    chief, other = cluster.start("experiments.imp", IMP_FLAGS + [f"--run_root={root}"],
                                 extra_env={0: {"KL_TEST_DIE_AFTER_CHECKPOINT": 3}})
    reference = _reference_masks(str(tmp_path / "reference"))  # one device, while the workers run
    assert cluster.wait(TIMEOUT, [chief]) == [-9], cluster.tails()
    cluster.stop()
    state = json.load(open(os.path.join(run, "level_0", "state.json")))
    assert state["step"] == 6 and [row["step"] for row in state["history"]] == [2, 4, 6]
    assert not os.path.exists(os.path.join(run, "level_0", "metrics.json"))
    assert os.path.exists(os.path.join(run, "rewind.npz"))
    rewind_written = os.path.getmtime(os.path.join(run, "rewind.npz"))

    # The same command again on both workers: resumes at step 6 and finishes the level.
    cluster.start("experiments.imp", IMP_FLAGS + [f"--run_root={root}"])
    assert cluster.wait(TIMEOUT) == [0, 0], cluster.tails()
    logs = [open(name).read() for name in cluster.logs]
    assert "task worker 0 (chief)" in logs[0] and "task worker 1, writing to " + cluster.tmp_dirs()[1] in logs[1]

    # Nothing lost or duplicated: every checkpoint interval once, the rewind point kept, each run once.
    assert _steps(os.path.join(run, "level_0")) == [2, 4, 6, 8, 10, 12]
    assert _steps(os.path.join(run, "level_1")) == _steps(os.path.join(run, "level_1", "reinit")) == [6, 8, 10, 12]
    assert os.path.getmtime(os.path.join(run, "rewind.npz")) == rewind_written
    with open(os.path.join(run, "results.csv")) as f:
        rows = [(row["level"], row["kind"]) for row in csv.DictReader(f)]
    assert rows == [("0", "ticket"), ("1", "ticket"), ("1", "reinit")]
    leftovers = [p for p in glob.glob(os.path.join(run, "**", "*"), recursive=True)
                 if p.endswith(".tmp") or os.path.basename(p).startswith("tmp-")]
    assert leftovers == []
    assert all(len(glob.glob(os.path.join(d, "ckpt-*.keras"))) <= 1 for d in glob.glob(os.path.join(run, "level_*")))
    assert os.listdir(cluster.tmp_dirs()[1]) == []  # the non-chief's copy of the run is gone

    # The level's mask is the one-device mask, up to ties.
    two, one = (Mask.load(os.path.join(d, "mask.npz")) for d in (os.path.join(run, "level_1"), reference))
    assert two.density == one.density
    differ = sum(int(np.count_nonzero(two[path] != one[path])) for path in one)
    assert differ <= 0.002 * one.total, f"{differ} of {one.total} mask entries differ from the one-device run"
    # ... and so is its accuracy, up to those ties (64 test examples)
    metrics = json.load(open(os.path.join(run, "level_1", "metrics.json")))
    expected = json.load(open(os.path.join(reference, "metrics.json")))
    assert metrics["end_step"] == expected["end_step"] == 12
    assert abs(metrics["test_accuracy"] - expected["test_accuracy"]) <= 2 / 64


@pytest.mark.slow  # two worker processes of the binary: about 1 minute
def test_layer_lottery_on_two_workers(cluster, tmp_path):
    root = str(tmp_path / "runs")
    flags = TINY + ["--model=resnet8", "--steps=6it", "--criterion=l1", "--blocks=1", "--strategy=multi_worker",
                    "--run_name=mw", f"--run_root={root}"]
    cluster.start("experiments.layer_lottery", flags)
    assert cluster.wait(TIMEOUT) == [0, 0], cluster.tails()
    run = os.path.join(root, "layer_lottery", "mw")
    rows = json.load(open(os.path.join(run, "table.json")))
    assert [(row["criterion"], row["p"]) for row in rows] == [("l1", 1)]
    assert rows[0]["flops_down_pct"] > 0 and len(rows[0]["removed"].split()) == 1
    for part in ("dense", "l1_p1"):
        metrics = json.load(open(os.path.join(run, "replicate_0", part, "metrics.json")))
        assert metrics["end_step"] == 6 and _steps(os.path.join(run, "replicate_0", part)) == [6]
    assert os.path.exists(os.path.join(run, "ticket_l1_p1_r0.keras"))
    assert os.listdir(cluster.tmp_dirs()[1]) == []
    # the non-chief computed the same table in its own copy
    printed = [_table_row(open(name).read(), "| 0 | layers | l1 | 1 |") for name in cluster.logs]
    for column in ("removed", "ticket_accuracy", "dense_accuracy", "flops_down_pct"):
        assert printed[0][column] == printed[1][column], (column, printed)
    assert printed[0]["removed"] == rows[0]["removed"]


def _table_row(log, start):
    """The cells of the Markdown table row beginning with ``start`` in ``log``, by column name."""
    lines = log.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith(start))
    header = next(line for line in reversed(lines[:index]) if line.startswith("| replicate |"))

    def cells(line):
        return [cell.strip() for cell in line.strip().strip("|").split("|")]

    return dict(zip(cells(header), cells(lines[index])))
