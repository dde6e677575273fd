r"""Layer tickets (Jordao et al.): remove the weakest residual blocks, train, compare with dense;
with ``--unit=layers,filters``, also filter tickets matched to each layer ticket (``--match``).

    keras-lottery layer_lottery --model=resnet20 --dataset=fashion_mnist \
        --criterion=grasp,random --blocks=1,2,3,4 --replicates=2
    keras-lottery layer_lottery --model=resnet20 --dataset=fashion_mnist \
        --criterion=snip,grasp --blocks=1,2,3 --unit=layers,filters --match=filters --replicates=3

Writes ``<run_root>/layer_lottery/<changed flags>/`` with the dense and ticket trainings, the block
scores, the slim tickets as ``.keras`` files, and the table (``table.csv``, ``table.json``,
``table.md``: accuracy difference, FLOPs, parameters, memory, time per epoch, speed-up, energy and
CO2, winning yes/no), which it also prints. Rerun the same command to resume. The experiment itself
is ``keras_lottery.lottery.layer_lottery``.
"""

from absl import app, flags

from keras_lottery.experiments import common
from keras_lottery import cli, data, lottery, report, training

cli.define_flags(data.DatasetHparams, training.ModelHparams, training.TrainingHparams, lottery.LayerLotteryHparams)
# The authors' recipe (SGD, momentum 0.9, Nesterov, batch 128), on a CIFAR-style ResNet.
flags.FLAGS.set_default("model", "resnet20")
flags.FLAGS.set_default("nesterov", True)
flags.FLAGS.set_default("lr", 0.01)
FLAGS = common.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    # The check builds the model once: enough removable blocks for --blocks, --rewind_epoch before the end.
    run, hparams, datasets, found = common.start("layer_lottery", groups={"lottery": lottery.LayerLotteryHparams},
                                                 check=lottery.layer_lottery.check)
    print(found.summary())
    rows = common.run_library(lottery.layer_lottery.run, run, datasets, hparams,
                              emissions_factory=common.emissions_factory())
    print(f"\n{' and '.join(hparams['lottery'].units).capitalize()} tickets ({hparams['lottery'].algorithm}), "
          f"against the dense model{' (mean ± SD over replicates)' if hparams['lottery'].replicates > 1 else ''}:\n")
    print(report.layer_lottery_table(rows))
    table = lottery.layer_lottery.table_paths(run.path)["md"]
    print(f"\nEvery column: {table} (also .csv, .json)\nTickets: {run.path}/ticket_*.keras")


if __name__ == "__main__":
    app.run(main)
