"""Robustness of tickets against their dense model: common corruptions, a shifted test set, FGSM and PGD.

    keras-lottery robustness --runs=runs/layer_lottery/<run> --test_subset=1000 --attack_subset=500
    keras-lottery robustness --runs=runs/imp/a,runs/imp/b,runs/imp/c --levels=3,6 ...
    keras-lottery robustness --runs=dense.keras,ticket.keras --dataset=fashion_mnist

--runs takes one layer-lottery run directory (the dense model and every ticket of each replicate),
IMP run directories (one per replicate: level 0 is the dense model; --levels chooses the others, with
their controls) or .keras files (the first is the reference). The data settings are read from the
runs (the same normalization the models were trained with). Writes
``<run_root>/robustness/<changed flags>/``: ``models/<id>.json`` per model, ``table.*`` (one row per
model, differences against the dense model of its replicate), ``summary.*`` (mean and spread over
replicates), ``accuracy_vs_severity.png`` and ``accuracy_vs_epsilon.png``. Corrupted test images are
cached once per test set under ``<run_root>/corruptions/``. Rerun the same command to resume. The
experiment itself is ``keras_lottery.robustness.evaluate``.
"""

from absl import app, flags

from keras_lottery.experiments import common
from keras_lottery import cli, data, report, robustness, runs
from keras_lottery.robustness import RobustnessHparams

cli.define_flags(data.DatasetHparams, RobustnessHparams)
flags.FLAGS.set_default("emissions", False)
FLAGS = common.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:  # the settings, then the models: both before anything is loaded or written
        settings = cli.from_flags(RobustnessHparams)
        settings.validate()
        found = robustness.inventory.find(settings.run_list, settings.level_list)
    except ValueError as error:
        common.fail(error)
    for name, value in robustness.inventory.dataset_flags(found, FLAGS).items():
        FLAGS[name].value = value  # the runs' data settings, unless the command gives them
    run, hparams, datasets, checked = common.start(
        "robustness", {"robustness": RobustnessHparams}, standard=("dataset",),
        check=lambda hp, ds: robustness.evaluate.check(hp, ds, found))
    cache = runs.corruption_cache(FLAGS.run_root, hparams["dataset"].dataset)
    rows, summary = common.run_library(robustness.evaluate.run, run, datasets, hparams, found, checked, cache)
    print(f"\nRobustness ({found.kind}, {len(rows)} models), mean ± std over replicates:\n")
    print(report.robustness_table(summary))
    print(f"\nEvery column (each corruption, attacks): {run.path}/table.md, summary.md (also .csv, .json); "
          f"plots: {run.path}/*.png")


if __name__ == "__main__":
    app.run(main)
