"""Benchmark layer tickets against filter tickets at matched FLOPs: training-step time and the serving
latency of their exported SavedModels (batch 1 and 128), each as speed-up / FLOPs ratio.

    keras-lottery bench_units --depth=20 --p=1,3 --criterion=snip --channel_multiples=1,8

The measurement is ``keras_lottery.benchmarks.units.run``; results in docs/filter_tickets.md.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.stdout.reconfigure(line_buffering=True)  # table rows appear as they are measured, even in a pipe

from absl import app, flags  # noqa: E402

from keras_lottery import filters  # noqa: E402
from keras_lottery.benchmarks import units  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("depth", 20, "CIFAR ResNet depth (6n+2).")
flags.DEFINE_list("p", ["1", "3"], "Numbers of blocks the layer tickets remove (filter tickets match their FLOPs).")
flags.DEFINE_string("criterion", "snip", "Criterion scoring blocks and channels at initialization.")
flags.DEFINE_integer("batch_size", 128, "Training batch size.")
flags.DEFINE_list("latency_batches", ["1", "128"], "Batch sizes of the serving-latency measurement.")
flags.DEFINE_integer("rounds", 5, "Interleaved timing rounds (medians over rounds).")
flags.DEFINE_integer("steps_per_round", 3, "Calls per model per round.")
flags.DEFINE_list("channel_multiples", ["1", "8"], "One filter ticket per value: every channel group keeps a "
                  "multiple of this many channels (1: any count).")
flags.DEFINE_integer("seed", 0, "Initialization and synthetic data seed.")
flags.DEFINE_string("output", "", "Optional JSON file for the rows.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        ps = [int(p) for p in FLAGS.p]
        batches = [int(b) for b in FLAGS.latency_batches]
        multiples = [int(m) for m in FLAGS.channel_multiples]
    except ValueError as error:
        raise app.UsageError(f"--p, --latency_batches and --channel_multiples take integers: {error}") from error
    if not multiples or min(multiples) < 1:
        raise app.UsageError("--channel_multiples takes integers >= 1.")
    if FLAGS.criterion not in filters.CRITERIA or (FLAGS.depth - 2) % 6 or FLAGS.depth < 8 or min(ps) < 1:
        raise app.UsageError(f"--criterion must be one of {', '.join(filters.CRITERIA)}, --depth 6n+2 >= 8, --p >= 1.")
    rows = units.run(depth=FLAGS.depth, ps=ps, criterion=FLAGS.criterion, batch_size=FLAGS.batch_size,
                     latency_batches=batches, rounds=FLAGS.rounds, steps_per_round=FLAGS.steps_per_round,
                     seed=FLAGS.seed, channel_multiples=multiples)
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    app.run(main)
