"""The ``train`` experiment: a zoo model trained on a dataset into a run directory (resumable)."""

from keras_lottery import models
from keras_lottery.training.loop import fit
from keras_lottery.training.optimizers import total_steps

__all__ = ["run"]


def run(run_dir, datasets, hparams, *, eval_every=None, emissions_factory=None, verbose="auto"):
    """Trains ``hparams["model"]`` on ``datasets`` with ``hparams["training"]`` into ``run_dir``; returns the metrics.

    Args:
      run_dir: a prepared ``keras_lottery.runs.RunDirectory`` (its directory is the training directory).
      datasets: ``keras_lottery.data.Datasets``.
      hparams: ``{"model": ModelHparams, "training": TrainingHparams, ...}``.
      eval_every: validate and checkpoint every this many steps (one epoch when None).
      emissions_factory: a function returning a fresh ``Emissions`` callback, or None for no tracking.

    A finished run is not retrained: its metrics are returned.
    """
    model_hp = hparams["model"]
    total_steps(hparams["training"], datasets.steps_per_epoch)  # raises on a schedule the data cannot run
    model = models.get(model_hp.model, datasets.input_shape, datasets.classes, seed=model_hp.model_seed)
    _, metrics = fit(model, datasets, hparams["training"], run_dir.path, eval_every=eval_every,
                     emissions=emissions_factory() if emissions_factory else None, verbose=verbose)
    return metrics
