"""Iterative magnitude pruning with rewinding, and its controls, on a zoo model.

    python -m experiments.imp --model=lenet_300_100 --dataset=fashion_mnist --optimizer=adam --lr=1.2e-3 \
        --batch_size=60 --steps=5ep --levels=10 --rule=layerwise --rate=0.2 --layer_rates=predictions=0.1 \
        --rewind=0 --controls=reinit

The run directory (``<run_root>/imp/<changed flags>``) holds ``hparams.json``, the rewind point,
``level_N/`` (mask, sparsity report, metrics, history, weights; controls in ``level_N/reinit`` and
``level_N/random``), ``results.csv`` (one row per trained network) and ``accuracy_vs_density.png``.
Killed at any moment, the same command continues the run; a finished run is reported, not redone; a
directory holding a run with other flags is refused.
"""

import os
import sys

from absl import app, flags

from experiments import common
from keras_lottery import data, lottery, models, runs, training

runs.define_flags(data.DatasetHparams, training.ModelHparams, training.TrainingHparams, lottery.PruningHparams)
flags.DEFINE_boolean("plot", True, "Write accuracy_vs_density.png.")
flags.DEFINE_list("compare_with", [],
                  "Other IMP run directories drawn in the same plot, labelled by their rewind step.")
FLAGS = common.FLAGS

COLUMNS = ("level", "kind", "density", "test_accuracy", "val_accuracy", "best_val_accuracy", "best_val_iteration",
           "train_time_s", "emissions_energy_kwh", "emissions_emissions_kg")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        hparams = common.hparams_from_flags(pruning=lottery.PruningHparams)
        run = runs.RunDirectory(FLAGS.run_root, "imp", hparams, name=FLAGS.run_name or None)
        run.check()
        for other in FLAGS.compare_with:
            if not os.path.exists(os.path.join(other, lottery.imp.RECORD)):
                raise ValueError(f"--compare_with={other!r} is not an IMP run directory (no {lottery.imp.RECORD}).")
    except (ValueError, runs.RunDirectoryMismatch) as error:
        sys.exit(f"error: {error}")
    run = common.distribute(run, hparams["dataset"].batch_size)  # --strategy, --mixed_precision, --jit_compile
    datasets = data.load(hparams["dataset"], data_seed=hparams["training"].data_seed)
    model_hp = hparams["model"]

    def build_model(seed):
        return models.get(model_hp.model, datasets.input_shape, datasets.classes, seed=seed)

    total = training.total_steps(hparams["training"], datasets.steps_per_epoch)
    try:
        k = lottery.imp.rewind_step(hparams["pruning"], datasets.steps_per_epoch, total)
        lottery.imp.check_rule(build_model, hparams["pruning"], model_hp.model_seed)
    except ValueError as error:
        sys.exit(f"error: {error}")
    run.prepare()
    print(f"Run directory: {run.path}\nData: {datasets.describe()}\nT = {total} steps, rewind k = {k}, "
          f"{hparams['pruning'].levels} levels, mode {hparams['pruning'].mode}")
    if os.path.exists(run.file("results.csv")) and len(lottery.imp.results(run.path)) > 0:
        print("Continuing or reporting an existing run.")
    emissions = common.emissions_callback if FLAGS.emissions else None
    try:
        rows = lottery.imp.run(run.path, build_model, datasets, hparams["training"], hparams["pruning"],
                               model_seed=model_hp.model_seed,
                               eval_every=common.eval_every(datasets.steps_per_epoch, total),
                               emissions=emissions, verbose=0)
    except (ValueError, runs.RunDirectoryMismatch) as error:
        sys.exit(f"error: {error}")
    lottery.imp.write_csv(rows, run.file("results.csv"))
    if FLAGS.plot:
        title = (f"{model_hp.model} on {hparams['dataset'].dataset}: IMP, rewind {hparams['pruning'].rewind}, "
                 f"mode {hparams['pruning'].mode}")
        series = {f"k={k}": rows} if FLAGS.compare_with else rows
        for other in FLAGS.compare_with:
            record = runs.read_json(os.path.join(other, lottery.imp.RECORD))
            series[f"k={record['k']}"] = lottery.imp.results(other)
        if FLAGS.compare_with:
            title = f"{model_hp.model} on {hparams['dataset'].dataset}: IMP, mode {hparams['pruning'].mode}"
        lottery.plots.accuracy_vs_density(series, run.file("accuracy_vs_density.png"), title=title)
    common.print_table(rows, [c for c in COLUMNS if any(c in r for r in rows)])
    print(f"Wrote {run.file('results.csv')}")


if __name__ == "__main__":
    app.run(main)
