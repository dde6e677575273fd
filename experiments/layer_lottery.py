"""Layer tickets (Jordao et al.): remove the weakest residual blocks, train, compare with dense.

    python -m experiments.layer_lottery --model=resnet20 --dataset=fashion_mnist \
        --criterion=grasp,random --blocks=1,2,3,4 --replicates=2

Writes ``<run_root>/layer_lottery/<changed flags>/`` with the dense and ticket trainings, the block
scores, the slim tickets as ``.keras`` files, and the table (``table.csv``, ``table.json``,
``table.md``: accuracy difference, FLOPs, parameters, memory, time per epoch, speed-up, energy and
CO2, winning yes/no), which it also prints. Rerun the same command to resume.
"""

import sys

from absl import app, flags

from experiments import common
from keras_lottery import data, runs, training
from keras_lottery.blocks import lottery

runs.define_flags(data.DatasetHparams, training.ModelHparams, training.TrainingHparams, lottery.LayerLotteryHparams)
# The authors' recipe (SGD, momentum 0.9, Nesterov, batch 128), on a CIFAR-style ResNet.
flags.FLAGS.set_default("model", "resnet20")
flags.FLAGS.set_default("nesterov", True)
flags.FLAGS.set_default("lr", 0.01)
FLAGS = common.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        hparams = common.hparams_from_flags(lottery=lottery.LayerLotteryHparams)
        run = runs.RunDirectory(FLAGS.run_root, "layer_lottery", hparams, name=FLAGS.run_name or None)
        run.check()
        run = common.distribute(run, hparams["dataset"].batch_size)  # --strategy, --mixed_precision, --jit_compile
        datasets = data.load(hparams["dataset"], data_seed=hparams["training"].data_seed)
        found = lottery.check_model(hparams["model"], datasets.input_shape, datasets.classes, hparams["lottery"])
    except (ValueError, data.DatasetNotFoundError) as error:  # RunDirectoryMismatch is a ValueError
        sys.exit(f"error: {error}")
    run.prepare()
    print(f"Run directory: {run.path}\nData: {datasets.describe()}\n{found.summary()}")
    rows = lottery.run(run.path, datasets, hparams["model"], hparams["training"], hparams["lottery"],
                       emissions_factory=common.emissions_callback if FLAGS.emissions else None)
    print(f"\nLayer tickets ({hparams['lottery'].algorithm}), differences against the dense model:\n")
    print(lottery.markdown_table(rows))
    print(f"Table: {run.file('table.md')} (also .csv, .json); tickets: {run.path}/ticket_*.keras")


if __name__ == "__main__":
    app.run(main)
