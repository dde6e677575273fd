r"""Trains a zoo model on a dataset and writes a run directory.

    keras-lottery train --model=lenet_300_100 --dataset=fashion_mnist --optimizer=adam \
        --lr=1.2e-3 --batch_size=60 --steps=2ep

The run directory (``<run_root>/train/<changed flags>``) holds ``hparams.json``, checkpoints,
``history.csv`` and ``metrics.json``. Run the same command again after a crash to resume; a finished
run is reported, not redone.
"""

from absl import app

from keras_lottery.experiments import common
from keras_lottery import cli, data, training

cli.define_flags(data.DatasetHparams, training.ModelHparams, training.TrainingHparams)
FLAGS = common.FLAGS
COLUMNS = ("end_step", "test_accuracy", "val_accuracy", "best_val_accuracy", "best_val_step", "train_time_s",
           "emissions_energy_kwh", "emissions_emissions_kg")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    run, hparams, datasets, total = common.start("train")  # checks the schedule and the model; returns T
    if run.finished:
        print("This run is finished; its results:")
    metrics = common.run_library(training.run, run, datasets, hparams,
                                 eval_every=common.eval_every(datasets.steps_per_epoch, total),
                                 emissions_factory=common.emissions_factory())
    common.print_table([metrics], [k for k in COLUMNS if k in metrics])


if __name__ == "__main__":
    app.run(main)
