"""Benchmark layer tickets: training-step speed-up against FLOPs ratio, and scoring/rewriting overhead.

Part 1: for each CIFAR ResNet depth and number of removed blocks p, the dense network and its tickets
(the p lowest-scoring blocks removed) are timed in one process, interleaved round by round on the
same synthetic batch, and the median step times give the measured speed-up, printed next to the
FLOPs ratio (goal: speed-up >= 0.9 x FLOPs ratio).

Part 2: the time of find_blocks, score and remove on large networks (CIFAR ResNet-110 and
keras.applications ResNet152 at 32x32), next to the estimated time of one training epoch
(median step time x steps per epoch).

    python -m experiments.bench_blocks --plan="32:1,3,4;56:3,5,12" --overhead=resnet110,resnet152
"""

import json
import math
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("plan", "32:1,3,4;56:3,5,12", "depth:p,p,...;depth:p,... (CIFAR ResNet depths, blocks removed).")
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
flags.DEFINE_string("output", "", "Optional JSON file for the results.")


def _parse_plan(plan):
    result = []
    for part in filter(None, plan.split(";")):
        try:
            depth, ps = part.split(":")
            result.append((int(depth), [int(p) for p in ps.split(",") if p]))
        except ValueError as error:
            raise app.UsageError(f"--plan must look like '32:1,3,4;56:3,5,12', got {plan!r}.") from error
    return result


def _synthetic(batch_size, seed, shape=(32, 32, 3), classes=10):
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch_size,) + shape).astype("float32"), rng.integers(0, classes, size=batch_size)


def _build(name, seed):
    import keras

    import keras_lottery as kl

    if name == "resnet152":
        keras.utils.set_random_seed(seed)
        return keras.applications.ResNet152(weights=None, input_shape=(32, 32, 3), classes=10,
                                            classifier_activation=None)
    if name.startswith("resnet") and name[len("resnet"):].isdigit():
        return kl.models.resnet_cifar(int(name[len("resnet"):]), seed=seed)
    raise app.UsageError(f"Unknown model {name!r} in --overhead; accepted: resnet<6n+2> or resnet152.")


def speed(depth, ps, batches, x, y):
    import keras_lottery as kl

    dense = kl.models.resnet_cifar(depth, seed=FLAGS.seed)
    scores = kl.blocks.score(dense, batches, criterion=FLAGS.criterion, seed=FLAGS.seed)
    models = {"dense": dense}
    removed = {}
    for p in ps:
        removed[p] = kl.blocks.lowest(scores, p)
        models[f"p={p}"] = kl.blocks.remove(dense, removed[p], name=f"resnet{depth}_p{p}")
    steps = {name: kl.metrics.make_train_step(m, jit_compile=FLAGS.jit_compile) for name, m in models.items()}
    times = kl.metrics.interleaved_step_times(steps, x, y, rounds=FLAGS.rounds,
                                              steps_per_round=FLAGS.steps_per_round, warmup=FLAGS.warmup)
    dense_flops, dense_memory = kl.metrics.flops(dense), kl.metrics.memory(dense, FLAGS.batch_size).total
    rows = []
    for p in ps:
        ticket = models[f"p={p}"]
        flops_ratio = dense_flops / kl.metrics.flops(ticket)
        speedup = times["dense"] / times[f"p={p}"]
        rows.append(dict(model=f"ResNet-{depth}", p=p, removed=removed[p],
                         flops_down=1 - 1 / flops_ratio,
                         memory_down=1 - kl.metrics.memory(ticket, FLAGS.batch_size).total / dense_memory,
                         dense_step_s=times["dense"], ticket_step_s=times[f"p={p}"],
                         flops_ratio=flops_ratio, speedup=speedup, efficiency=speedup / flops_ratio))
    return rows


def overhead(name, batches, x, y):
    import keras_lottery as kl

    model = _build(name, FLAGS.seed)
    start = time.perf_counter()
    found = kl.blocks.find_blocks(model)
    t_find = time.perf_counter() - start
    start = time.perf_counter()
    scores = kl.blocks.score(model, batches, criterion=FLAGS.criterion, seed=FLAGS.seed)
    t_score = time.perf_counter() - start
    start = time.perf_counter()
    ticket = kl.blocks.remove(model, kl.blocks.lowest(scores, min(3, len(scores))))
    t_remove = time.perf_counter() - start
    step = kl.metrics.make_train_step(ticket, jit_compile=FLAGS.jit_compile)
    step_s = kl.metrics.interleaved_step_times({"ticket": step}, x, y, rounds=3, steps_per_round=2, warmup=2)["ticket"]
    epoch_s = step_s * math.ceil(FLAGS.epoch_examples / FLAGS.batch_size)
    return dict(model=name, blocks=len(found), removable=len(found.removable), find_s=t_find, score_s=t_score,
                remove_s=t_remove, step_s=step_s, epoch_s=epoch_s,
                overhead_fraction_of_epoch=(t_find + t_score + t_remove) / epoch_s)


def main(argv):
    del argv
    import tensorflow as tf

    plan = _parse_plan(FLAGS.plan)
    x, y = _synthetic(FLAGS.batch_size, FLAGS.seed)
    batches = [_synthetic(FLAGS.batch_size, FLAGS.seed + 1 + i) for i in range(FLAGS.score_batches)]
    print(f"# bench_blocks on {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"TF {tf.__version__}, batch {FLAGS.batch_size}, criterion {FLAGS.criterion}, "
          f"jit_compile={FLAGS.jit_compile}, {FLAGS.rounds} rounds x {FLAGS.steps_per_round} steps, medians")
    print("\n| model | p | FLOPs down | memory down | dense step (s) | ticket step (s) | FLOPs ratio "
          "| measured speed-up | speed-up / FLOPs ratio |")
    print("|---|---|---|---|---|---|---|---|---|", flush=True)
    rows = []
    for depth, ps in plan:
        for r in speed(depth, ps, batches, x, y):
            rows.append(r)
            print(f"| {r['model']} | {r['p']} | {r['flops_down']:.1%} | {r['memory_down']:.1%} "
                  f"| {r['dense_step_s']:.3f} | {r['ticket_step_s']:.3f} | {r['flops_ratio']:.3f} "
                  f"| {r['speedup']:.3f} | {r['efficiency']:.2f} |", flush=True)
    names = [name for name in FLAGS.overhead.split(",") if name]
    costs = []
    if names:
        print(f"\n| model | blocks (removable) | find_blocks (s) | score {FLAGS.criterion}, {FLAGS.score_batches} "
              f"batches (s) | remove 3 (s) | train step (s) | est. epoch (s) | overhead / epoch |")
        print("|---|---|---|---|---|---|---|---|", flush=True)
        for name in names:
            c = overhead(name, batches, x, y)
            costs.append(c)
            print(f"| {c['model']} | {c['blocks']} ({c['removable']}) | {c['find_s']:.2f} | {c['score_s']:.1f} "
                  f"| {c['remove_s']:.2f} | {c['step_s']:.3f} | {c['epoch_s']:.0f} "
                  f"| {c['overhead_fraction_of_epoch']:.1%} |", flush=True)
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump({"speed": rows, "overhead": costs}, f, indent=2)


if __name__ == "__main__":
    app.run(main)
