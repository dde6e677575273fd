"""Benchmark layer tickets: training-step speed-up against FLOPs ratio, and scoring/rewriting overhead.

Part 1 (:func:`speed`): for each CIFAR ResNet depth and number of removed blocks p, the dense network
and its tickets (the p lowest-scoring blocks removed) are timed in one process, interleaved round by
round on the same synthetic batch, and the median step times give the measured speed-up, printed
next to the FLOPs ratio (goal: speed-up >= 0.9 x FLOPs ratio).

Part 2 (:func:`overhead`): the time of find_blocks, score and remove on large networks (CIFAR
ResNet-110 and keras.applications ResNet152 at 32x32), next to the estimated time of one training
epoch (median step time x steps per epoch).

Part 3 (:func:`application_cost`): find_blocks, score (one batch, GraSP by default) and remove on
keras.applications models at full size (ConvNeXtTiny and EfficientNetV2B0 at 224x224 in
docs/blocks.md; goal under 2 minutes each), each step timed.

The binary is ``experiments/bench_blocks.py``; :func:`run` prints the tables as their rows are
measured and returns the rows.
"""

import math
import os
import platform
import time

import keras
import numpy as np
import tensorflow as tf

from keras_lottery import metrics
from keras_lottery.benchmarks.timing import interleaved_step_times, make_train_step
from keras_lottery.blocks import find_blocks, lowest, remove, score
from keras_lottery.models import resnet_cifar

DEFAULT_PLAN = "32:1,3,4;56:3,5,12"  # depth:p,p,...;depth:p,... (see parse_plan)


def parse_plan(plan):
    """``"depth:p,p,...;depth:p,..."`` -> ``[(depth, [p, ...]), ...]``; ``ValueError`` if malformed."""
    result = []
    for part in filter(None, plan.split(";")):
        try:
            depth, ps = part.split(":")
            result.append((int(depth), [int(p) for p in ps.split(",") if p]))
        except ValueError as error:
            raise ValueError(f"plan must look like {DEFAULT_PLAN!r}, got {plan!r}.") from error
    return result


def _is_known(name):
    return name == "resnet152" or (name.startswith("resnet") and name[len("resnet"):].isdigit())


def validate(overhead_models):
    """Raise ``ValueError`` for a name of ``overhead_models`` that :func:`build` does not know."""
    for name in overhead_models:
        if not _is_known(name):
            raise ValueError(f"Unknown model {name!r} in overhead models; accepted: resnet<6n+2> or resnet152.")


def synthetic(batch_size, seed, shape=(32, 32, 3), classes=10):
    """One seeded batch ``(x, y)`` of normal images and integer labels."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch_size,) + shape).astype("float32"), rng.integers(0, classes, size=batch_size)


def build(name, seed):
    """``resnet<depth>`` (the zoo's CIFAR ResNet) or ``resnet152`` (keras.applications at 32x32), 10 classes."""
    validate([name])
    if name == "resnet152":
        keras.utils.set_random_seed(seed)
        return keras.applications.ResNet152(weights=None, input_shape=(32, 32, 3), classes=10,
                                            classifier_activation=None)
    return resnet_cifar(int(name[len("resnet"):]), seed=seed)


APPLICATIONS = ("ConvNeXtTiny", "EfficientNetV2B0")


def validate_applications(names):
    """Raise ``ValueError`` for a name that is not a ``keras.applications`` builder."""
    for name in names:
        if not callable(getattr(keras.applications, name, None)) or not name[:1].isupper():
            raise ValueError(f"Unknown keras.applications model {name!r}; e.g. {', '.join(APPLICATIONS)}.")


def application_cost(name, size=224, batch_size=16, criterion="grasp", remove_count=3, seed=0):
    """Seconds to build ``keras.applications.<name>`` (weights=None, ``size`` x ``size``, 1000 classes) and to
    find its blocks, score them on one batch of ``batch_size`` images and remove the ``remove_count`` lowest."""
    validate_applications([name])
    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    # logits: score's default loss is cross-entropy from logits
    model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3), classifier_activation=None)
    t_build = time.perf_counter() - start
    x, y = synthetic(batch_size, seed, shape=(size, size, 3), classes=1000)
    x = (x * 64 + 128).clip(0, 255)  # pixel range: the applications include their preprocessing
    start = time.perf_counter()
    found = find_blocks(model)
    t_find = time.perf_counter() - start
    start = time.perf_counter()
    scores = score(model, (x, y), criterion=criterion, seed=seed)
    t_score = time.perf_counter() - start
    start = time.perf_counter()
    ticket = remove(model, lowest(scores, min(remove_count, len(scores))))
    t_remove = time.perf_counter() - start
    return dict(model=name, size=size, batch_size=batch_size, blocks=len(found), removable=len(found.removable),
                build_s=t_build, find_s=t_find, score_s=t_score, remove_s=t_remove,
                total_s=t_find + t_score + t_remove, gflops=metrics.flops(model) / 1e9,
                ticket_gflops=metrics.flops(ticket) / 1e9)


def speed(depth, ps, batches, x, y, criterion="grasp", seed=0, batch_size=128, jit_compile=False, rounds=5,
          steps_per_round=3, warmup=2):
    """Times the dense CIFAR ResNet-``depth`` and its tickets without the ``p`` lowest blocks, ``p`` in ``ps``.

    Blocks are scored by ``criterion`` on ``batches``; steps are timed on ``(x, y)``. Returns one dict
    per ``p``: FLOPs and memory reductions, step times, FLOPs ratio, speed-up and their quotient.
    """
    dense = resnet_cifar(depth, seed=seed)
    scores = score(dense, batches, criterion=criterion, seed=seed)
    models = {"dense": dense}
    removed = {}
    for p in ps:
        removed[p] = lowest(scores, p)
        models[f"p={p}"] = remove(dense, removed[p], name=f"resnet{depth}_p{p}")
    steps = {name: make_train_step(m, jit_compile=jit_compile) for name, m in models.items()}
    times = interleaved_step_times(steps, x, y, rounds=rounds, steps_per_round=steps_per_round, warmup=warmup)
    dense_flops, dense_memory = metrics.flops(dense), metrics.memory(dense, batch_size).total
    rows = []
    for p in ps:
        ticket = models[f"p={p}"]
        flops_ratio = dense_flops / metrics.flops(ticket)
        speedup = times["dense"] / times[f"p={p}"]
        rows.append(dict(model=f"ResNet-{depth}", p=p, removed=removed[p],
                         flops_down=1 - 1 / flops_ratio,
                         memory_down=1 - metrics.memory(ticket, batch_size).total / dense_memory,
                         dense_step_s=times["dense"], ticket_step_s=times[f"p={p}"],
                         flops_ratio=flops_ratio, speedup=speedup, efficiency=speedup / flops_ratio))
    return rows


def overhead(name, batches, x, y, criterion="grasp", seed=0, batch_size=128, jit_compile=False,
             epoch_examples=50000):
    """Seconds of find_blocks, score (``criterion`` on ``batches``) and remove (3 blocks) on model ``name``.

    Also times a training step of the ticket on ``(x, y)`` and estimates one epoch of ``epoch_examples``.
    """
    model = build(name, seed)
    start = time.perf_counter()
    found = find_blocks(model)
    t_find = time.perf_counter() - start
    start = time.perf_counter()
    scores = score(model, batches, criterion=criterion, seed=seed)
    t_score = time.perf_counter() - start
    start = time.perf_counter()
    ticket = remove(model, lowest(scores, min(3, len(scores))))
    t_remove = time.perf_counter() - start
    step = make_train_step(ticket, jit_compile=jit_compile)
    step_s = interleaved_step_times({"ticket": step}, x, y, rounds=3, steps_per_round=2, warmup=2)["ticket"]
    epoch_s = step_s * math.ceil(epoch_examples / batch_size)
    return dict(model=name, blocks=len(found), removable=len(found.removable), find_s=t_find, score_s=t_score,
                remove_s=t_remove, step_s=step_s, epoch_s=epoch_s,
                overhead_fraction_of_epoch=(t_find + t_score + t_remove) / epoch_s)


def run(plan=DEFAULT_PLAN, overhead_models=("resnet110", "resnet152"), criterion="grasp",
        batch_size=128, score_batches=4, rounds=5, steps_per_round=3, warmup=2, epoch_examples=50000, seed=0,
        jit_compile=False, print_fn=print, applications=(), application_size=224, application_batch=16):
    """Runs both parts: ``plan`` (``[(depth, [p, ...]), ...]`` or its string, see :func:`parse_plan`) and
    the overhead on ``overhead_models`` (see :func:`build`), then :func:`application_cost` for each of
    ``applications`` (``application_size`` pixels, one batch of ``application_batch`` images).

    Prints a settings line and the two Markdown tables with ``print_fn``, each row as soon as it is
    measured (the overhead table only if ``overhead_models`` is not empty). Returns
    ``{"speed": [...], "overhead": [...], "applications": [...]}`` (see :func:`speed`, :func:`overhead`,
    :func:`application_cost`).
    """
    if isinstance(plan, str):
        plan = parse_plan(plan)
    validate(overhead_models)
    validate_applications(applications)
    x, y = synthetic(batch_size, seed)
    batches = [synthetic(batch_size, seed + 1 + i) for i in range(score_batches)]
    print_fn(f"# bench_blocks on {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
             f"TF {tf.__version__}, batch {batch_size}, criterion {criterion}, "
             f"jit_compile={jit_compile}, {rounds} rounds x {steps_per_round} steps, medians")
    if plan:
        print_fn("\n| model | p | FLOPs down | memory down | dense step (s) | ticket step (s) | FLOPs ratio "
                 "| measured speed-up | speed-up / FLOPs ratio |")
        print_fn("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for depth, ps in plan:
        for r in speed(depth, ps, batches, x, y, criterion=criterion, seed=seed, batch_size=batch_size,
                       jit_compile=jit_compile, rounds=rounds, steps_per_round=steps_per_round, warmup=warmup):
            rows.append(r)
            print_fn(f"| {r['model']} | {r['p']} | {r['flops_down']:.1%} | {r['memory_down']:.1%} "
                     f"| {r['dense_step_s']:.3f} | {r['ticket_step_s']:.3f} | {r['flops_ratio']:.3f} "
                     f"| {r['speedup']:.3f} | {r['efficiency']:.2f} |")
    costs = []
    if overhead_models:
        print_fn(f"\n| model | blocks (removable) | find_blocks (s) | score {criterion}, {score_batches} "
                 f"batches (s) | remove 3 (s) | train step (s) | est. epoch (s) | overhead / epoch |")
        print_fn("|---|---|---|---|---|---|---|---|")
        for name in overhead_models:
            c = overhead(name, batches, x, y, criterion=criterion, seed=seed, batch_size=batch_size,
                         jit_compile=jit_compile, epoch_examples=epoch_examples)
            costs.append(c)
            print_fn(f"| {c['model']} | {c['blocks']} ({c['removable']}) | {c['find_s']:.2f} | {c['score_s']:.1f} "
                     f"| {c['remove_s']:.2f} | {c['step_s']:.3f} | {c['epoch_s']:.0f} "
                     f"| {c['overhead_fraction_of_epoch']:.1%} |")
    apps = []
    if applications:
        print_fn(f"\n| model | input | blocks (removable) | build (s) | find_blocks (s) | score {criterion}, 1 batch "
                 f"of {application_batch} (s) | remove 3 (s) | find + score + remove (s) | GFLOPs dense -> ticket |")
        print_fn("|---|---|---|---|---|---|---|---|---|")
        for name in applications:
            a = application_cost(name, application_size, application_batch, criterion=criterion, seed=seed)
            apps.append(a)
            print_fn(f"| {a['model']} | {a['size']}x{a['size']} | {a['blocks']} ({a['removable']}) | {a['build_s']:.1f} "
                     f"| {a['find_s']:.1f} | {a['score_s']:.1f} | {a['remove_s']:.1f} | {a['total_s']:.1f} "
                     f"| {a['gflops']:.2f} -> {a['ticket_gflops']:.2f} |")
    return {"speed": rows, "overhead": costs, "applications": apps}
