r"""Iterative magnitude pruning with rewinding, and its controls, on a zoo model.

    keras-lottery imp --model=lenet_300_100 --dataset=fashion_mnist --optimizer=adam --lr=1.2e-3 \
        --batch_size=60 --steps=5ep --levels=10 --rule=layerwise --rate=0.2 --layer_rates=predictions=0.1 \
        --rewind=0 --controls=reinit

The run directory (``<run_root>/imp/<changed flags>``) holds ``hparams.json``, the rewind point,
``level_N/`` (mask, sparsity report, metrics, history, weights; controls in ``level_N/reinit`` and
``level_N/random``), ``results.csv`` (one row per trained network) and ``accuracy_vs_density.png``.
Killed at any moment, the same command continues the run; a finished run is reported, not redone; a
directory holding a run with other flags is refused, except more --levels or more controls
(--controls, --control_levels) under the same --run_name: the finished trainings are read back and only
the new ones trained.
"""

from absl import app, flags

from keras_lottery.experiments import common
from keras_lottery import cli, data, lottery, report, training
from keras_lottery.lottery import imp

cli.define_flags(data.DatasetHparams, training.ModelHparams, training.TrainingHparams, lottery.PruningHparams)
flags.DEFINE_boolean("plot", True, "Write accuracy_vs_density.png.")
flags.DEFINE_list("compare_with", [],
                  "Other IMP run directories drawn in the same plot, labelled by their rewind step.")
FLAGS = common.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    run, hparams, datasets, total = common.start(
        "imp", {"pruning": lottery.PruningHparams},
        check=lambda hp, ds: imp.check(hp, ds, compare_with=FLAGS.compare_with, plot=FLAGS.plot))
    # run_library: e.g. imp.json records other settings (RunDirectoryMismatch), a damaged file: one line
    rows = common.run_library(imp.run_experiment, run, datasets, hparams,
                              eval_every=common.eval_every(datasets.steps_per_epoch, total),
                              emissions_factory=common.emissions_factory(), plot=FLAGS.plot,
                              compare_with=FLAGS.compare_with)
    print(report.imp_table(rows))
    print(f"Wrote {imp.results_file(run.path)} (every column)")


if __name__ == "__main__":
    app.run(main)
