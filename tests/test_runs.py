import dataclasses
import json
import os
import re

import pytest
from absl import flags

from keras_lottery import data, runs, training


def _hparams(**training_changes):
    return {"dataset": data.DatasetHparams(), "model": training.ModelHparams(),
            "training": dataclasses.replace(training.TrainingHparams(), **training_changes)}


def test_run_name_lists_only_the_changed_fields():
    assert runs.run_name(_hparams()) == "default"
    assert runs.run_name(_hparams(lr=0.01, optimizer="adam")) == "lr=0.01,optimizer=adam"


def test_long_run_names_are_shortened_with_a_digest():
    # two long settings that differ only past the first 120 characters
    first, second = (_hparams(milestones=",".join(f"{i}ep" for i in range(1, 80)) + f",{last}ep") for last in (90, 91))
    names = [runs.run_name(first), runs.run_name(second)]
    assert [len(name) for name in names] == [120, 120] and names[0] != names[1]
    assert names[0][:109] == names[1][:109] and names[0].startswith("milestones=1ep-2ep-")
    assert all(re.fullmatch(r".{109}_[0-9a-f]{10}", name) for name in names)
    assert runs.run_name(first) == names[0]  # stable
    assert runs.run_name(_hparams(milestones="1ep")) == "milestones=1ep"  # short names are kept whole


def test_prepare_writes_hparams_json_and_refuses_other_hparams(tmp_path):
    run = runs.RunDirectory(str(tmp_path), "train", _hparams(lr=0.01), name="same").prepare()
    recorded = json.load(open(run.file("hparams.json")))
    assert recorded["training"]["lr"] == 0.01 and recorded["dataset"]["dataset"] == "fashion_mnist"
    os.utime(run.file("hparams.json"), ns=(10**18, 10**18))  # a recognisable time stamp
    runs.RunDirectory(str(tmp_path), "train", _hparams(lr=0.01), name="same").prepare()  # same: accepted
    assert os.stat(run.file("hparams.json")).st_mtime_ns == 10**18  # and not rewritten
    other = runs.RunDirectory(str(tmp_path), "train", _hparams(lr=0.02), name="same")
    with pytest.raises(runs.RunDirectoryMismatch, match=r"training.lr: directory has 0.01, command has 0.02"):
        other.prepare()
    assert json.load(open(run.file("hparams.json")))["training"]["lr"] == 0.01  # never overwritten
    assert os.stat(run.file("hparams.json")).st_mtime_ns == 10**18


def test_flags_are_generated_from_the_dataclasses_with_help():
    fv = flags.FlagValues()
    runs.define_flags(data.DatasetHparams, training.TrainingHparams, flag_values=fv)
    fv(["prog", "--lr=0.3", "--nesterov", "--dataset=cifar10", "--batch_size=64"])
    hp = runs.from_flags(training.TrainingHparams, flag_values=fv)
    assert hp.lr == 0.3 and hp.nesterov and hp.optimizer == "sgd"
    assert runs.from_flags(data.DatasetHparams, flag_values=fv).batch_size == 64
    assert "learning rate" in fv["lr"].help.lower()
    with pytest.raises(ValueError, match="already defined"):
        runs.define_flags(training.TrainingHparams, flag_values=fv)


@pytest.mark.parametrize("text,steps", [("500it", 500), ("2ep", 200), ("0.5ep", 50), ("0.05", 30), ("0", 0), ("7", 7)])
def test_durations(text, steps):
    assert training.to_steps(text, steps_per_epoch=100, total_steps=600) == steps


@pytest.mark.parametrize("text", ["5 epochs", "1.5it", "-3it", "2.5"])
def test_bad_durations_say_what_is_accepted(text):
    with pytest.raises(ValueError, match="it|ep|fraction"):
        training.to_steps(text, steps_per_epoch=100, total_steps=600)
