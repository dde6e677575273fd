"""Deployment of a stripped pruned model to TensorFlow Lite: convert, run, and measure its gzipped size.

``tf.lite`` (``TFLiteConverter``, ``Interpreter``) ships with TensorFlow; TensorFlow 2.21 marks the
interpreter as moving to the ``ai-edge-litert`` package (LiteRT), which is not installed here, so
:func:`interpreter` uses ``tf.lite.Interpreter``. The converter stores weights densely: zeros cost nothing until the file is
compressed, which is why TFMOT's guide (and :func:`gzipped_size`) compares gzipped files.
"""

import gzip
import os
import tempfile

import numpy as np
import tensorflow as tf  # the TFLite converter and interpreter

__all__ = ["convert", "gzipped_size", "interpreter", "predict"]


def convert(model, optimizations=()):
    """The ``.tflite`` flatbuffer (bytes) of a Keras 3 ``model`` (strip pruning wrappers first).

    The model is exported as a SavedModel (``model.export``) and converted from it, the path that
    works for any Keras 3 model. ``optimizations``: e.g. ``[tf.lite.Optimize.DEFAULT]`` to quantize too.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "saved_model")
        model.export(path, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(path)
        converter.optimizations = list(optimizations)
        return converter.convert()


def gzipped_size(data):
    """Bytes of ``data`` (a flatbuffer or a file's contents) after gzip at the highest level."""
    return len(gzip.compress(bytes(data), compresslevel=9, mtime=0))


def interpreter(flatbuffer):
    """A TFLite interpreter for ``flatbuffer``, tensors allocated."""
    runner = tf.lite.Interpreter(model_content=flatbuffer)
    runner.allocate_tensors()
    return runner


def predict(flatbuffer, x):
    """Runs the model on each row of ``x`` (batch 1, as the converter's default signature) and stacks the outputs."""
    runner = interpreter(flatbuffer)
    source, target = runner.get_input_details()[0], runner.get_output_details()[0]
    outputs = []
    for row in np.asarray(x, dtype=source["dtype"]):
        runner.resize_tensor_input(source["index"], (1, *row.shape))
        runner.allocate_tensors()
        runner.set_tensor(source["index"], row[None])
        runner.invoke()
        outputs.append(runner.get_tensor(target["index"])[0])
    return np.stack(outputs)
