"""Benchmark the two units of removal at matched FLOPs: dense vs layer ticket vs filter ticket.

For a CIFAR ResNet (the zoo's, at 32x32) and each number of blocks p, the layer ticket removes the p
lowest-scoring residual blocks (:func:`keras_lottery.blocks.score`) and the filter ticket removes the
lowest-scoring channels until it saves the same FLOPs (:func:`keras_lottery.filters.matched_ticket`,
``match="flops"``), both scored by the same criterion at initialization. In one process, interleaved
round by round so that load changes on a shared machine hit every model alike:

* training-step time on one synthetic batch (:func:`~keras_lottery.benchmarks.timing.interleaved_step_times`);
* inference latency of each model exported with :func:`keras_lottery.export.for_serving` and loaded
  back with ``tf.saved_model.load`` (its ``serving_default`` signature, as TF Serving runs it), at
  each batch size.

Each ticket's row gives its FLOPs ratio (dense / ticket), the measured speed-ups and speed-up / FLOPs
ratio (1.0: time falls exactly as FLOPs do). The binary is ``experiments/bench_units.py``.
"""

import os
import platform
import tempfile

import numpy as np
import tensorflow as tf

from keras_lottery import blocks, filters, metrics
from keras_lottery.benchmarks.timing import interleaved_step_times, make_train_step
from keras_lottery.export import for_serving
from keras_lottery.models import resnet_cifar

__all__ = ["matched_models", "run", "serving_latency"]


def _synthetic(batch_size, seed, shape, classes=10):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch_size,) + shape).astype("float32"), rng.integers(0, classes, size=batch_size)


def matched_models(depth, ps, batches, criterion="snip", seed=0, shape=(32, 32, 3), min_fraction=0.1,
                   channel_multiples=(1,)):
    """``{"dense": model, "layers p=<p>": ticket, "filters p=<p>": ticket, ...}`` at matched FLOPs.

    One filter ticket per entry of ``channel_multiples`` (:func:`keras_lottery.filters.select`): named
    ``filters p=<p>`` for 1 and ``filters/<m> p=<p>`` (every group keeps a multiple of m channels) else.
    """
    dense = resnet_cifar(depth, input_shape=shape, seed=seed)
    block_scores = blocks.score(dense, batches, criterion=criterion, seed=seed)
    channel_scores = filters.score(dense, batches, criterion=criterion, seed=seed)
    models = {"dense": dense}
    for p in ps:
        layer_ticket = blocks.remove(dense, blocks.lowest(block_scores, p), name=f"resnet{depth}_layers_p{p}")
        models[f"layers p={p}"] = layer_ticket
        for multiple in channel_multiples:
            unit = "filters" if multiple == 1 else f"filters/{multiple}"
            models[f"{unit} p={p}"], _ = filters.matched_ticket(
                dense, layer_ticket, channel_scores, match="flops", min_fraction=min_fraction,
                channel_multiple=multiple, name=f"resnet{depth}_filters{multiple}_p{p}")
    return models


def serving_latency(models, batch_sizes, shape, directory, rounds=5, calls_per_round=3, warmup=2, seed=0):
    """``{batch size: {name: median seconds per call}}`` of each model's exported ``serving_default``."""
    signatures = {}
    for name, model in models.items():
        result = for_serving(model, os.path.join(directory, name.replace(" ", "_").replace("=", "")),
                             measure_dense=False)
        signatures[name] = tf.saved_model.load(result.path).signatures["serving_default"]
    input_name = models["dense"].inputs[0].name
    out = {}
    for batch in batch_sizes:
        x = tf.constant(_synthetic(batch, seed, shape)[0])
        calls = {name: (lambda sig: lambda x, y: sig(**{input_name: x}))(sig) for name, sig in signatures.items()}
        out[batch] = interleaved_step_times(calls, x, None, rounds=rounds, steps_per_round=calls_per_round,
                                            warmup=warmup)
    return out


def run(depth=20, ps=(1, 3), criterion="snip", batch_size=128, latency_batches=(1, 128), score_batches=2,
        rounds=5, steps_per_round=3, warmup=2, seed=0, channel_multiples=(1,), print_fn=print):
    """Builds the models (:func:`matched_models`), times training steps and serving latency, prints a
    Markdown table with ``print_fn`` and returns its rows (one per model)."""
    shape = (32, 32, 3)
    batches = [_synthetic(batch_size, seed + 1 + i, shape) for i in range(score_batches)]
    models = matched_models(depth, ps, batches, criterion=criterion, seed=seed, shape=shape,
                            channel_multiples=channel_multiples)
    x, y = _synthetic(batch_size, seed, shape)
    print_fn(f"# bench_units on {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, TF "
             f"{tf.__version__}: ResNet-{depth} at 32x32, {criterion} at initialization, filter tickets matched on "
             f"FLOPs; training batch {batch_size}, {rounds} rounds x {steps_per_round} steps, medians")
    with tempfile.TemporaryDirectory() as directory:
        latency = serving_latency(models, latency_batches, shape, directory, rounds=rounds,
                                  calls_per_round=steps_per_round, warmup=warmup, seed=seed)
    steps = {name: make_train_step(model) for name, model in models.items()}
    train = interleaved_step_times(steps, x, y, rounds=rounds, steps_per_round=steps_per_round, warmup=warmup)
    dense_flops = metrics.flops(models["dense"])
    header = ["model", "FLOPs (M)", "params", "FLOPs ratio", "train step (s)", "train speed-up",
              "train speed-up / FLOPs ratio"]
    for b in latency_batches:
        header += [f"serving b={b} (ms)", f"serving b={b} speed-up / FLOPs ratio"]
    print_fn("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    rows = []
    for name, model in models.items():
        ratio = dense_flops / metrics.flops(model)
        row = {"model": name, "flops": metrics.flops(model), "params": metrics.params(model), "flops_ratio": ratio,
               "train_step_s": train[name], "train_speedup": train["dense"] / train[name]}
        row["train_efficiency"] = row["train_speedup"] / ratio
        cells = [name, f"{row['flops'] / 1e6:.1f}", f"{row['params']:,d}", f"{ratio:.3f}", f"{train[name]:.3f}",
                 f"{row['train_speedup']:.3f}", f"{row['train_efficiency']:.2f}"]
        for b in latency_batches:
            row[f"serving_b{b}_s"] = latency[b][name]
            row[f"serving_b{b}_efficiency"] = latency[b]["dense"] / latency[b][name] / ratio
            cells += [f"{1000 * latency[b][name]:.2f}", f"{row[f'serving_b{b}_efficiency']:.2f}"]
        rows.append(row)
        print_fn("| " + " | ".join(cells) + " |")
    return rows
