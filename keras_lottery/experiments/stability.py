r"""Instability against the rewind step k (linear mode connectivity), for a dense model or an IMP mask.

    keras-lottery stability --model=lenet_300_100 --dataset=fashion_mnist --optimizer=adam \
        --lr=1.2e-3 --batch_size=60 --steps=2ep --ks=0,25it,100it,500it [--mask=<imp run>/level_8/mask.npz]

For each k: the dense network is trained from its initialization to k (once, for all k, saving the
rewind points), the mask is applied (all ones by default; ``--mask=0=a.npz,100it=b.npz`` gives each k
its own, e.g. the masks of IMP runs rewound to each k, as in the LMC paper), and two copies are trained from theta_k
to T with data seeds --data_seeds; the train and test error along the straight line between them is
evaluated at --points values. The run directory (``<run_root>/stability/<changed flags>``) holds
``k_<k>/stability.json`` (the curves), ``results.csv`` and ``instability_vs_k.png``. Resumable like
every run directory; a directory holding other flags is refused.
"""

from absl import app, flags

from keras_lottery.experiments import common
from keras_lottery import cli, data, training
from keras_lottery.lottery import stability
from keras_lottery.lottery.hparams import StabilityHparams

cli.define_flags(data.DatasetHparams, training.ModelHparams, training.TrainingHparams, StabilityHparams)
flags.DEFINE_boolean("plot", True, "Write instability_vs_k.png.")
FLAGS = common.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    run, hparams, datasets, plan = common.start("stability", {"stability": StabilityHparams}, check=stability.check)
    common.run_library(stability.run, run, datasets, hparams,
                       eval_every=common.eval_every(datasets.steps_per_epoch, plan.total), plot=FLAGS.plot)
    print(f"Wrote {stability.results_file(run.path)}")


if __name__ == "__main__":
    app.run(main)
