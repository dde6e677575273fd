"""The bad-input matrix: every user error of the six binaries is one line on stderr, a non-zero exit,
and nothing written; damaged files name themselves and what to do; locks, resumes and finished work.

Each binary's cases run in one fresh interpreter (``bad_input_driver.py``: TensorFlow is imported
once per binary, not once per case); the cases of one binary run in order, so a case may damage the
run an earlier one made. The export, stability and robustness cases use the IMP run the imp cases make.
"""

import fcntl
import json
import os
import re
import socket
import subprocess
import sys

import pytest

from tests.helpers import REPO, child_env, tiny_flags

DRIVER = os.path.join(REPO, "tests", "experiments", "bad_input_driver.py")
TINY = [*tiny_flags(), "--steps=4it"]
IMP = [*TINY, "--optimizer=adam", "--lr=0.002", "--levels=1", "--rate=0.5", "--rewind=0", "--noplot"]
LOTTERY = [*TINY, "--model=resnet8", "--criterion=random", "--blocks=1"]
STABILITY = [*TINY, "--optimizer=adam", "--lr=0.002", "--ks=0", "--points=2", "--train_limit=64"]


DEEP = ["--model=conv6", "--dataset=synthetic:4x4x1:4:256"]  # three poolings: 4 -> 2 -> 1 -> nothing


def _error(name, argv, message, before=()):
    return {"name": name, "argv": argv, "message": message, "before": list(before)}


def _diverges(name, argv):
    """A run that diverges: one line naming the step and the learning rate, exit status 1, not finished."""
    return {"name": name, "argv": argv, "message": "Training diverged at step ", "diverges": True, "before": []}


def _ok(name, argv, stdout="", before=()):
    return {"name": name, "argv": argv, "stdout": stdout, "before": list(before)}


def train_cases(root):
    run, part, backup = f"{root}/train/ok", f"{root}/train/p", f"{root}/backup"
    return [
        _error("eval_every_abc", ["--eval_every=abc"], "Cannot read duration 'abc'"),
        _error("eval_every_zero", ["--eval_every=0"], "--eval_every='0' is less than one iteration"),
        _error("steps_zero", ["--steps=0"], "--steps='0' is 0 iterations (an epoch is 6); training needs at least one"),
        _error("steps_fraction", ["--steps=0.5"], "--steps: A fraction ('0.5') needs the training length"),
        _error("batch_too_big", ["--batch_size=1000"], "batch_size=1000 exceeds the 192 training examples"),
        _error("model_too_deep", DEEP, "--model=conv6 cannot be built for inputs of shape (4, 4, 1)"),
        _error("milestone_after_end", ["--milestones=2it,4it"], "step(s) [4] come at or after the end of training"),
        _error("warmup_after_end", ["--warmup=5it"], "--warmup='5it' ends at step 5, after the end of training"),
        _error("gamma_negative", ["--gamma=-0.1"], "--gamma must be >= 0"),
        _error("gamma_without_milestones", ["--gamma=0.5"], "--gamma=0.5 applies at --milestones, which are empty"),
        _error("momentum_with_adam", ["--optimizer=adam", "--momentum=0.5"], "--optimizer=adam would ignore it"),
        _error("nesterov_with_adam", ["--optimizer=adam", "--nesterov"], "--nesterov applies to --optimizer=sgd only"),
        _error("train_subset_too_big", ["--train_subset=500"], "train_subset=500 exceeds the 192 training examples"),
        _error("country_unknown", ["--emissions", "--country=XYZ"], "--country='XYZ' is not a country codecarbon knows"),
        _error("country_ignored", ["--country=FRA"], "--country is used only for emissions tracking"),
        _error("tpu_ignored", ["--tpu=grpc://x:1"], "--tpu='grpc://x:1' is used only with --strategy=tpu"),
        _error("data_dir_missing", ["--dataset=fashion_mnist", f"--data_dir={root}/nowhere"],
               f"--data_dir='{root}/nowhere' is not a directory"),
        _error("data_dir_without_data", ["--dataset=fashion_mnist", f"--data_dir={root}/empty"],
               f"Dataset 'fashion_mnist' is not in --data_dir='{root}/empty'", [["mkdir", f"{root}/empty"]]),
        _error("synthetic_malformed", ["--dataset=synthetic:8x8x:4"], "is not a synthetic spec"),
        _error("synthetic_one_class", ["--dataset=synthetic:8x8x1:1:256"], "is not a synthetic spec"),
        _error("unknown_model", ["--model=resnet21"], "Unknown model 'resnet21'"),
        _error("run_name_outside_root", ["--run_name=../../escaped"], "--run_name must be one folder name"),
        _error("unrelated_files", ["--run_name=junk"], "holds files of no run (notes.txt; no hparams.json)",
               [["write", f"{root}/train/junk/notes.txt", "mine"]]),
        _error("locked", ["--run_name=locked"], "is in use by process"),  # the test holds the lock
        _ok("ok", ["--run_name=ok"], "Run directory:"),
        _ok("finished_is_reported", ["--run_name=ok"], "Resuming: finished, reporting its results"),
        _error("other_hparams", ["--run_name=ok", "--lr=0.5"], "training.lr: directory has 0.1, command has 0.5"),
        _error("damaged_metrics", ["--run_name=ok"], f"{run}/metrics.json is damaged (JSONDecodeError",
               [["truncate", f"{run}/metrics.json", 10]]),
        _ok("partial", ["--run_name=p"]),
        _error("damaged_state", ["--run_name=p"], f"{part}/state.json is damaged (JSONDecodeError",
               [["remove", f"{part}/{name}"] for name in ("metrics.json", "model.keras", "complete.json")]
               + [["copy", f"{part}/state.json", f"{backup}_state.json"], ["truncate", f"{part}/state.json", 7]]),
        _error("damaged_checkpoint", ["--run_name=p"], f"{part}/ckpt-000000004.keras is damaged",
               [["copy", f"{backup}_state.json", f"{part}/state.json"],
                ["copy", f"{part}/ckpt-000000004.keras", f"{backup}_ckpt.keras"],
                ["truncate", f"{part}/ckpt-000000004.keras", 100]]),
        _ok("resumed_from_checkpoint", ["--run_name=p"], f"Resuming {part} at step 4 (checkpoint ckpt-000000004.keras)",
            [["copy", f"{backup}_ckpt.keras", f"{part}/ckpt-000000004.keras"]]),
        _ok("stale_lock_taken_over", ["--run_name=stale"], "Took over a stale lock (process 4194305",
            [["stale_lock", f"{root}/train/stale/run.lock"]]),
        _diverges("diverges", ["--run_name=nan", "--lr=1e6", "--optimizer=sgd"]),
    ]


IMP_NAME = "levels=1,rate=0.5"  # a run name with = and , as the binaries' own names have


def imp_cases(root):
    name = f"--run_name={IMP_NAME}"
    return [
        _ok("ok", [name], "level  1 ticket"),
        _error("unknown_dataset", ["--dataset=no_such_dataset_xyz"], "Dataset 'no_such_dataset_xyz' was not found"),
        _error("steps_zero", ["--steps=0"], "--steps='0' is 0 iterations"),
        _error("batch_too_big", ["--batch_size=1000"], "batch_size=1000 exceeds the 192 training examples"),
        _error("model_too_deep", DEEP, "--model=conv6 cannot be built"),
        _error("eval_every_abc", ["--eval_every=abc"], "Cannot read duration 'abc'"),
        _error("exclude_everything", ["--exclude=fc1,fc2,predictions", "--run_name=x"],
               "removes no weight of lenet_300_100"),
        _error("control_levels_without_controls", ["--control_levels=1"], "which are empty: it would be ignored"),
        _error("compare_with_noplot", [f"--compare_with={root}/other"], "--compare_with only adds runs to the plot"),
        _error("compare_with_unfinished", ["--plot", f"--compare_with={root}/other"], "has not finished",
               [["write", f"{root}/other/imp.json", "{}"]]),
        _error("damaged_mask", [name], "level_1/mask.npz is damaged (BadZipFile",
               [["copy", "{run}/level_1/mask.npz", f"{root}/backup_mask.npz"],
                ["truncate", "{run}/level_1/mask.npz", 50]]),
        _ok("finished_is_reported", [name], "Resuming: finished", [["copy", f"{root}/backup_mask.npz", "{run}/level_1/mask.npz"]]),
        _diverges("diverges", ["--run_name=nan", "--lr=1e6", "--optimizer=sgd"]),
    ]


def lottery_cases(root):
    return [
        _error("steps_zero", ["--steps=0"], "--steps='0' is 0 iterations"),
        _error("rewind_epoch_after_end", ["--algorithm=trained", "--rewind_epoch=50"],
               "--rewind_epoch=50 is not before the end of training"),
        _error("model_too_deep", DEEP, "--model=conv6 cannot be built"),
        _error("batch_too_big", ["--batch_size=1000"], "batch_size=1000 exceeds"),
        _error("too_many_blocks", ["--blocks=5"], "asks to remove 5 blocks but the model has only"),
        _error("nesterov_default_with_adam", ["--optimizer=adam"], "pass --nonesterov"),
    ]


def stability_cases(root):
    return [
        _error("eval_every_abc", ["--eval_every=abc"], "Cannot read duration 'abc'"),
        _error("unknown_dataset", ["--dataset=no_such_dataset_xyz"], "Dataset 'no_such_dataset_xyz' was not found"),
        _error("steps_zero", ["--steps=0"], "--steps='0' is 0 iterations"),
        _error("batch_too_big", ["--batch_size=1000"], "batch_size=1000 exceeds"),
        _error("mask_directory", [f"--mask={root}"], "is a directory; name its mask.npz"),
        _error("mask_damaged", [f"--mask={root}/broken.npz"], f"{root}/broken.npz is damaged",
               [["copy", "{run}/level_1/mask.npz", f"{root}/broken.npz"], ["truncate", f"{root}/broken.npz", 40]]),
        _ok("mask_path_with_equals_and_commas", ["--mask={run}/level_1/mask.npz", "--run_name=m"], "k =      0"),
    ]


def export_cases(root):
    base = f"{root}/saved"
    return [
        _error("missing_run_dir", [f"--run_dir={root}/none", "--level=1"], "is not a directory"),
        _error("level_and_ticket", ["--run_dir={run}", "--level=1", "--ticket=t.keras"], "exclude each other"),
        _error("level_missing", ["--run_dir={run}", "--level=7"], "No IMP level directory"),
        _error("level_unfinished", ["--run_dir={run}", "--level=1", f"--base_dir={base}"],
               "Level 1 of {run} has not finished training (at step 4 of 4; no metrics.json)",
               [["copy", "{run}/level_1/metrics.json", f"{root}/backup_metrics.json"],
                ["remove", "{run}/level_1/metrics.json"]]),
        _error("damaged_model", ["--run_dir={run}", "--level=1", f"--base_dir={base}"], "level_1/model.keras is damaged",
               [["copy", f"{root}/backup_metrics.json", "{run}/level_1/metrics.json"],
                ["copy", "{run}/level_1/model.keras", f"{root}/backup_model.keras"],
                ["truncate", "{run}/level_1/model.keras", 64]]),
        _ok("default_name_of_a_run_with_equals", ["--run_dir={run}", "--level=1", f"--base_dir={base}", "--noverify"],
            "Exported", [["copy", f"{root}/backup_model.keras", "{run}/level_1/model.keras"]]),
    ]


def robustness_cases(root):
    tiny = ["--runs={run}", "--test_subset=16", "--attack_subset=8", "--epsilons=0,0.1", "--corruptions=fog,contrast"]
    return [
        _error("unknown_corruption", ["--runs={run}", "--corruptions=fog,blizzard"], "Unknown corruption 'blizzard'"),
        _error("severity_zero", ["--runs={run}", "--severities=0,1"], "severity must be 1..5, got 0"),
        _error("severity_six", ["--runs={run}", "--severities=5,6"], "severity must be 1..5, got 6"),
        _error("negative_epsilon", ["--runs={run}", "--epsilons=0,-0.1"], "each in [0, 1], got -0.1"),
        _error("negative_attack_subset", ["--runs={run}", "--attack_subset=-1"], "--attack_subset must be >= 0"),
        _error("attack_subset_over_test_subset", ["--runs={run}", "--test_subset=16", "--attack_subset=17"],
               "--attack_subset=17 is more than the 16 test images"),
        _error("no_runs", [], "--runs is empty"),
        _error("wrong_kind_of_run", [f"--runs={root}/not_a_lottery"], "is not a layer-lottery or IMP run directory",
               [["write", f"{root}/not_a_lottery/hparams.json", '{"dataset": {}, "training": {}}']]),
        _error("missing_level", ["--runs={run}", "--levels=7"], "has no level(s) 7"),
        _error("other_data_settings", ["--runs={run}", "--batch_size=16"],
               "--batch_size: the runs have 32, the command 16"),
        _error("saturate_on_grayscale", ["--runs={run}", "--corruptions=saturate"], "needs RGB images"),
        _ok("ok", [*tiny, "--run_name=r"], "Robustness (imp, 2 models)"),
        _ok("finished_is_reported", [*tiny, "--run_name=r"], "Resuming: finished"),
    ]


MATRIX = {"experiments.train": (train_cases, "train"), "experiments.imp": (imp_cases, "imp"),
          "experiments.layer_lottery": (lottery_cases, "layer_lottery"),
          "experiments.stability": (stability_cases, "stability"), "experiments.export": (export_cases, "export"),
          "experiments.robustness": (robustness_cases, "robustness")}
COMMON = {"experiments.imp": IMP, "experiments.layer_lottery": LOTTERY, "experiments.stability": STABILITY,
          "experiments.train": TINY, "experiments.export": [], "experiments.robustness": []}


def _fill(value, run):
    if isinstance(value, list):
        return [_fill(v, run) for v in value]
    return value.replace("{run}", run) if isinstance(value, str) else value


class _Matrix:
    """Runs each binary's cases once (in the order of ``MATRIX``'s dependencies) and keeps the outcomes."""

    def __init__(self, root):
        self.root, self.outcomes = str(root), {}
        self.imp_run = os.path.join(self.root, "imp", IMP_NAME)

    def cases(self, module):
        make, _ = MATRIX[module]
        run = self.imp_run
        extra = [] if module == "experiments.export" else [f"--run_root={self.root}"]
        cases = []
        for case in make(self.root):
            case = {key: _fill(value, run) for key, value in case.items()}
            case["argv"] = [*COMMON[module], *extra, *case["argv"]]
            case["watch"] = [self.root]
            cases.append(case)
        return cases

    def outcome(self, module, name):
        if module in ("experiments.stability", "experiments.export", "experiments.robustness") and "experiments.imp" not in self.outcomes:
            self.outcome("experiments.imp", "ok")  # they use its run
        if module not in self.outcomes:
            self.outcomes[module] = self._drive(module)
        case = next(c for c in self.cases(module) if c["name"] == name)
        return case, self.outcomes[module][name]

    def _drive(self, module):
        path = os.path.join(self.root, f"{module}.cases.json")
        with open(path, "w") as f:
            json.dump(self.cases(module), f)
        holder = self._hold_lock() if module == "experiments.train" else None
        try:
            proc = subprocess.run([sys.executable, DRIVER, module, path], cwd=REPO, env=child_env(),
                                  capture_output=True, text=True, timeout=600)
        finally:
            if holder is not None:
                os.close(holder)
        assert proc.returncode == 0, proc.stderr[-4000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def _hold_lock(self):
        """This process holds train/locked/run.lock as a running binary would."""
        path = os.path.join(self.root, "train", "locked", "run.lock")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": "now",
                                 "command": "pytest"}).encode())
        return fd


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    return _Matrix(tmp_path_factory.mktemp("bad_input"))


def _ids():
    for module, (make, _) in MATRIX.items():
        for case in make("ROOT"):
            yield pytest.param(module, case["name"], id=f"{module.split('.')[1]}-{case['name']}")


@pytest.mark.parametrize("module,name", list(_ids()))
def test_case(matrix, module, name):
    case, result = matrix.outcome(module, name)
    assert result["traceback"] is None, result["traceback"]
    assert result["flags_error"] is None, result["flags_error"]
    written = [p for p in result["changed"] if os.path.basename(p) != "run.lock" and "backup" not in p]
    if "message" in case:
        message = result["exit"]
        assert isinstance(message, str) and message.startswith("error: "), result
        assert "\n" not in message, message
        assert case["message"] in message, message
        if case.get("diverges"):  # the run directory was made; nothing in it says finished
            assert "The learning rate (1e+06 at this step) is the likely cause" in message, message
            # (IMP writes level 0's all-ones mask and the rewind point before training: not results)
            assert not [p for p in written if os.path.basename(p) in ("complete.json", "metrics.json", "model.keras")
                        or "level_1" in p or "results" in p], written
        else:
            assert written == [], f"written before the error: {written}"
    else:
        assert result["exit"] in (None, 0), result
        assert case["stdout"] in result["stdout"], result["stdout"]


def test_run_names_never_leave_the_run_root(matrix):
    matrix.outcome("experiments.train", "run_name_outside_root")
    assert not os.path.exists(os.path.join(matrix.root, "..", "..", "escaped"))


def test_a_locked_run_names_the_process_that_holds_it(matrix):
    _, result = matrix.outcome("experiments.train", "locked")
    assert f"process {os.getpid()} on {socket.gethostname()}" in result["exit"]
    assert "If that process is gone, delete" in result["exit"]


def test_damaged_files_say_what_to_do(matrix):
    advice = {"damaged_metrics": "Delete it and run the same command again: it is recomputed from the last checkpoint",
              "damaged_state": "Delete .*state.json and run the same command again to retrain",
              "damaged_checkpoint": "Delete .*state.json and run the same command again to retrain"}
    for name, pattern in advice.items():
        _, result = matrix.outcome("experiments.train", name)
        assert re.search(pattern, result["exit"]), result["exit"]


def test_default_export_name_of_a_run_with_equals_and_commas(matrix):
    matrix.outcome("experiments.export", "default_name_of_a_run_with_equals")
    name = os.path.basename(matrix.imp_run)
    assert "=" in name and "," in name
    exported = os.listdir(os.path.join(matrix.root, "saved"))
    assert exported == [name.replace("=", "_").replace(",", "_") + "_level1"]
    assert os.path.isfile(os.path.join(matrix.root, "saved", exported[0], "1", "saved_model.pb"))


def test_finished_runs_carry_the_completion_marker(matrix):
    matrix.outcome("experiments.imp", "ok")
    matrix.outcome("experiments.train", "ok")
    for run in (matrix.imp_run, os.path.join(matrix.root, "train", "ok")):
        with open(os.path.join(run, "complete.json")) as f:
            assert "finished" in json.load(f)
    assert not os.path.exists(os.path.join(matrix.imp_run, "run.lock"))  # released at exit
