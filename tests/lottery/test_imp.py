import csv
import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery import files, lottery, runs, training
from keras_lottery.callbacks import RewindPoint
from keras_lottery.lottery import imp


class Recorder:
    """Wraps ``training.fit`` to record, for every training run IMP starts, its start state."""

    def __init__(self, root):
        self.root, self.seen, self.real_fit = str(root), {}, training.fit

    def __call__(self, model, datasets, hparams, directory, **kwargs):
        if model is not None and training.read_state(directory) is None:
            optimizer = {v.path: keras.ops.convert_to_numpy(v.value) for v in model.optimizer.variables} \
                if getattr(model, "optimizer", None) is not None else {}
            self.seen[os.path.relpath(directory, self.root)] = (
                {id(v): keras.ops.convert_to_numpy(v.value) for v in model.weights}, model, optimizer,
                kwargs["start_step"])
        return self.real_fit(model, datasets, hparams, directory, **kwargs)


def _iteration(optimizer):
    return int(next(value for path, value in optimizer.items() if path.endswith("iteration")))


def _slot(optimizer, suffix):
    return next(value for path, value in optimizer.items() if path.endswith(suffix))


@pytest.fixture(scope="module")
def straight(tmp_path_factory, build, make_datasets, adam, pruning_hparams):
    """One uninterrupted weight-rewinding run with both controls, its start states recorded."""
    directory = tmp_path_factory.mktemp("straight")
    recorder = Recorder(directory)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(imp.training, "fit", recorder)
        rows = imp.run(str(directory), build, make_datasets(), adam, pruning_hparams(), log=None)
    return directory, rows, recorder.seen


@pytest.fixture
def starts(monkeypatch, tmp_path):
    recorder = Recorder(tmp_path)
    monkeypatch.setattr(imp.training, "fit", recorder)
    return recorder.seen


@pytest.fixture
def run_imp(build, datasets, adam, pruning_hparams):
    """``(directory, **pruning overrides) -> rows``: IMP on the synthetic data, silent."""
    return lambda directory, **overrides: imp.run(str(directory), build, datasets, adam, pruning_hparams(**overrides),
                                                  log=None)


def _prunable(model):
    return {p: v for layer in kl.masking.masked_layers(model) for p, v in layer.prunable_variables().items()}


def _start_weights(record):
    values, model, _, _ = record
    return {p: values[id(v)] for p, v in _prunable(model).items()}


def _final_level_0(directory):
    return keras.saving.load_model(os.path.join(directory, "level_0", "model.keras"))


def test_weight_rewinding_starts_each_level_at_theta_k_with_the_optimizer_state_at_k(straight, build):
    tmp_path, rows, seen = straight
    point = RewindPoint.load(tmp_path / "rewind.npz")
    assert point.step == 4
    template = kl.mask(build(0))
    theta_k = {p: point.weights[[id(v) for v in template.weights].index(id(v))]
               for p, v in _prunable(template).items()}
    for level in (1, 2):
        mask = kl.Mask.load(tmp_path / f"level_{level}" / "mask.npz")
        start = _start_weights(seen[f"level_{level}"])
        for path, value in start.items():
            np.testing.assert_array_equal(value[mask[path]], theta_k[path][mask[path]])
            assert np.all(value[~mask[path]] == 0)
        _, _, optimizer, start_step = seen[f"level_{level}"]
        assert start_step == 4 and _iteration(optimizer) == 4
        captured = _slot(optimizer, "fc1_kernel_momentum")
        np.testing.assert_array_equal(captured, point.optimizer[1] * mask["fc1/kernel"])  # dead slots zeroed
    # Level densities follow the layerwise rates; every level trains T - k steps from k.
    report = kl.Mask.load(tmp_path / "level_2" / "mask.npz").report()["layers"]
    assert report["fc1/kernel"]["density"] == pytest.approx(0.25, abs=1e-3)
    assert report["predictions/kernel"]["density"] == pytest.approx(0.75 ** 2, abs=1e-2)
    tickets = [r for r in rows if r["kind"] == "ticket"]
    assert [r["level"] for r in tickets] == [0, 1, 2]
    assert all(r["start_step"] == 4 and r["end_step"] == 12 for r in tickets[1:]) and tickets[0]["start_step"] == 0
    expected = {"density:fc1/kernel", "best_val_accuracy", "best_val_iteration", "test_accuracy", "train_time_s"}
    assert expected <= set(rows[1])
    for name in ("mask.npz", "sparsity.json", "metrics.json", "history.csv", "model.keras"):
        assert (tmp_path / "level_1" / name).exists(), name

    # Controls: reinit keeps the ticket's mask with a fresh initialization; random keeps its densities.
    for level in (1, 2):
        ticket_mask = kl.Mask.load(tmp_path / f"level_{level}" / "mask.npz")
        reinit_mask = kl.Mask.load(tmp_path / f"level_{level}" / "reinit" / "mask.npz")
        random_mask = kl.Mask.load(tmp_path / f"level_{level}" / "random" / "mask.npz")
        assert reinit_mask == ticket_mask and random_mask != ticket_mask
        for path in ticket_mask:
            assert random_mask[path].sum() == ticket_mask[path].sum()
        reinit_start = _start_weights(seen[f"level_{level}/reinit"])
        random_start = _start_weights(seen[f"level_{level}/random"])
        for path in ticket_mask:
            assert not np.array_equal(reinit_start[path][ticket_mask[path]], theta_k[path][ticket_mask[path]])
            assert np.all(reinit_start[path][~ticket_mask[path]] == 0)
            np.testing.assert_array_equal(random_start[path][random_mask[path]], theta_k[path][random_mask[path]])
            assert np.all(random_start[path][~random_mask[path]] == 0)
        for kind in ("reinit", "random"):  # trained exactly like the ticket: same start step and optimizer state
            _, _, optimizer, start_step = seen[f"level_{level}/{kind}"]
            assert start_step == 4 and _iteration(optimizer) == 4
    assert sorted({(r["level"], r["kind"]) for r in rows}) == sorted(
        [(0, "ticket")] + [(lv, k) for lv in (1, 2) for k in ("ticket", "reinit", "random")])


@pytest.mark.parametrize("mode", ["lr", "finetune"])
def test_lr_rewinding_and_finetuning_keep_the_final_weights(run_imp, tmp_path, starts, mode):
    seen = starts
    run_imp(tmp_path, levels=1, mode=mode, controls="")
    final = _final_level_0(tmp_path)
    final_weights = {p: keras.ops.convert_to_numpy(v.value) for p, v in _prunable(final).items()}
    mask = kl.Mask.load(tmp_path / "level_1" / "mask.npz")
    start = _start_weights(seen["level_1"])
    for path, value in start.items():
        np.testing.assert_array_equal(value, final_weights[path] * mask[path])
    _, _, optimizer, start_step = seen["level_1"]
    assert start_step == 4
    if mode == "lr":  # the schedule (iteration count) and optimizer state come back from k
        point = RewindPoint.load(tmp_path / "rewind.npz")
        assert _iteration(optimizer) == 4
        np.testing.assert_array_equal(_slot(optimizer, "fc1_kernel_velocity"), point.optimizer[2] * mask["fc1/kernel"])
    else:  # the final learning rate: the optimizer continues from the end of level 0
        assert _iteration(optimizer) == 12
        final_state = {v.path: keras.ops.convert_to_numpy(v.value) for v in final.optimizer.variables}
        np.testing.assert_array_equal(_slot(optimizer, "fc1_kernel_momentum"),
                                      _slot(final_state, "fc1_kernel_momentum") * mask["fc1/kernel"])


def test_rewinding_to_zero_resets_to_the_initialization_with_a_fresh_optimizer(run_imp, build, tmp_path, starts):
    seen = starts
    run_imp(tmp_path, levels=1, rewind="0", rule="global", layer_rates="", exclude="predictions",
         controls="")
    init = {p: keras.ops.convert_to_numpy(v.value) for p, v in _prunable(kl.mask(build(0))).items()}
    mask = kl.Mask.load(tmp_path / "level_1" / "mask.npz")
    assert mask["predictions/kernel"].all() and not mask["fc1/kernel"].all()
    for path, value in _start_weights(seen["level_1"]).items():
        np.testing.assert_array_equal(value, init[path] * mask[path])
    _, _, optimizer, start_step = seen["level_1"]
    assert start_step == 0 and all(not np.any(v) for v in optimizer.values())


class _Stop(Exception):
    pass


@pytest.mark.slow  # interrupts and resumes IMP at every level
def test_interrupted_anywhere_the_run_continues_to_the_same_masks(straight, run_imp, tmp_path, monkeypatch):
    reference, rows, _ = straight
    real_fit = training.fit
    # Interrupted, as a kill would, `after` steps into the training run in `where` (0: before its first step,
    # right after the level's mask was written), then started again; repeatedly, in one directory.
    points = [("level_0", 7), ("level_1", 2), ("level_1/random", 3), ("level_2", 0), ("level_2/reinit", 6)]
    for where, after in points:

        class Crash(keras.callbacks.Callback):
            steps = 0

            def on_train_batch_end(self, batch, logs=None):
                Crash.steps += 1
                if Crash.steps == after:
                    raise _Stop

        def crashing_fit(model, datasets, hparams, directory, callbacks=(), **kwargs):
            if os.path.relpath(directory, tmp_path) == where:
                if after == 0:
                    raise _Stop
                callbacks = [*callbacks, Crash()]
            return real_fit(model, datasets, hparams, directory, callbacks=callbacks, **kwargs)

        monkeypatch.setattr(imp.training, "fit", crashing_fit)
        with pytest.raises(_Stop):
            run_imp(tmp_path)
        assert not (tmp_path / where / "metrics.json").exists()
    monkeypatch.setattr(imp.training, "fit", real_fit)
    resumed = run_imp(tmp_path)
    assert [(r["level"], r["kind"]) for r in resumed] == [(r["level"], r["kind"]) for r in rows]
    for n in range(3):
        assert kl.Mask.load(tmp_path / f"level_{n}" / "mask.npz") == kl.Mask.load(reference / f"level_{n}" / "mask.npz")
    for row, again in zip(rows, resumed):
        assert again["test_accuracy"] == pytest.approx(row["test_accuracy"], abs=1e-6)


@pytest.mark.slow  # kills and restarts the IMP binary
def test_kill_9_then_the_same_command_finishes_with_the_same_masks(straight, binary_flags, tmp_path):
    reference, _, _ = straight
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, TF_DETERMINISTIC_OPS="1", CUDA_VISIBLE_DEVICES="", PYTHONPATH=repo)
    # Controls never change the ticket's masks, so the binary runs without them (faster) and compares.
    command = [sys.executable, "-m", "experiments.imp", *binary_flags, "--controls=", f"--run_root={tmp_path}",
               "--run_name=r"]
    run_dir = tmp_path / "imp" / "r"
    process = subprocess.Popen(command, cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while time.time() < deadline and not (run_dir / "level_1" / "state.json").exists():
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (run_dir / "level_2" / "metrics.json").exists()
    finished = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-2000:]
    for n in range(3):
        assert kl.Mask.load(run_dir / f"level_{n}" / "mask.npz") == kl.Mask.load(reference / f"level_{n}" / "mask.npz")
    assert (run_dir / "results.csv").read_text().count("\n") == 1 + 3
    assert "level  1 ticket" in finished.stdout and "level  2 ticket" in finished.stdout


def test_a_finished_run_is_reported_not_redone_and_other_settings_are_refused(straight, run_imp, monkeypatch):
    tmp_path, first, _ = straight
    stamp = os.path.getmtime(tmp_path / "level_1" / "metrics.json")

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run trained again")

    monkeypatch.setattr(keras.Model, "fit", no_training)
    assert run_imp(tmp_path) == first
    assert os.path.getmtime(tmp_path / "level_1" / "metrics.json") == stamp
    with pytest.raises(runs.RunDirectoryMismatch, match=r"pruning.rate: directory has 0.5, command has 0.3"):
        run_imp(tmp_path, rate=0.3)
    assert files.read_json(str(tmp_path / "imp.json"))["pruning"]["rate"] == 0.5


def test_bad_settings_fail_before_training(run_imp, tmp_path):
    with pytest.raises(ValueError, match="--mode must be one of weights, lr, finetune, got 'rewind'"):
        run_imp(tmp_path, mode="rewind")
    with pytest.raises(ValueError, match="--rewind='20it' is step 20; it must come before the end"):
        run_imp(tmp_path, rewind="20it")
    with pytest.raises(ValueError, match="matches no prunable weight"):
        run_imp(tmp_path, exclude="conv9")
    with pytest.raises(ValueError, match="--controls accepts reinit, random"):
        lottery.PruningHparams(controls="shuffle").validate()
    with pytest.raises(ValueError, match="needs --rule=layerwise"):
        lottery.PruningHparams(layer_rates="fc1=0.1").validate()
    assert not any(tmp_path.iterdir())


def _carbon_intensity_kg_per_kwh(country):
    """The grid carbon intensity codecarbon's offline tracker uses for ``country``, from its own data file."""
    import codecarbon

    path = os.path.join(os.path.dirname(codecarbon.__file__), "data", "private_infra", "global_energy_mix.json")
    with open(path) as f:
        return json.load(f)[country]["carbon_intensity"] / 1000.0  # g/kWh -> kg/kWh


def test_energy_and_co2_are_recorded_per_level_when_tracking_is_on(build, datasets, adam, pruning_hparams, tmp_path):
    from keras_lottery.callbacks import Emissions

    rows = imp.run(str(tmp_path), build, datasets, adam, pruning_hparams(levels=0, controls=""), log=None,
                   emissions_factory=lambda: Emissions(country="FRA", measure_power_secs=1))
    assert len(rows) == 1 and rows[0]["emissions_energy_kwh"] > 0
    assert rows[0]["emissions_emissions_kg"] / rows[0]["emissions_energy_kwh"] == pytest.approx(
        _carbon_intensity_kg_per_kwh("FRA"), rel=0.02)


def test_the_former_emissions_keyword_is_gone_and_bad_settings_write_nothing(run_imp, build, datasets, adam,
                                                                             pruning_hparams, tmp_path):
    # A bad setting stops the run right after the arguments are read: nothing is trained or written.
    with pytest.raises(ValueError, match="--mode"):
        imp.run(str(tmp_path), build, datasets, adam, pruning_hparams(mode="rewind"), log=None)
    with pytest.raises(TypeError, match="emissions"):  # one name: emissions_factory
        imp.run(str(tmp_path), build, datasets, adam, pruning_hparams(), emissions=dict)
    assert not any(tmp_path.iterdir())


def test_the_experiment_checks_before_writing_and_reports_with_other_runs(straight, datasets, adam, pruning_hparams,
                                                                          tmp_path):
    reference, rows, _ = straight
    hparams = {"dataset": datasets.hparams, "model": training.ModelHparams(), "training": adam,
               "pruning": pruning_hparams()}
    # imp.run trains the levels; run_experiment marks the run finished, which --compare_with requires.
    with pytest.raises(ValueError, match="has not finished .*no complete.json"):
        imp.check(hparams, datasets, compare_with=[str(reference)])
    runs.mark_complete(str(reference), "imp", levels=2, trainings=len(rows))
    assert imp.check(hparams, datasets, compare_with=[str(reference)]) == 12
    with pytest.raises(ValueError, match="is not an IMP run directory"):
        imp.check(hparams, datasets, compare_with=[str(tmp_path)])
    with pytest.raises(ValueError, match="must come before the end of training"):
        imp.check(dict(hparams, pruning=pruning_hparams(rewind="12it")), datasets)
    with pytest.raises(ValueError, match="matches no prunable weight"):
        imp.check(dict(hparams, pruning=pruning_hparams(exclude="conv9")), datasets)
    assert imp.is_run(reference) and not imp.is_run(tmp_path) and imp.rewind_step_of(reference) == 4
    series = imp.compare_series(rows[:1], 0, [str(reference)])
    assert list(series) == ["k=0", "k=4"] and series["k=4"] == rows and imp.compare_series(rows, 4) == rows

    # report: results.csv and the figure, in a copy of the run (its imp.json gives the figure's k).
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "imp.json").write_text((reference / "imp.json").read_text())
    path = imp.report(str(copy), rows, plot=True, compare_with=[str(reference)], title="t")
    assert path == str(copy / "results.csv") == imp.results_file(str(copy))
    assert [(int(r["level"]), r["kind"]) for r in csv.DictReader(open(path))] == [(r["level"], r["kind"]) for r in rows]
    assert (copy / "accuracy_vs_density.png").stat().st_size > 1000


def test_raising_levels_continues_a_finished_run_without_retraining(tmp_path, run_imp):
    rows = run_imp(tmp_path, levels=1, controls="")
    level_1 = os.path.join(str(tmp_path), "level_1", "metrics.json")
    stamp = os.stat(level_1).st_mtime_ns
    longer = run_imp(tmp_path, levels=2, controls="")
    assert [r["level"] for r in longer] == [0, 1, 2] and longer[:2] == rows
    assert os.stat(level_1).st_mtime_ns == stamp  # read back, not retrained
    assert json.load(open(tmp_path / "imp.json"))["pruning"]["levels"] == 2
    assert longer[2]["density"] < longer[1]["density"]
    with pytest.raises(runs.RunDirectoryMismatch, match="pruning.levels: directory has 2, command has 1"):
        run_imp(tmp_path, levels=1, controls="")
    with_control = run_imp(tmp_path, levels=2, controls="random", control_levels="1")  # a control added later
    assert [(r["level"], r["kind"]) for r in with_control] == [(0, "ticket"), (1, "ticket"), (1, "random"), (2, "ticket")]
    assert os.stat(level_1).st_mtime_ns == stamp
