"""Trains a zoo model on a dataset and writes a run directory.

    python -m experiments.train --model=lenet_300_100 --dataset=fashion_mnist --optimizer=adam \
        --lr=1.2e-3 --batch_size=60 --steps=2ep

The run directory (``<run_root>/train/<changed flags>``) holds ``hparams.json``, checkpoints,
``history.csv`` and ``metrics.json``. Run the same command again after a crash to resume; a finished
run is reported, not redone.
"""

import sys

from absl import app

from experiments import common
from keras_lottery import data, models, runs, training

runs.define_flags(data.DatasetHparams, training.ModelHparams, training.TrainingHparams)
FLAGS = common.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        hparams = common.hparams_from_flags()
        run = runs.RunDirectory(FLAGS.run_root, "train", hparams, name=FLAGS.run_name or None)
        run.check()
        run = common.distribute(run, hparams["dataset"].batch_size)  # --strategy, --mixed_precision, --jit_compile
        datasets = data.load(hparams["dataset"], data_seed=hparams["training"].data_seed)
        total = training.total_steps(hparams["training"], datasets.steps_per_epoch)
    except (ValueError, data.DatasetNotFoundError) as error:  # RunDirectoryMismatch is a ValueError
        sys.exit(f"error: {error}")
    run.prepare()
    print(f"Run directory: {run.path}\nData: {datasets.describe()}")
    if run.finished:
        print("This run is finished; its results:")
    model = models.get(hparams["model"].model, datasets.input_shape, datasets.classes, seed=hparams["model"].model_seed)
    _, metrics = training.fit(model, datasets, hparams["training"], run.path,
                              eval_every=common.eval_every(datasets.steps_per_epoch, total),
                              emissions=common.emissions_callback())
    common.print_table([metrics], [k for k in ("end_step", "test_accuracy", "val_accuracy", "best_val_accuracy",
                                               "best_val_step", "train_time_s", "emissions_energy_kwh",
                                               "emissions_emissions_kg") if k in metrics])


if __name__ == "__main__":
    app.run(main)
