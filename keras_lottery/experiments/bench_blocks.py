"""Benchmark layer tickets: training-step speed-up against FLOPs ratio, and scoring/rewriting overhead.

Part 1: for each CIFAR ResNet depth and number of removed blocks p, the dense network and its tickets
(the p lowest-scoring blocks removed) are timed in one process, interleaved round by round on the
same synthetic batch, and the median step times give the measured speed-up, printed next to the
FLOPs ratio (goal: speed-up >= 0.9 x FLOPs ratio).

Part 2: the time of find_blocks, score and remove on large networks (CIFAR ResNet-110 and
keras.applications ResNet152 at 32x32), next to the estimated time of one training epoch
(median step time x steps per epoch).

Part 3 (``--applications``): find_blocks + GraSP on one batch + remove on keras.applications models at
224x224 (docs/blocks.md: ConvNeXtTiny and EfficientNetV2B0).
The measurement is ``keras_lottery.benchmarks.blocks.run``.

    keras-lottery bench_blocks --plan="32:1,3,4;56:3,5,12" --overhead=resnet110,resnet152
    keras-lottery bench_blocks --plan= --overhead= --applications=ConvNeXtTiny,EfficientNetV2B0
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.stdout.reconfigure(line_buffering=True)  # table rows appear as they are measured, even in a pipe

from absl import app, flags  # noqa: E402

from keras_lottery.benchmarks import blocks  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("plan", blocks.DEFAULT_PLAN, "depth:p,p,...;depth:p,... (CIFAR ResNet depths, blocks removed).")
flags.DEFINE_string("overhead", "resnet110,resnet152", "Models for the scoring/rewriting overhead: resnet<depth> "
                    "(CIFAR zoo) or resnet152 (keras.applications.ResNet152 at 32x32). Empty to skip.")
flags.DEFINE_string("criterion", "grasp", "Block criterion used to choose which blocks to remove.")
flags.DEFINE_integer("batch_size", 128, "Training and scoring batch size.")
flags.DEFINE_integer("score_batches", 4, "Batches given to the criterion (like train_ds.take(4)).")
flags.DEFINE_integer("rounds", 5, "Interleaved timing rounds (medians are taken over rounds).")
flags.DEFINE_integer("steps_per_round", 3, "Training steps per model per round.")
flags.DEFINE_integer("warmup", 2, "Untimed warm-up steps per model.")
flags.DEFINE_integer("epoch_examples", 50000, "Examples in one epoch, for the epoch-time estimate (CIFAR-10).")
flags.DEFINE_integer("seed", 0, "Initialization and synthetic data seed.")
flags.DEFINE_boolean("jit_compile", False, "Compile the training steps with XLA.")
flags.DEFINE_list("applications", [], "keras.applications models timed at full size: find_blocks, score "
                  "(one batch) and remove, e.g. ConvNeXtTiny,EfficientNetV2B0.")
flags.DEFINE_integer("application_size", 224, "Input side of the --applications models.")
flags.DEFINE_integer("application_batch", 16, "Images in the one scoring batch of the --applications models.")
flags.DEFINE_string("output", "", "Optional JSON file for the results.")


def main(argv):
    del argv
    overhead = [name for name in FLAGS.overhead.split(",") if name]
    try:
        plan = blocks.parse_plan(FLAGS.plan)
        blocks.validate(overhead)
        blocks.validate_applications(FLAGS.applications)
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    results = blocks.run(plan=plan, overhead_models=overhead, criterion=FLAGS.criterion, batch_size=FLAGS.batch_size,
                         score_batches=FLAGS.score_batches, rounds=FLAGS.rounds, steps_per_round=FLAGS.steps_per_round,
                         warmup=FLAGS.warmup, epoch_examples=FLAGS.epoch_examples, seed=FLAGS.seed,
                         jit_compile=FLAGS.jit_compile, applications=FLAGS.applications,
                         application_size=FLAGS.application_size, application_batch=FLAGS.application_batch)
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    app.run(main)
