"""Would a 1-byte mask make the gradient multiply cheaper? LeNet-300-100, Adam, the compiled train
function called in a tight loop (no fit), interleaved rounds of 200 steps: dense, a second dense
(noise), the plain mask (float32 mask, ``upstream * mask``), and the same masked model whose gradient
goes through ``tf.where(bool mask, upstream, 0)`` (a bool variable: a quarter of the bytes read).

    python docs/results/bench_masks/diagnostics/bool_mask_gradient.py ROUNDS
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_lottery import Mask, models as zoo  # noqa: E402
from keras_lottery.benchmarks import masks as bm  # noqa: E402
from keras_lottery.masking import mask, masked_layers  # noqa: E402
from keras_lottery.pruning import LayerwiseMagnitude, prune, weights_of  # noqa: E402

NAME, SHAPE, STEPS = "lenet_300_100", (28, 28, 1), 200


def bool_gradient(bool_mask):
    """A ``MaskedLayer.mask_gradient`` selecting the gradient with ``bool_mask`` (one masked weight per layer)."""
    def mask_gradient(value, mask_value):
        del mask_value

        @tf.custom_gradient
        def identity(x):
            def grad(upstream):
                return tf.where(bool_mask, upstream, tf.zeros((), upstream.dtype))
            return tf.identity(x), grad
        return identity(value)
    return mask_gradient


def masked_model(dense, with_bool):
    model = mask(dense)
    prune(model, LayerwiseMagnitude(density=0.2))
    if with_bool:
        for layer in masked_layers(model):
            (_, _, mask_var), = layer.masked_weights()
            layer.bool_mask = tf.Variable(keras.ops.convert_to_numpy(mask_var.value).astype(bool), trainable=False)
            layer.mask_gradient = bool_gradient(layer.bool_mask)
    return model


def main(rounds):
    data = bm._fit_data(NAME, 100, "dataset")["x"].repeat()
    dense = zoo.get(NAME, SHAPE, 10, seed=0)
    variants = {"dense": dense, "dense2": zoo.get(NAME, SHAPE, 10, seed=0),
                "masked": masked_model(dense, False), "masked_bool": masked_model(dense, True)}
    functions = {}
    for label, model in variants.items():
        model.compile(keras.optimizers.Adam(1.2e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      jit_compile=False)
        model.make_train_function()
        iterator = iter(data)
        model.train_function(iterator)  # traces
        functions[label] = (model.train_function, iterator)
    times = {label: [] for label in functions}
    for r in range(rounds):
        for label in (list(functions) if r % 2 == 0 else list(reversed(functions))):
            function, iterator = functions[label]
            start = time.perf_counter()
            for _ in range(STEPS):
                function(iterator)
            times[label].append(time.perf_counter() - start)
    base = np.array(times["dense"])
    print(" | ".join(f"{k} {np.median(np.array(v) / base):.3f} ({np.median(v) / STEPS * 1e3:.3f} ms)"
                     for k, v in times.items()))
    found, weights = Mask.from_model(variants["masked_bool"]), weights_of(variants["masked_bool"])
    print("masked_bool dead weights exactly 0:", all(np.all(weights[p][~a] == 0) for p, a in found.items()))


if __name__ == "__main__":
    main(int(sys.argv[1]))
