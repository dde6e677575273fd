r"""Step time of masked training against dense training and against TFMOT's prune_low_magnitude.

For each model (LeNet-300-100, ResNet-20), in one process and on the same data:

- dense: the Keras 3 model;
- dense_copy: a second, identical Keras 3 dense model. Its ratio to ``dense`` is the noise floor of
  the measurement: two identical models differ by this much on this machine;
- masked: ``keras_lottery.mask(model)`` pruned to 80% sparsity (layerwise magnitude);
- masked_forward: the same with ``mask_forward=True`` (a forward-pass multiply as well);
- tfk_dense: the same architecture on ``tf_keras`` (TFMOT's own dense baseline);
- tfmot: the same architecture on ``tf_keras`` wrapped in ``prune_low_magnitude`` with
  ``ConstantSparsity(0.8)`` and the ``UpdatePruningStep`` callback;
- compact (``--compact``, models whose masked layers are all ``Dense``): a design alternative the
  library does not use. Each layer trains only its live weights, one compact variable per kernel
  that is scattered into a dense kernel in every forward pass, so the optimizer updates 20% of the
  entries and no gradient is multiplied by a mask.

Every model trains with ``fit`` on one cached, batched ``tf.data`` dataset (so input conversion is
not timed), or with ``--input=numpy`` on the in-memory arrays (``fit(x, y, batch_size)``, the way
most users call it: Keras' input handling then adds the same time to every model's step). The
models are timed in interleaved rounds, one epoch of ``--steps`` steps each per round, in
alternating order, after one untimed epoch each (tracing). Reported per model: the
fastest epoch (ms per step) and, as the ratio, the **median over rounds of the epoch time divided by
the dense epoch time of the same round** (a paired ratio: load from other processes hits both
alike). Keras 3 models are compared with ``dense``; TFMOT with ``tfk_dense`` (Keras 3 and tf_keras
differ in per-step overhead, so a TFMOT step is compared with the dense step of its own framework).

``--steps_per_execution=N`` runs N steps per call of the compiled function, which removes most of
the Python work per step: the ratios then compare the compiled steps alone (stricter: the fixed
per-step overhead no longer dilutes the mask's cost).

Two identical models differ by a few tenths of a percent within one process, but a whole process
can come out 1-2 points apart from the next (memory placement, thread scheduling): ``--processes=N``
repeats the measurement in N fresh processes and reports the median of their ratios and each one.
Usage::

    python -m experiments.bench_masks --models=lenet_300_100 --processes=5
    python -m experiments.bench_masks --models=resnet20
    python -m experiments.bench_masks --models=lenet_300_100 --processes=5 --compact --notfmot
"""

import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

from absl import app, flags  # noqa: E402

MODELS = flags.DEFINE_list("models", ["lenet_300_100", "resnet20"], "Models to benchmark.")
ROUNDS = flags.DEFINE_integer("rounds", None, "Timed rounds (default: 30 for LeNet-300-100, 8 for ResNet-20).")
STEPS = flags.DEFINE_integer("steps", None, "Training steps per round and model (default: 100 / 10).")
SPARSITY = flags.DEFINE_float("sparsity", 0.8, "Sparsity of the masked and TFMOT models.")
STEPS_PER_EXECUTION = flags.DEFINE_integer("steps_per_execution", 1, "Keras 3 steps_per_execution.")
JIT = flags.DEFINE_bool("jit_compile", False, "Compile the Keras 3 models with XLA.")
INPUT = flags.DEFINE_enum("input", "dataset", ["dataset", "numpy"],
                          "dataset: fit on a cached, batched tf.data.Dataset (the step alone); numpy: "
                          "fit(x, y, batch_size) on in-memory arrays, as most users call it (adds Keras' "
                          "per-step input handling to every model's step).")
TFMOT = flags.DEFINE_bool("tfmot", True, "Also time TFMOT's prune_low_magnitude (tf_keras).")
COMPACT = flags.DEFINE_bool("compact", False, "Also time the compact design alternative (live weights only, "
                            "scattered into the kernel each step); LeNet-300-100 only.")
PROCESSES = flags.DEFINE_integer("processes", 1, "Repeat the whole measurement in this many fresh processes "
                                 "(the ratio then differs more between processes than between rounds).")
JSON_OUT = flags.DEFINE_string("json_out", None, "Internal: where a --processes child writes its timings.")

_SETUP = {  # input shape, batch size, optimizer (the papers' settings), default rounds and steps
    "lenet_300_100": ((28, 28, 1), 60, "adam", 30, 100),
    "resnet20": ((32, 32, 3), 128, "sgd", 8, 10),
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


def compact_copy(masked):
    """A functional copy of ``masked`` (Dense-only masked layers) that stores and trains only live weights.

    Each ``MaskedLayer(Dense)`` becomes a layer with one trainable vector of its live kernel entries;
    the forward pass scatters it into a dense kernel (so the gradient of a dead entry is never
    formed). The copy computes the same function as ``masked``.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_lottery as kl

    class CompactDense(keras.layers.Layer):
        def __init__(self, dense, kernel, alive, **kwargs):
            super().__init__(name=dense.name, **kwargs)
            self.activation = dense.activation
            self._flat_alive = np.flatnonzero(alive.ravel())
            self._kernel_shape = tuple(alive.shape)
            self._initial = (kernel.ravel()[self._flat_alive], dense.get_weights()[1:])

        def build(self, input_shape):
            live, rest = self._initial
            self.indices = tf.constant(self._flat_alive[:, None].astype(np.int32))
            self.live = self.add_weight(name="live", shape=live.shape, initializer=keras.initializers.Constant(live))
            self.bias = (self.add_weight(name="bias", shape=rest[0].shape,
                                         initializer=keras.initializers.Constant(rest[0])) if rest else None)

        def call(self, x):
            size = int(np.prod(self._kernel_shape))
            kernel = tf.reshape(tf.scatter_nd(self.indices, self.live.value, [size]), self._kernel_shape)
            y = tf.matmul(x, kernel)
            return self.activation(y + self.bias if self.bias is not None else y)

    layers = kl.wrappers.masked_layers(masked)
    if not all(isinstance(layer.layer, keras.layers.Dense) for layer in layers):
        raise ValueError("compact_copy: every masked layer must wrap a Dense layer.")
    weights = kl.pruning.weights_of(masked)
    alive = kl.Mask.from_model(masked)

    def clone_function(layer):
        if isinstance(layer, kl.wrappers.MaskedLayer):
            path = layer.weight_paths()[0]
            return CompactDense(layer.layer, weights[path], alive[path])
        return layer.__class__.from_config(layer.get_config())

    return keras.models.clone_model(masked, clone_function=clone_function)


def bench(name, rounds, steps, sparsity, steps_per_execution, jit_compile, with_tfmot, input_kind="dataset",
          with_compact=False):
    """Times every variant of ``name``; returns ``({label: [seconds per step, one per round]}, density, zeros_ok)``."""
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_lottery as kl

    input_shape, batch, opt, _, _ = _SETUP[name]
    classes = 10
    rng = np.random.default_rng(0)
    x = rng.random((batch * steps,) + input_shape, dtype=np.float32)
    y = rng.integers(0, classes, batch * steps)
    if input_kind == "dataset":
        fit_data = {"x": tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).cache()}
    else:
        fit_data = {"x": x, "y": y, "batch_size": batch}

    def optimizer3():
        return keras.optimizers.Adam(1.2e-3) if opt == "adam" else keras.optimizers.SGD(0.1, momentum=0.9)

    loss3 = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    dense = kl.models.get(name, input_shape, classes, seed=0)
    dense_copy = kl.models.get(name, input_shape, classes, seed=0)
    masked = kl.mask(dense)
    masked_forward = kl.mask(dense, mask_forward=True)
    for model in (masked, masked_forward):
        kl.prune(model, kl.LayerwiseMagnitude(density=1.0 - sparsity))
    variants = [("dense", dense), ("dense_copy", dense_copy), ("masked", masked), ("masked_forward", masked_forward)]
    if with_compact:
        variants.append(("compact", compact_copy(masked)))
    runs = {}
    for label, model in variants:
        model.compile(optimizer3(), loss3, jit_compile=jit_compile, steps_per_execution=steps_per_execution)
        timer = _epoch_timer(keras.callbacks.Callback)
        runs[label] = (lambda m=model, t=timer: m.fit(**fit_data, epochs=1, verbose=0, shuffle=False,
                                                      callbacks=[t]), timer)

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
        runs["tfk_dense"] = (lambda: tfk_dense.fit(**fit_data, epochs=1, verbose=0, shuffle=False,
                                                   callbacks=[dtimer]), dtimer)
        ttimer = _epoch_timer(tfk.callbacks.Callback)
        runs["tfmot"] = (lambda: pruned.fit(**fit_data, epochs=1, verbose=0, shuffle=False,
                                            callbacks=[ttimer, tfmot.sparsity.keras.UpdatePruningStep()]), ttimer)

    for r in range(rounds + 1):  # round 0 traces and is dropped
        order = list(runs) if r % 2 == 0 else list(reversed(runs))
        for label in order:
            runs[label][0]()
    per_step = {label: [t / steps for t in timer.times[1:]] for label, (_, timer) in runs.items()}
    checked = [(m, kl.Mask.from_model(m)) for m in (masked, masked_forward)]
    zeros_ok = all(np.all(kl.pruning.weights_of(m)[p][~alive] == 0) for m, mask in checked for p, alive in mask.items())
    return per_step, checked[0][1].density, zeros_ok


def paired_ratio(times, baseline):
    """Median over rounds of ``times[i] / baseline[i]``."""
    return statistics.median(a / b for a, b in zip(times, baseline))


_BASELINE = {"dense_copy": "dense", "masked": "dense", "masked_forward": "dense", "compact": "dense",
             "tfmot": "tfk_dense"}


def _measure_in_subprocesses(count):
    """Runs this benchmark in ``count`` fresh processes; returns their ``rows`` (see ``_measure``)."""
    import json
    import subprocess
    import tempfile

    passed = [a for a in sys.argv[1:] if not a.startswith(("--processes", "--json_out"))]
    rows_by_process = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(count):
            out = os.path.join(tmp, f"run{i}.json")
            subprocess.run([sys.executable, "-m", "experiments.bench_masks", *passed, "--processes=1",
                            f"--json_out={out}"], check=True)
            with open(out) as f:
                rows_by_process.append(json.load(f))
    return rows_by_process


def _measure():
    """``[(model, {variant: [s/step per round]}, density, zeros_ok, rounds, steps)]`` in this process."""
    rows = []
    for name in MODELS.value:
        rounds = ROUNDS.value or _SETUP[name][3]
        steps = STEPS.value or _SETUP[name][4]
        per_step, density, zeros_ok = bench(name, rounds, steps, SPARSITY.value, STEPS_PER_EXECUTION.value,
                                            JIT.value, TFMOT.value, INPUT.value, COMPACT.value)
        rows.append((name, per_step, density, bool(zeros_ok), rounds, steps))
        print(f"{name}: " + ", ".join(f"{k} {min(v) * 1e3:.2f} ms/step" for k, v in per_step.items()), flush=True)
    return rows


def main(argv):
    del argv
    for name in MODELS.value:
        if name not in _SETUP:
            raise app.UsageError(f"--models accepts {sorted(_SETUP)}; got {name!r}.")
    if COMPACT.value and MODELS.value != ["lenet_300_100"]:
        raise app.UsageError("--compact needs --models=lenet_300_100 (its masked layers are all Dense).")
    if PROCESSES.value < 1:
        raise app.UsageError("--processes must be >= 1.")
    if PROCESSES.value > 1:
        rows_by_process = _measure_in_subprocesses(PROCESSES.value)
    else:
        rows_by_process = [_measure()]
        if JSON_OUT.value:
            import json

            with open(JSON_OUT.value, "w") as f:
                json.dump(rows_by_process[0], f)
            return
    count = len(rows_by_process)
    print()
    print("| model | batch | processes x rounds x steps | variant | fastest ms/step | median ms/step "
          "| ratio to its dense: median of paired rounds" + (" (median of processes; each process)" if count > 1
                                                            else "") + " |")
    print("|---|---|---|---|---|---|---|")
    for i, (name, _, _, _, rounds, steps) in enumerate(rows_by_process[0]):
        runs = [process_rows[i][1] for process_rows in rows_by_process]
        for label in runs[0]:
            times = [t for run in runs for t in run[label]]
            base = _BASELINE.get(label)
            if base:
                ratios = [paired_ratio(run[label], run[base]) for run in runs]
                ratio = f"{statistics.median(ratios):.3f} to {base}"
                if count > 1:
                    ratio += " (" + ", ".join(f"{r:.3f}" for r in ratios) + ")"
            else:
                ratio = "1"
            print(f"| {name} | {_SETUP[name][1]} | {count} x {rounds} x {steps} | {label} | {min(times) * 1e3:.2f} | "
                  f"{statistics.median(times) * 1e3:.2f} | {ratio} |")
    rows = [r for process_rows in rows_by_process for r in process_rows]
    densities = sorted({f"{r[0]}={r[2]:.3f}" for r in rows})
    print(f"\nmasked density {', '.join(densities)}; dead weights exactly 0 after training: "
          f"{all(r[3] for r in rows)}; input={INPUT.value}, steps_per_execution={STEPS_PER_EXECUTION.value}, "
          f"jit_compile={JIT.value}, python {sys.version.split()[0]}")


if __name__ == "__main__":
    app.run(main)
