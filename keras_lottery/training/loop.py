"""A resumable ``model.fit``: checkpoints in a directory, survives ``kill -9``, never redoes a run.

Training runs from ``start_step`` to ``end_step`` in chunks of ``eval_every`` iterations (one epoch by
default). After each chunk the model (weights, masks, optimizer state) is saved as
``ckpt-<step>.keras`` and then ``state.json`` is replaced atomically to point at it, with the history
so far; older checkpoints are deleted only after that. So a process killed at any instant leaves a
``state.json`` naming a complete checkpoint, and the same call continues from it, feeding the data
stream from the same step. When training ends, the test split is evaluated and ``metrics.json`` is
written last: its presence marks the run finished, and calling again returns it without training.

Under a distribution strategy (call ``fit`` inside its scope), the batch size of ``datasets`` is the
global batch, split across the replicas. In a multi-worker run only the chief writes ``directory``;
every other worker works in a private copy of it (``keras_lottery.distribute.worker_directory``),
so a restarted run resumes on every worker from the chief's last checkpoint.
"""

import glob
import math
import os
import sys
import time

import keras

from keras_lottery import attached, compat, distribute, files, masking, runs
from keras_lottery.masks import Mask
from keras_lottery.training.divergence import StopOnDivergence
from keras_lottery.training.optimizers import compile_for_classification, total_steps, train_fast

# The files of a training directory, named by keras_lottery.runs.
STATE, METRICS, HISTORY, FINAL_MODEL = runs.STATE, runs.METRICS, runs.HISTORY, runs.FINAL_MODEL


class _Progress(keras.callbacks.Callback):
    """Tracks the step, stops at ``end_step``, times the training part of each chunk, checkpoints.

    The step is the optimizer's iteration count plus the offset between the data position and that
    count when training begins (0 unless the caller set them apart). Reading the count is a device
    read (a host sync), so it is read only when it matters: at each chunk's end, and at a batch end
    once the count could have reached ``end_step`` (it grows by at most ``steps_per_execution`` per
    batch callback, and by less when a loss-scale optimizer skips a step), so the stop is exact.
    """

    def __init__(self, directory, step, end_step, history, extra_state):
        super().__init__()
        self.directory = directory
        self.step = step
        self.end_step = end_step
        self.history = history
        self.extra_state = extra_state
        self._chunk_start = None
        self._train_time = 0.0
        self._offset = 0
        self._bound = step  # no less than the true step

    def _iterations(self):
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def _read(self):
        self.step = self._bound = self._iterations() + self._offset

    def on_train_begin(self, logs=None):
        self._offset = self.step - self._iterations()
        self._bound = self.step

    def on_epoch_begin(self, epoch, logs=None):
        self._chunk_start = time.perf_counter()
        self._train_time = 0.0

    def on_train_batch_end(self, batch, logs=None):
        self._bound += compat.steps_per_execution(self.model)
        if self._bound >= self.end_step:
            self._read()
        self._train_time = time.perf_counter() - self._chunk_start
        if self.step >= self.end_step:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        self._read()
        row = {"step": self.step, "train_time_s": round(self._train_time, 4)}
        row.update({key: float(value) for key, value in (logs or {}).items()})
        self.history.append(row)
        save_checkpoint(self.model, self.directory, self.step, self.history, self.extra_state)


def save_checkpoint(model, directory, step, history, extra_state=None):
    """Saves ``model`` at ``step`` and points ``state.json`` at it (atomically), then prunes old ones."""
    name = f"ckpt-{step:09d}.keras"
    save_model(model, os.path.join(directory, name))
    state = {"step": step, "checkpoint": name, "history": history}
    state.update(extra_state or {})
    files.write_json(os.path.join(directory, STATE), state)
    current = name.removesuffix(".keras") + "."  # the checkpoint and its attached-mask files (npz + json report)
    for pattern in (runs.CHECKPOINT_GLOB, "tmp-*", "ckpt-*.mask.*"):
        for old in glob.glob(os.path.join(directory, pattern)):
            if not os.path.basename(old).startswith(current):
                os.remove(old)


def save_model(model, path):
    """Saves ``model`` at ``path`` (``.keras``, atomically), and first the masks attached in place to its layers
    (:mod:`keras_lottery.attached`: a subclassed or KerasHub model's), which the ``.keras`` file leaves out,
    in ``runs.attached_mask_file(path)``; :func:`load_model` attaches them again."""
    mask_path = runs.attached_mask_file(path)
    if attached.attached_holders(model):
        masking.read_mask(model).save(mask_path)
    elif os.path.exists(mask_path):  # an earlier model's at the same path: it must not be installed in this one
        os.remove(mask_path)
    with files.atomic(path) as tmp:
        model.save(tmp)


def load_model(path):
    """The model saved by :func:`save_model` at ``path``, with its attached masks installed again (as plain
    ``MaskedLayer`` holders: no forward multiply, no re-application after each step)."""
    model = keras.saving.load_model(path)
    mask_path = runs.attached_mask_file(path)
    if os.path.exists(mask_path):
        masking.attach_saved_mask(model, Mask.load(mask_path))
    return model


def _retrain_advice(directory):
    return (f"Delete {os.path.join(directory, STATE)} and run the same command again to retrain {directory} from its "
            "start (every finished training is kept), or start a new run with another --run_name.")


def read_state(directory):
    """The saved ``state.json`` of a directory, or None; ``DamagedFileError`` when it cannot be read."""
    path = os.path.join(directory, STATE)
    state = files.read_json(path, advice=_retrain_advice(directory))
    if state is not None and not (isinstance(state, dict) and {"step", "checkpoint", "history"} <= set(state)):
        raise files.DamagedFileError(path, "not a training state", _retrain_advice(directory))
    return state


def load_checkpoint(directory):
    """The model saved by the latest complete checkpoint of ``directory`` (compiled, and set up to train as
    :func:`~keras_lottery.training.optimizers.compile_for_classification` sets a model up: fused batch norm,
    lean train function), and its state. A resumed training thus runs the same ops as an uninterrupted one."""
    state = read_state(directory)
    if state is None:
        raise FileNotFoundError(f"No checkpoint in {directory} (no {STATE}).")
    path = os.path.join(directory, state["checkpoint"])
    if not os.path.isfile(path):
        raise files.DamagedFileError(path, f"missing, although {STATE} names it", _retrain_advice(directory))
    with files.guard(path, _retrain_advice(directory)):
        model = load_model(path)
    return train_fast(model), state


def load_final_model(directory):
    """The trained model (``model.keras``) of a finished training directory; ``DamagedFileError`` if unreadable."""
    path = os.path.join(directory, FINAL_MODEL)
    advice = (f"Delete it and {os.path.join(directory, METRICS)}, then run the same command again: both are "
              "recomputed from the last checkpoint.")
    if not os.path.isfile(path):
        raise files.DamagedFileError(path, f"missing, although {METRICS} marks the training finished", advice)
    with files.guard(path, advice):
        return load_model(path)


def _write_history(directory, history):
    files.write_csv(os.path.join(directory, HISTORY), history)


def fit(model, datasets, hparams, directory, *, start_step=0, end_step=None, eval_every=None,
        callbacks=(), compile_model=True, emissions=None, verbose="auto", final_metrics=None, log=print,
        stop_on_divergence=True):
    """Trains ``model`` on ``datasets`` with ``hparams`` (a ``TrainingHparams``), resumably.

    Args:
      model: the model to train; ignored in favour of the checkpoint when ``directory`` holds one.
      datasets: a ``keras_lottery.data.Datasets``.
      hparams: a ``TrainingHparams`` (optimizer, schedule, length T, data seed is in ``datasets``).
      directory: where checkpoints, ``history.csv`` and ``metrics.json`` go.
      start_step: the data position and step count training begins at (k when rewinding). The
        optimizer's own iteration count drives the learning-rate schedule; set it to match.
      end_step: the step training stops at; ``hparams.steps`` by default.
      eval_every: validation and checkpoint interval in iterations; one epoch by default.
      callbacks: more Keras callbacks for ``fit``.
      compile_model: compile ``model`` with a fresh optimizer first; pass False when the caller has
        compiled it (with a restored optimizer, for instance).
      emissions: an ``Emissions`` callback, or None for no energy tracking.
      verbose: Keras' verbosity; ``"auto"`` shows the progress bar on a terminal, one line per
        chunk otherwise.
      final_metrics: a function ``model -> dict`` adding entries to ``metrics.json``.
      log: receives one line when training resumes from a checkpoint (where, and how much is left);
        None for silence.
      stop_on_divergence: raise ``keras_lottery.callbacks.DivergenceError`` at the first non-finite
        loss (any batch) or weight (each chunk's end, before its checkpoint is saved): nothing after
        is written (no ``metrics.json``), and the directory keeps its last finite checkpoint.

    Returns:
      ``(model, metrics)``: the trained model and the dict written to ``metrics.json``, which holds
      the final test and validation accuracy, the best validation accuracy and its step, the
      measured training time, and energy / CO2 when tracked.
    """
    distribute.check_global_batch(datasets.hparams.batch_size)
    directory = distribute.worker_directory(directory)  # the chief's own; a private copy on other workers
    os.makedirs(directory, exist_ok=True)
    metrics_path = os.path.join(directory, METRICS)
    spe = datasets.steps_per_epoch
    end_step = total_steps(hparams, spe) if end_step is None else int(end_step)
    chunk = int(eval_every or spe)
    if chunk < 1 or end_step <= start_step:
        raise ValueError(f"Nothing to train: start_step={start_step}, end_step={end_step}, eval_every={chunk}.")
    if os.path.exists(metrics_path):  # finished: report, do not redo
        metrics = files.read_json(metrics_path, advice=f"Delete it and run the same command again: it is recomputed "
                                                       f"from the last checkpoint of {directory}.")
        return load_final_model(directory), metrics

    state = read_state(directory)
    if state is not None:
        model, state = load_checkpoint(directory)
        step, history = state["step"], state["history"]
        extra = {key: state[key] for key in ("emissions", "end_step") if key in state}
        if log is not None:
            log(f"Resuming {directory} at step {step} (checkpoint {state['checkpoint']}): "
                f"{max(end_step - step, 0)} of {end_step - start_step} steps left.")
    else:
        if compile_model:
            compile_for_classification(model, hparams, spe)
        step, history, extra = start_step, [], {}

    if step < end_step:
        extra["end_step"] = end_step  # recorded in state.json, so a progress report can say what is left
        progress = _Progress(directory, step, end_step, history, extra)
        guard = [StopOnDivergence(directory=directory)] if stop_on_divergence else []  # before the checkpoint
        fit_callbacks = [*guard, progress, *callbacks] + ([emissions] if emissions is not None else [])
        has_validation = len(datasets.x_val) > 0
        model.fit(
            datasets.train(start_step=step),
            steps_per_epoch=chunk,
            epochs=math.ceil((end_step - start_step) / chunk),
            initial_epoch=(step - start_step) // chunk,
            validation_data=datasets.validation() if has_validation else None,
            callbacks=fit_callbacks,
            verbose=(1 if sys.stdout.isatty() else 2) if verbose == "auto" else verbose,
            shuffle=False,  # the stream is already in its seeded order
        )
        if emissions is not None and emissions.result:
            previous = extra.get("emissions", {"energy_kwh": 0.0, "emissions_kg": 0.0, "duration_s": 0.0})
            extra["emissions"] = {key: previous.get(key, 0.0) + emissions.result[key]
                                  for key in ("energy_kwh", "emissions_kg", "duration_s")}
            extra["emissions"]["country"] = emissions.result["country"]
            save_checkpoint(model, directory, progress.step, history, extra)

    test_loss, test_accuracy = model.evaluate(datasets.test(), verbose=0)[:2]
    metrics = summarize(history, start_step)
    metrics.update({"test_loss": float(test_loss), "test_accuracy": float(test_accuracy),
                    "steps_per_epoch": spe})
    if "emissions" in extra:
        metrics.update({f"emissions_{key}" if key != "country" else "emissions_country": value
                        for key, value in extra["emissions"].items()})
    if final_metrics:
        metrics.update(final_metrics(model))
    _write_history(directory, history)
    save_model(model, os.path.join(directory, FINAL_MODEL))
    files.write_json(metrics_path, metrics)
    return model, metrics


def summarize(history, start_step=0):
    """Final and best validation accuracy (with the step it occurred at) and time from a history."""
    metrics = {"start_step": start_step, "end_step": history[-1]["step"] if history else start_step,
               "train_time_s": round(sum(row.get("train_time_s", 0.0) for row in history), 3)}
    if history and "accuracy" in history[-1]:
        metrics["train_accuracy"] = history[-1]["accuracy"]
    with_val = [row for row in history if "val_accuracy" in row]
    if with_val:
        best = max(with_val, key=lambda row: row["val_accuracy"])  # first maximum: the earliest step
        metrics.update({"val_accuracy": with_val[-1]["val_accuracy"], "best_val_accuracy": best["val_accuracy"],
                        "best_val_step": best["step"]})
    return metrics
