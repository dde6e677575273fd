r"""Step time of masked training against dense training and against TFMOT's prune_low_magnitude.

For each model (LeNet-300-100, ResNet-20), in one process and on the same synthetic data:

- dense: the Keras 3 model;
- masked: ``keras_lottery.mask(model)`` pruned to 80% sparsity (layerwise magnitude);
- tfk_dense: the same architecture on ``tf_keras`` (TFMOT's own dense baseline);
- tfmot: the same architecture on ``tf_keras`` wrapped in ``prune_low_magnitude`` with
  ``ConstantSparsity(0.8)`` and the ``UpdatePruningStep`` callback.

The three are timed in interleaved rounds (one epoch of ``--steps`` steps each per round) so that
load from other processes hits them alike; the first round (tracing) is dropped and the fastest
epoch per model is reported (on a shared machine other load only ever adds time). masked/dense compares Keras 3 with Keras 3; TFMOT/dense compares
TFMOT with the tf_keras dense model (Keras 3 and tf_keras differ in per-step overhead, so a TFMOT
step is compared with the dense step of its own framework). Usage::

    python -m experiments.bench_masks --models=lenet_300_100,resnet20 --rounds=7 --steps=50
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

from absl import app, flags  # noqa: E402

FLAGS = flags.DEFINE_list("models", ["lenet_300_100", "resnet20"], "Models to benchmark.")
ROUNDS = flags.DEFINE_integer("rounds", 7, "Interleaved timing rounds (the first is dropped).")
STEPS = flags.DEFINE_integer("steps", 50, "Training steps per round and model.")
SPARSITY = flags.DEFINE_float("sparsity", 0.8, "Sparsity of the masked and TFMOT models.")
JIT = flags.DEFINE_bool("jit_compile", False, "Compile the Keras 3 models with XLA.")
TFMOT = flags.DEFINE_bool("tfmot", True, "Also time TFMOT's prune_low_magnitude (tf_keras).")

_SETUP = {  # input shape, batch size, optimizer: the papers' settings
    "lenet_300_100": ((28, 28, 1), 60, "adam"),
    "resnet20": ((32, 32, 3), 128, "sgd"),
}



def _epoch_timer(callback_base):
    """A callback (subclass of ``callback_base``: Keras 3's or tf_keras') recording each epoch's seconds."""
    class Timer(callback_base):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self._t0)

    return Timer()


def _tfkeras_lenet(tfk, input_shape, classes):
    inputs = tfk.Input(shape=input_shape)
    x = tfk.layers.Flatten()(inputs)
    x = tfk.layers.Dense(300, activation="relu", name="fc1")(x)
    x = tfk.layers.Dense(100, activation="relu", name="fc2")(x)
    return tfk.Model(inputs, tfk.layers.Dense(classes, name="predictions")(x))


def _tfkeras_resnet(tfk, input_shape, classes, depth=20):
    layers = tfk.layers
    n = (depth - 2) // 6
    inputs = tfk.Input(shape=input_shape)
    x = layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    for s, filters in enumerate((16, 32, 64)):
        for b in range(n):
            stride = 2 if (s > 0 and b == 0) else 1
            y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
            y = layers.ReLU()(layers.BatchNormalization()(y))
            y = layers.BatchNormalization()(layers.Conv2D(filters, 3, padding="same", use_bias=False)(y))
            shortcut = x
            if stride != 1 or x.shape[-1] != filters:
                shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False)(x)
                shortcut = layers.BatchNormalization()(shortcut)
            x = layers.ReLU()(layers.Add()([shortcut, y]))
    x = layers.GlobalAveragePooling2D()(x)
    return tfk.Model(inputs, layers.Dense(classes, name="predictions")(x))


def bench(name, rounds, steps, sparsity, jit_compile, with_tfmot):
    import keras
    import numpy as np

    import keras_lottery as kl

    input_shape, batch, opt = _SETUP[name]
    classes = 10
    rng = np.random.default_rng(0)
    x = rng.random((batch * steps,) + input_shape, dtype=np.float32)
    y = rng.integers(0, classes, batch * steps)

    def optimizer3():
        return keras.optimizers.Adam(1.2e-3) if opt == "adam" else keras.optimizers.SGD(0.1, momentum=0.9)

    loss3 = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    dense = kl.models.get(name, input_shape, classes, seed=0)
    masked = kl.mask(dense)
    kl.prune(masked, kl.LayerwiseMagnitude(density=1.0 - sparsity))
    runs = {}
    for label, model in (("dense", dense), ("masked", masked)):
        model.compile(optimizer3(), loss3, jit_compile=jit_compile)
        timer = _epoch_timer(keras.callbacks.Callback)
        runs[label] = (lambda m=model, t=timer: m.fit(x, y, batch_size=batch, epochs=1, verbose=0,
                                                      shuffle=False, callbacks=[t]), timer)

    if with_tfmot:
        import tensorflow_model_optimization as tfmot  # sets TF_USE_LEGACY_KERAS; keras 3 is already loaded
        import tf_keras as tfk

        build = _tfkeras_lenet if name == "lenet_300_100" else _tfkeras_resnet
        tfk_dense = build(tfk, input_shape, classes)
        base = build(tfk, input_shape, classes)
        schedule = tfmot.sparsity.keras.ConstantSparsity(sparsity, begin_step=0, frequency=100)
        pruned = tfmot.sparsity.keras.prune_low_magnitude(base, pruning_schedule=schedule)

        def tfk_optimizer():
            return tfk.optimizers.Adam(1.2e-3) if opt == "adam" else tfk.optimizers.SGD(0.1, momentum=0.9)

        pruned.compile(tfk_optimizer(), tfk.losses.SparseCategoricalCrossentropy(from_logits=True))
        tfk_dense.compile(tfk_optimizer(), tfk.losses.SparseCategoricalCrossentropy(from_logits=True))
        dtimer = _epoch_timer(tfk.callbacks.Callback)
        runs["tfk_dense"] = (lambda: tfk_dense.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False,
                                                   callbacks=[dtimer]), dtimer)
        ttimer = _epoch_timer(tfk.callbacks.Callback)
        runs["tfmot"] = (lambda: pruned.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False,
                                            callbacks=[ttimer, tfmot.sparsity.keras.UpdatePruningStep()]), ttimer)

    for r in range(rounds):
        order = list(runs) if r % 2 == 0 else list(reversed(runs))
        for label in order:
            runs[label][0]()
    # The minimum over rounds: the machine is shared, and other load only ever adds time.
    best = {label: min(timer.times[1:]) / steps for label, (_, timer) in runs.items()}
    density = kl.Mask.from_model(masked).density
    zeros_ok = all(np.all(kl.pruning.weights_of(masked)[p][~m] == 0) for p, m in kl.Mask.from_model(masked).items())
    return best, density, zeros_ok


def main(argv):
    del argv
    rows = []
    for name in FLAGS.value:
        if name not in _SETUP:
            raise app.UsageError(f"--models accepts {sorted(_SETUP)}; got {name!r}.")
        best, density, zeros_ok = bench(name, ROUNDS.value, STEPS.value, SPARSITY.value, JIT.value, TFMOT.value)
        rows.append((name, best, density, zeros_ok))
        print(f"{name}: " + ", ".join(f"{k} {v * 1e3:.2f} ms/step" for k, v in best.items()), flush=True)
    print()
    print("| model | batch | dense ms/step | masked ms/step | masked/dense | tf_keras dense ms/step "
          "| TFMOT ms/step | TFMOT/tf_keras dense |")
    print("|---|---|---|---|---|---|---|---|")
    for name, m, density, zeros_ok in rows:
        tf_cell = (f"{m['tfk_dense'] * 1e3:.2f} | {m['tfmot'] * 1e3:.2f} | {m['tfmot'] / m['tfk_dense']:.3f}"
                   if "tfmot" in m else "- | - | -")
        print(f"| {name} | {_SETUP[name][1]} | {m['dense'] * 1e3:.2f} | {m['masked'] * 1e3:.2f} | "
              f"{m['masked'] / m['dense']:.3f} | {tf_cell} |")
    print(f"\nmasked density {', '.join(f'{r[0]}={r[2]:.3f}' for r in rows)}; dead weights exactly 0 after "
          f"training: {all(r[3] for r in rows)}; rounds={ROUNDS.value} (first dropped), steps={STEPS.value}, "
          f"jit_compile={JIT.value}, python {sys.version.split()[0]}")


if __name__ == "__main__":
    app.run(main)
