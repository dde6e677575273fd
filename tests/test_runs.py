import dataclasses
import fcntl
import json
import os
import re
import socket

import pytest
from absl import flags

from keras_lottery import cli, data, runs, training


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


def test_a_field_added_after_the_run_was_made_matches_at_its_default(tmp_path):
    run = runs.RunDirectory(str(tmp_path), "train", _hparams(lr=0.01), name="old").prepare()
    recorded = json.load(open(run.file("hparams.json")))
    del recorded["training"]["gamma"]  # as written by a library without that field
    with open(run.file("hparams.json"), "w") as f:
        json.dump(recorded, f)
    runs.RunDirectory(str(tmp_path), "train", _hparams(lr=0.01), name="old").prepare()  # at its default: resumes
    with pytest.raises(runs.RunDirectoryMismatch, match=r"training.gamma: directory has 0.1, command has 0.5"):
        runs.RunDirectory(str(tmp_path), "train", _hparams(lr=0.01, gamma=0.5), name="old").prepare()


def test_more_imp_levels_continue_a_run_and_fewer_are_refused(tmp_path):
    from keras_lottery import lottery

    def imp_run(levels, **changes):
        hparams = {**_hparams(**changes), "pruning": lottery.PruningHparams(levels=levels)}
        return runs.RunDirectory(str(tmp_path), "imp", hparams, name="imp")

    run = imp_run(3).prepare()
    runs.mark_complete(run.path, "imp")
    assert imp_run(5).check() == [("pruning", "levels", 3, 5)]
    imp_run(5).prepare()
    assert json.load(open(run.file("hparams.json")))["pruning"]["levels"] == 5
    assert not runs.is_complete(run.path)  # the longer run has not finished
    with pytest.raises(runs.RunDirectoryMismatch, match=r"pruning.levels: directory has 5, command has 4"):
        imp_run(4).prepare()
    with pytest.raises(runs.RunDirectoryMismatch, match=r"training.lr: directory has 0.1, command has 0.2"):
        imp_run(6, lr=0.2).prepare()  # growing levels does not excuse another change
    assert imp_run(5).check() == []


def test_more_controls_or_control_levels_continue_an_imp_run(tmp_path):
    from keras_lottery import lottery

    def imp_run(**pruning):
        hparams = {**_hparams(), "pruning": lottery.PruningHparams(**pruning)}
        return runs.RunDirectory(str(tmp_path), "imp", hparams, name="imp")

    imp_run(levels=4, controls="random", control_levels="2").prepare()
    assert imp_run(levels=4, controls="random,reinit", control_levels="2,4").check() == [
        ("pruning", "control_levels", "2", "2,4"), ("pruning", "controls", "random", "random,reinit")]
    assert imp_run(levels=6, controls="random", control_levels="").check()  # "" is every level: a superset
    for fewer in (dict(levels=4, controls="reinit", control_levels="2"), dict(levels=4, controls="random", control_levels="3")):
        with pytest.raises(runs.RunDirectoryMismatch):
            imp_run(**fewer).check()


def test_flags_are_generated_from_the_dataclasses_with_help():
    fv = flags.FlagValues()
    cli.define_flags(data.DatasetHparams, training.TrainingHparams, flag_values=fv)
    fv(["prog", "--lr=0.3", "--nesterov", "--dataset=cifar10", "--batch_size=64"])
    hp = cli.from_flags(training.TrainingHparams, flag_values=fv)
    assert hp.lr == 0.3 and hp.nesterov and hp.optimizer == "sgd"
    assert cli.from_flags(data.DatasetHparams, flag_values=fv).batch_size == 64
    assert "learning rate" in fv["lr"].help.lower()
    with pytest.raises(ValueError, match="already defined"):
        cli.define_flags(training.TrainingHparams, flag_values=fv)


@pytest.mark.parametrize("text,steps", [("500it", 500), ("2ep", 200), ("0.5ep", 50), ("0.05", 30), ("0", 0), ("7", 7)])
def test_durations(text, steps):
    assert training.to_steps(text, steps_per_epoch=100, total_steps=600) == steps


@pytest.mark.parametrize("text", ["5 epochs", "1.5it", "-3it", "2.5"])
def test_bad_durations_say_what_is_accepted(text):
    with pytest.raises(ValueError, match="it|ep|fraction"):
        training.to_steps(text, steps_per_epoch=100, total_steps=600)


@pytest.mark.parametrize("name", ["../escaped", "a/b", "..", ".", "/abs", " "])
def test_run_names_stay_inside_the_root(tmp_path, name):
    with pytest.raises(runs.RunDirectoryError, match="--run_name must be one folder name inside --run_root"):
        runs.RunDirectory(str(tmp_path), "train", _hparams(), name=name)


def test_a_folder_of_unrelated_files_is_refused_but_an_empty_or_locked_one_is_not(tmp_path):
    (tmp_path / "train" / "mine").mkdir(parents=True)
    (tmp_path / "train" / "mine" / "notes.txt").write_text("x")
    with pytest.raises(runs.RunDirectoryError, match=r"holds files of no run \(notes.txt; no hparams.json\)"):
        runs.RunDirectory(str(tmp_path), "train", _hparams(), name="mine").check()
    (tmp_path / "train" / "empty").mkdir()
    (tmp_path / "train" / "empty" / runs.LOCK).write_text("")
    runs.RunDirectory(str(tmp_path), "train", _hparams(), name="empty").check()


def test_the_lock_refuses_a_second_holder_and_takes_over_a_stale_one(tmp_path):
    run = runs.RunDirectory(str(tmp_path), "train", _hparams(), name="r")
    os.makedirs(run.path)
    lock = run.file(runs.LOCK)
    with open(lock, "w") as f:  # a live holder: this test, through another open file
        json.dump({"pid": 12345, "host": socket.gethostname(), "started": "then", "command": "first"}, f)
        f.flush()
        fcntl.flock(f, fcntl.LOCK_EX)
        with pytest.raises(runs.RunLocked, match=r"is in use by process 12345 on .* \(started then: first\)"):
            run.lock()
    lines = []  # the holder is gone (its flock went with it); the file still names it: stale
    run.lock(log=lines.append)
    assert lines == [f"Took over a stale lock (process 12345 on {socket.gethostname()} (started then: first) "
                     "ended without releasing it)."]
    assert json.loads(open(lock).read())["pid"] == os.getpid()
    run.lock()  # this process holds it already: fine
    runs._release(os.path.realpath(lock), lock)
    assert not os.path.exists(lock)


def test_progress_names_finished_and_running_trainings(tmp_path):
    (tmp_path / "level_0").mkdir()
    (tmp_path / "level_0" / runs.METRICS).write_text("{}")
    (tmp_path / "level_1").mkdir()
    (tmp_path / "level_1" / runs.STATE).write_text(json.dumps({"step": 3, "end_step": 8, "checkpoint": "c",
                                                                 "history": []}))
    assert runs.progress(str(tmp_path)) == "1 training(s) finished (level_0); in progress: level_1 at step 3 of 8"
    assert runs.progress(str(tmp_path / "level_0" / "none")) == "nothing trained yet"
    assert not runs.is_complete(str(tmp_path))
    runs.mark_complete(str(tmp_path), "imp", levels=1)
    assert runs.is_complete(str(tmp_path)) and json.load(open(tmp_path / runs.COMPLETE))["levels"] == 1


def test_layer_lottery_names_carry_the_unit(tmp_path):
    layers = runs.ticket_file(str(tmp_path), 2, "grasp", 3)
    filters = runs.ticket_file(str(tmp_path), 2, "grasp", 3, unit="filters")
    assert os.path.basename(layers) == "ticket_grasp_p3_r2.keras"
    assert os.path.basename(filters) == "ticket_grasp_p3_r2_filters.keras"
    assert runs.parse_ticket_file(filters) == ("grasp", 3, 2)
    assert runs.parse_ticket_file(filters, with_unit=True) == ("grasp", 3, 2, "filters")
    assert runs.parse_ticket_file(layers, with_unit=True) == ("grasp", 3, 2, "layers")
    assert runs.ticket_training_dir("d", 0, "snip", 1, "filters").endswith(os.path.join("replicate_0", "snip_p1_filters"))
    assert runs.scores_file("d", 0, "snip", unit="filters").endswith("filters_scores_snip.json")
    with pytest.raises(ValueError, match="unit must be one of layers, filters"):
        runs.ticket_file("d", 0, "snip", 1, unit="channels")
