"""The ``train`` experiment: a zoo model trained on a dataset into a run directory (resumable)."""

import os

from keras_lottery import models, runs
from keras_lottery.training.loop import fit
from keras_lottery.training.optimizers import total_steps

__all__ = ["check", "check_model", "run"]


def check_model(model_hparams, datasets):
    """Builds the zoo model once for the data's input shape and classes; returns it.

    Raises ValueError (one line, naming the model and the input shape) when the model cannot be built
    for this input, e.g. more pooling stages than the image has pixels.
    """
    try:
        return models.get(model_hparams.model, datasets.input_shape, datasets.classes, seed=model_hparams.model_seed)
    except ValueError as error:
        # Keras' message: "Exception encountered when calling X.call().", then the reason, then the arguments.
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        reason = " ".join(line for line in lines[:2] if not line.startswith("Arguments received"))[:300]
        raise ValueError(f"--model={model_hparams.model} cannot be built for inputs of shape {datasets.input_shape} "
                         f"(too deep for images this small?): {reason}") from None


def check(hparams, datasets):
    """The checks every experiment that trains ``hparams["model"]`` needs once the data is known.

    The schedule (``TrainingHparams.validate(steps_per_epoch)``: at least one step, warm-up and
    milestones within training) and the model (built once, :func:`check_model`). Raises ValueError
    before anything is written; returns T, the training length in steps.
    """
    hparams["training"].validate(datasets.steps_per_epoch)
    check_model(hparams["model"], datasets)
    return total_steps(hparams["training"], datasets.steps_per_epoch)


def run(run_dir, datasets, hparams, *, eval_every=None, emissions_factory=None, verbose="auto"):
    """Trains ``hparams["model"]`` on ``datasets`` with ``hparams["training"]`` into ``run_dir``; returns the metrics.

    Args:
      run_dir: a prepared ``keras_lottery.runs.RunDirectory`` (its directory is the training directory).
      datasets: ``keras_lottery.data.Datasets``.
      hparams: ``{"model": ModelHparams, "training": TrainingHparams, ...}``.
      eval_every: validate and checkpoint every this many steps (one epoch when None).
      emissions_factory: a function returning a fresh ``Emissions`` callback, or None for no tracking.

    A finished run is not retrained: its metrics are returned. The run's completion marker
    (``runs.COMPLETE``) is written last.
    """
    model_hp = hparams["model"]
    total_steps(hparams["training"], datasets.steps_per_epoch)  # raises on a schedule the data cannot run
    model = models.get(model_hp.model, datasets.input_shape, datasets.classes, seed=model_hp.model_seed)
    directory = os.fspath(getattr(run_dir, "path", run_dir))
    _, metrics = fit(model, datasets, hparams["training"], directory, eval_every=eval_every,
                     emissions=emissions_factory() if emissions_factory else None, verbose=verbose)
    runs.mark_complete(directory, "train", test_accuracy=metrics.get("test_accuracy"))
    return metrics
