"""TFMOT's "Pruning in Keras" measurement on Keras 3: a trained model, pruned while fine-tuning,
stripped, converted to TensorFlow Lite; test accuracy and gzipped ``.tflite`` size against the dense model.

For each seed: LeNet-300-100 trains ``baseline_epochs`` (Adam, batch 128, 10% of the training set
held out as in TFMOT's example); a copy is pruned with ``PolynomialDecay(0.5 -> sparsity)`` over
``prune_epochs`` of fine-tuning; both are converted (``keras_lottery.sparsity.tflite``). Reported per
seed: Keras test accuracy of both, the TFLite interpreter's test accuracy of the pruned model, the
largest difference between the pruned model's Keras and TFLite outputs, and the gzipped sizes.
The binary is ``experiments/bench_tflite_size.py``.
"""

import keras
import numpy as np

from keras_lottery import models
from keras_lottery.sparsity import PolynomialDecay, UpdatePruningStep, prune_low_magnitude, strip_pruning, tflite

__all__ = ["measure", "table"]


def _fit(model, x, y, epochs, callbacks=()):
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, y, batch_size=128, epochs=epochs, validation_split=0.1, verbose=0, callbacks=list(callbacks))


def _accuracy(logits, labels):
    return float(np.mean(np.argmax(logits, axis=-1) == labels))


def measure(arrays, seed, sparsity=0.8, baseline_epochs=2, prune_epochs=2, tflite_rows=2000):
    """One seed's row (see the module doc). ``arrays``: a ``keras_lottery.data.sources.Arrays``."""
    keras.utils.set_random_seed(seed)
    x_train, x_test = arrays.x_train.astype("float32") / 255.0, arrays.x_test.astype("float32") / 255.0
    dense = models.lenet_300_100(input_shape=arrays.input_shape, classes=arrays.classes, seed=seed)
    _fit(dense, x_train, arrays.y_train, baseline_epochs)
    steps = int(np.ceil(0.9 * len(x_train) / 128)) * prune_epochs
    pruned = prune_low_magnitude(dense, pruning_schedule=PolynomialDecay(0.5, sparsity, 0, steps))
    _fit(pruned, x_train, arrays.y_train, prune_epochs, [UpdatePruningStep()])
    stripped = strip_pruning(pruned)
    dense_lite, pruned_lite = tflite.convert(dense), tflite.convert(stripped)
    rows = x_test[:tflite_rows]
    lite_out = tflite.predict(pruned_lite, rows)
    keras_out = stripped.predict(rows, verbose=0)
    return {"seed": seed, "dense_accuracy": _accuracy(dense.predict(x_test, verbose=0), arrays.y_test),
            "pruned_accuracy": _accuracy(stripped.predict(x_test, verbose=0), arrays.y_test),
            "tflite_accuracy": _accuracy(lite_out, arrays.y_test[:tflite_rows]),
            "max_abs_diff": float(np.abs(lite_out - keras_out).max()),
            "dense_gz": tflite.gzipped_size(dense_lite), "pruned_gz": tflite.gzipped_size(pruned_lite),
            "dense_bytes": len(dense_lite), "pruned_bytes": len(pruned_lite)}


def table(rows):
    """A Markdown table of the rows, then the mean and standard deviation of each column."""
    keys = [k for k in rows[0] if k != "seed"]
    lines = ["| seed | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    fmt = (lambda v: f"{v:.4g}")
    lines += ["| " + " | ".join([str(r["seed"])] + [fmt(r[k]) for k in keys]) + " |" for r in rows]
    lines.append("| mean | " + " | ".join(fmt(np.mean([r[k] for r in rows])) for k in keys) + " |")
    lines.append("| std | " + " | ".join(fmt(np.std([r[k] for r in rows], ddof=1)) for k in keys) + " |")
    ratio = [r["dense_gz"] / r["pruned_gz"] for r in rows]
    lines.append(f"\ngzipped size, dense / pruned: {np.mean(ratio):.2f} x (std {np.std(ratio, ddof=1):.2f}, "
                 f"{len(rows)} seeds)")
    return "\n".join(lines)
