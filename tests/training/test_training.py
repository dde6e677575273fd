import csv
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from keras_lottery import files, runs, training
from tests.helpers import REPO, TINY_CLASSES, TINY_SHAPE, CrashAfter, child_env, tiny_dataset, tiny_lenet


def test_step_schedule_warms_up_and_drops_at_milestones():
    schedule = training.StepSchedule(0.1, warmup_steps=10, milestones=[20, 30], gamma=0.1)
    values = [float(schedule(step)) for step in (0, 4, 9, 19, 20, 29, 30)]
    np.testing.assert_allclose(values, [0.01, 0.05, 0.1, 0.1, 0.01, 0.01, 0.001], rtol=1e-5)
    restored = training.StepSchedule.from_config(schedule.get_config())
    assert float(restored(25)) == pytest.approx(0.01)


@pytest.mark.parametrize("name,cls", [("sgd", keras.optimizers.SGD), ("adam", keras.optimizers.Adam),
                                      ("adamw", keras.optimizers.AdamW), ("rmsprop", keras.optimizers.RMSprop)])
def test_optimizers_follow_the_hparams(name, cls):
    hp = training.TrainingHparams(optimizer=name, nesterov=name == "sgd", weight_decay=1e-4, steps="10ep",
                                  milestones="5ep")
    optimizer = training.make_optimizer(hp, steps_per_epoch=10)
    assert isinstance(optimizer, cls) and optimizer.weight_decay == pytest.approx(1e-4)
    assert optimizer._learning_rate.milestones == [50]  # the schedule object itself
    if name == "sgd":
        assert optimizer.nesterov


def test_bad_training_hparams_are_refused():
    with pytest.raises(ValueError, match="--optimizer must be one of sgd, adam"):
        training.TrainingHparams(optimizer="lion").validate()
    with pytest.raises(ValueError, match="--lr"):
        training.TrainingHparams(lr=0).validate()
    with pytest.raises(ValueError, match="--nesterov applies to --optimizer=sgd only"):
        training.TrainingHparams(optimizer="adam", nesterov=True).validate()


@pytest.mark.parametrize("changes,steps_per_epoch,message", [
    ({"steps": "0"}, 10, "--steps='0' is 0 iterations"),
    ({"steps": "0.2ep"}, 2, "is 0 iterations"),
    ({"steps": "2ep", "warmup": "3ep"}, 10, "--warmup='3ep' ends at step 30, after the end of training"),
    ({"steps": "2ep", "milestones": "1ep,2ep"}, 10, r"step\(s\) \[20\] come at or after the end"),
    ({"gamma": -1.0, "milestones": "1ep"}, None, "--gamma must be >= 0"),
    ({"gamma": 0.5}, None, "--gamma=0.5 applies at --milestones, which are empty"),
    ({"optimizer": "adam", "momentum": 0.5}, None, "--optimizer=adam would ignore it"),
])
def test_schedules_that_cannot_run_are_refused(changes, steps_per_epoch, message):
    with pytest.raises(ValueError, match=message):
        training.TrainingHparams(**changes).validate(steps_per_epoch)


def _model():
    return tiny_lenet(seed=2)


def test_fit_trains_records_and_does_not_redo_a_finished_run(tiny_datasets, tiny_training, tmp_path):
    model, metrics = training.fit(_model(), tiny_datasets, tiny_training, str(tmp_path), verbose=0)
    spe = tiny_datasets.steps_per_epoch
    assert metrics["end_step"] == 3 * spe and metrics["test_accuracy"] > 0.5
    with open(tmp_path / "history.csv") as f:
        history = [(int(row["step"]), float(row["val_accuracy"])) for row in csv.DictReader(f)]
    assert [step for step, _ in history] == [spe, 2 * spe, 3 * spe]  # one evaluation per epoch
    best = max(accuracy for _, accuracy in history)
    assert metrics["best_val_step"] == next(step for step, accuracy in history if accuracy == best)  # the first best
    assert metrics["best_val_accuracy"] == pytest.approx(best) and metrics["val_accuracy"] == pytest.approx(history[-1][1])
    assert {"history.csv", "metrics.json", "model.keras", "state.json"} <= set(os.listdir(tmp_path))
    assert int(model.optimizer.iterations) == 3 * spe
    mtime = os.path.getmtime(tmp_path / "metrics.json")
    _, again = training.fit(_model(), tiny_datasets, tiny_training, str(tmp_path), verbose=0)
    assert again == metrics and os.path.getmtime(tmp_path / "metrics.json") == mtime


def test_summary_reports_the_first_best_validation_step():
    history = [{"step": 12, "accuracy": 0.4, "val_accuracy": 0.5, "train_time_s": 1.0},
               {"step": 14, "accuracy": 0.6, "val_accuracy": 0.8, "train_time_s": 2.0},
               {"step": 16, "accuracy": 0.7, "val_accuracy": 0.8, "train_time_s": 0.5},
               {"step": 18, "accuracy": 0.9, "val_accuracy": 0.7, "train_time_s": 0.25}]
    assert training.summarize(history, start_step=10) == {
        "start_step": 10, "end_step": 18, "train_time_s": 3.75, "train_accuracy": 0.9,
        "val_accuracy": 0.7, "best_val_accuracy": 0.8, "best_val_step": 14}
    assert training.summarize([], start_step=10) == {"start_step": 10, "end_step": 10, "train_time_s": 0}


def test_an_interrupted_fit_resumes_to_the_same_weights(tiny_datasets, tiny_training, tmp_path):
    spe = tiny_datasets.steps_per_epoch
    reference, expected = training.fit(_model(), tiny_datasets, tiny_training, str(tmp_path / "straight"), verbose=0)
    with pytest.raises(KeyboardInterrupt):
        training.fit(_model(), tiny_datasets, tiny_training, str(tmp_path / "crashed"), verbose=0,
                     callbacks=[CrashAfter(spe + 3)])  # after one checkpoint, mid-way through the second epoch
    assert training.read_state(str(tmp_path / "crashed"))["step"] == spe
    resumed, metrics = training.fit(_model(), tiny_datasets, tiny_training, str(tmp_path / "crashed"), verbose=0)
    assert int(resumed.optimizer.iterations) == 3 * spe and metrics["end_step"] == 3 * spe
    assert metrics["test_accuracy"] == pytest.approx(expected["test_accuracy"], abs=1e-6)
    assert metrics["val_accuracy"] == pytest.approx(expected["val_accuracy"], abs=1e-6)
    for a, b in zip(reference.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _batch_norm_model():
    keras.utils.set_random_seed(4)
    inputs = keras.Input(TINY_SHAPE)
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="bn")(x))
    return keras.Model(inputs, keras.layers.Dense(TINY_CLASSES)(keras.layers.GlobalAveragePooling2D()(x)))


def test_a_resumed_fit_runs_the_fused_batch_norm_and_lean_train_function_as_the_first_run_did(
        tiny_datasets, tiny_training, tmp_path):
    # both are runtime patches a saved checkpoint does not keep: resuming without them would train on
    # other ops (slower, and off by float rounding from the uninterrupted run)
    spe = tiny_datasets.steps_per_epoch
    reference, _ = training.fit(_batch_norm_model(), tiny_datasets, tiny_training, str(tmp_path / "straight"), verbose=0)
    with pytest.raises(KeyboardInterrupt):
        training.fit(_batch_norm_model(), tiny_datasets, tiny_training, str(tmp_path / "crashed"), verbose=0,
                     callbacks=[CrashAfter(spe + 3)])
    loaded, _ = training.load_checkpoint(str(tmp_path / "crashed"))
    assert training.fused_batch_norm.is_fused(loaded.get_layer("bn")) and training.is_streamlined(loaded)
    resumed, _ = training.fit(_batch_norm_model(), tiny_datasets, tiny_training, str(tmp_path / "crashed"), verbose=0)
    assert training.uses_lean_function(resumed)
    for a, b in zip(reference.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def _train_command(root):
    return [sys.executable, "-m", "experiments.train", f"--dataset={tiny_dataset(2400)}", "--batch_size=16",
            "--validation_size=64", "--steps=6ep", "--emissions=false", f"--run_root={root}", "--run_name=r"]


@pytest.mark.slow  # kills and restarts the binary several times
def test_kill_9_at_any_point_then_the_same_command_finishes_the_same_run(tmp_path):
    env = child_env(TF_DETERMINISTIC_OPS=1)
    subprocess.run(_train_command(tmp_path / "straight"), cwd=REPO, env=env, check=True, capture_output=True)
    killed_dir = tmp_path / "killed" / "train" / "r"
    process = subprocess.Popen(_train_command(tmp_path / "killed"), cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (killed_dir / "state.json").exists():
        time.sleep(0.05)
    time.sleep(0.3)  # somewhere inside a later epoch or a checkpoint write
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed_dir / "metrics.json").exists()
    assert (killed_dir / "run.lock").exists()  # the killed process could not release it
    finished = subprocess.run(_train_command(tmp_path / "killed"), cwd=REPO, env=env, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "Took over a stale lock (process" in finished.stdout
    assert f"Resuming {killed_dir} at step" in finished.stdout and "steps left" in finished.stdout
    assert not (killed_dir / "run.lock").exists() and (killed_dir / "complete.json").exists()
    straight = files.read_json(str(tmp_path / "straight" / "train" / "r" / "metrics.json"))
    resumed = files.read_json(str(killed_dir / "metrics.json"))
    assert resumed["end_step"] == straight["end_step"]
    assert resumed["test_accuracy"] == pytest.approx(straight["test_accuracy"], abs=1e-6)
    a = keras.saving.load_model(str(tmp_path / "straight" / "train" / "r" / "model.keras"))
    b = keras.saving.load_model(str(killed_dir / "model.keras"))
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
    history = (killed_dir / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 6  # one row per epoch, none lost or duplicated


def test_train_binary_refuses_bad_flags_before_loading_data(tmp_path):
    result = subprocess.run([sys.executable, "-m", "experiments.train", "--model=resnet21", f"--run_root={tmp_path}"],
                            cwd=REPO, env=child_env(), capture_output=True, text=True)
    assert result.returncode != 0 and "Unknown model 'resnet21'" in result.stderr
    assert not any(tmp_path.iterdir())


@keras.saving.register_keras_serializable(package="tests_training")
class AutoNamed(keras.Model):
    """A subclassed model whose masks are attached in place (a .keras file leaves them out)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.flatten, self.fc = keras.layers.Flatten(), keras.layers.Dense(3)

    def call(self, x):
        return self.fc(self.flatten(x))


def test_checkpoints_keep_the_masks_attached_in_place(tmp_path):
    import keras_lottery as kl
    from keras_lottery.training import loop

    model = AutoNamed()
    model(np.zeros((1, 4, 4, 1), "float32"))
    masked = kl.mask(model)
    kl.prune(masked, kl.GlobalMagnitude(0.75))
    expected = kl.masking.read_mask(masked)
    for step in (2, 4):
        loop.save_checkpoint(masked, str(tmp_path), step, history=[])
    assert sorted(os.listdir(tmp_path)) == ["ckpt-000000004.keras", "ckpt-000000004.mask.json",
                                            "ckpt-000000004.mask.npz", "state.json"]  # older ones removed
    resumed, state = loop.load_checkpoint(str(tmp_path))
    assert state["step"] == 4 and type(resumed) is AutoNamed
    mask = kl.masking.read_mask(resumed)  # attached again, keyed by the new instance's paths
    assert [a.tolist() for a in mask.values()] == [a.tolist() for a in expected.values()]
    resumed.compile("sgd", "mse")
    resumed.fit(np.ones((4, 4, 4, 1), "float32"), np.ones((4, 3), "float32"), verbose=0)
    kernel, alive = resumed.fc.kernel.numpy(), list(mask.values())[0]
    assert np.count_nonzero(kernel) == np.count_nonzero(alive) and not np.any(kernel[~alive])  # trained masked
