r"""Step time of masked training against dense training and against TFMOT's prune_low_magnitude.

For each model (LeNet-300-100, ResNet-20), in one process and on the same data:

- dense: the Keras 3 model;
- dense_copy: a second, identical Keras 3 dense model. Its ratio to ``dense`` is the noise floor of
  the measurement: two identical models differ by this much on this machine;
- masked: ``keras_lottery.mask(model)`` pruned to 80% sparsity (layerwise magnitude);
- masked_forward: the same with ``mask_forward=True`` (a forward-pass multiply as well);
- gradient_unmasked: a diagnostic, not a usable variant: the masked model without the multiply of
  each gradient by its mask (``MaskedLayer.mask_gradient`` replaced by the identity), so its dead
  weights train. ``masked`` minus it is what that multiply, the mechanism that keeps dead weights
  exactly zero, costs per step;
- sparsity_api: ``keras_lottery.sparsity.prune_low_magnitude`` with ``ConstantSparsity(sparsity,
  begin_step=0, frequency=100)`` and the ``UpdatePruningStep`` callback, configured as the TFMOT
  variant below (the TFMOT-style API on this library's masks);
- m_by_n: the same API with ``sparsity_m_by_n=(2, 4)`` (2:4 structured sparsity);
- api_no_callback: a diagnostic: ``sparsity_api``'s model pruned once before training
  (``prune_to(sparsity)``: the masks its first turn installs) and trained without
  ``UpdatePruningStep``, so it has no turn after; ``sparsity_api`` minus it is what the callback costs;
- tfk_dense: the same architecture on ``tf_keras`` (TFMOT's own dense baseline);
- tfmot: the same architecture on ``tf_keras`` wrapped in ``prune_low_magnitude`` with
  ``ConstantSparsity(0.8)`` and the ``UpdatePruningStep`` callback;
- keras3, keras3_fused and keras3_lean: the framework against tf_keras (ratios to ``tfk_dense``): the
  zoo's Keras 3 model as built; with its batch normalizations on TensorFlow's fused kernel
  (:func:`keras_lottery.training.fused_batch_norm.fuse_batch_norm`); and with that and the lean train
  function (:func:`keras_lottery.training.train_function.streamline_train_function`: the batch taken
  inside the compiled step, no ``Optional`` around its outputs), as the library's
  ``compile_for_classification`` compiles a model. With ``steps_per_execution > 1`` the lean function
  does not apply (Keras' own runs), so keras3_lean then times what keras3_fused times;
- compact (``compact=True``, models whose masked layers are all ``Dense``): a design alternative the
  library does not use. Each layer trains only its live weights, one compact variable per kernel
  that is scattered into a dense kernel in every forward pass, so the optimizer updates 20% of the
  entries and no gradient is multiplied by a mask.

Every model trains with ``fit`` on one cached, batched ``tf.data`` dataset (so input conversion is
not timed), or with ``input_kind="numpy"`` on the in-memory arrays (``fit(x, y, batch_size)``, the
way most users call it: Keras' input handling then adds the same time to every model's step). The
models are timed in interleaved rounds, one epoch of ``steps`` steps each per round, in
alternating order, after one untimed epoch each (tracing). Reported per model: the
fastest epoch (ms per step) and, as the ratio, the **median over rounds of the epoch time divided by
the dense epoch time of the same round** (a paired ratio: load from other processes hits both
alike). Keras 3 models are compared with ``dense``; TFMOT with ``tfk_dense`` (Keras 3 and tf_keras
differ in per-step overhead, so a TFMOT step is compared with the dense step of its own framework).

``steps_per_execution=N`` runs N steps per call of the compiled function, which removes most of
the Python work per step: the ratios then compare the compiled steps alone (stricter: the fixed
per-step overhead no longer dilutes the mask's cost).

Two identical models differ by a few tenths of a percent within one process, but a whole process
can come out 1-2 points apart from the next (memory placement, thread scheduling): ``processes=N``
repeats the measurement in N fresh processes (``python -m keras_lottery.benchmarks.masks``, this
module's worker) and :func:`table` reports the median of their ratios, each one, and their mean with
its 95% confidence interval. On a 2-core machine identical models differ by up to 4 points in one
process, so a difference of 1-2 points needs a few dozen processes: ``variants=[...]`` times only
the variants named (with their dense models), which makes each process shorter.

The binary is ``experiments/bench_masks.py``; ``run(...)`` returns one list of rows per process.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from keras_lottery import models as zoo
from keras_lottery.masks import Mask
from keras_lottery.pruning import LayerwiseMagnitude, prune, weights_of
from keras_lottery.masking import MaskedLayer, mask, masked_layers
from keras_lottery.sparsity import ConstantSparsity, UpdatePruningStep, prune_low_magnitude
from keras_lottery.sparsity.wrapper import pruning_wrappers
from keras_lottery.spread import mean_interval
from keras_lottery.training.fused_batch_norm import fuse_batch_norm
from keras_lottery.training.train_function import streamline_train_function

SETUP = {  # input shape, batch size, optimizer (the papers' settings), default rounds and steps
    "lenet_300_100": ((28, 28, 1), 60, "adam", 30, 100),
    "resnet20": ((32, 32, 3), 128, "sgd", 8, 10),
}
INPUT_KINDS = ("dataset", "numpy")
BASELINE = {"dense_copy": "dense", "masked": "dense", "masked_forward": "dense", "gradient_unmasked": "dense",
            "compact": "dense", "sparsity_api": "dense", "m_by_n": "dense", "api_no_callback": "dense",
            "tfmot": "tfk_dense", "keras3": "tfk_dense", "keras3_fused": "tfk_dense", "keras3_lean": "tfk_dense"}
# (the dense model each variant's ratio is taken to; keras3*: the framework against tf_keras)
KERAS3_VARIANTS = ("dense", "dense_copy", "masked", "masked_forward", "gradient_unmasked", "sparsity_api", "m_by_n",
                   "api_no_callback", "compact", "keras3", "keras3_fused", "keras3_lean")
TFMOT_VARIANTS = ("tfk_dense", "tfmot")
WORKER = "keras_lottery.benchmarks.masks"  # run with python -m by measure_in_subprocesses (see _worker)


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


class _CompactDense(keras.layers.Layer):
    """``Dense`` storing only its live kernel entries, scattered into the dense kernel in each call."""

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


def compact_copy(masked):
    """A functional copy of ``masked`` (Dense-only masked layers) that stores and trains only live weights.

    Each ``MaskedLayer(Dense)`` becomes a layer with one trainable vector of its live kernel entries;
    the forward pass scatters it into a dense kernel (so the gradient of a dead entry is never
    formed). The copy computes the same function as ``masked``.
    """
    if not all(isinstance(layer.layer, keras.layers.Dense) for layer in masked_layers(masked)):
        raise ValueError("compact_copy: every masked layer must wrap a Dense layer.")
    weights = weights_of(masked)
    alive = Mask.from_model(masked)

    def clone_function(layer):
        if isinstance(layer, MaskedLayer):
            path = layer.weight_paths()[0]
            return _CompactDense(layer.layer, weights[path], alive[path])
        return layer.__class__.from_config(layer.get_config())

    return keras.models.clone_model(masked, clone_function=clone_function)


def _value_only(value, mask_value):
    """The ``gradient_unmasked`` diagnostic's ``mask_gradient``: the weight's value, its gradient untouched."""
    del mask_value
    return value


def _fit_data(name, steps, input_kind):
    """``fit`` keyword arguments for ``steps`` batches of seeded random data shaped for model ``name``."""
    input_shape, batch, _, _, _ = SETUP[name]
    rng = np.random.default_rng(0)
    x = rng.random((batch * steps,) + input_shape, dtype=np.float32)
    y = rng.integers(0, 10, batch * steps)
    if input_kind == "dataset":
        return {"x": tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).cache()}
    return {"x": x, "y": y, "batch_size": batch}


def _tfmot_runs(name, sparsity, fit_data):
    """``{label: (run one epoch, timer)}`` for the dense tf_keras model and TFMOT's pruned one."""
    # Imported here, only when TFMOT is timed: importing it sets TF_USE_LEGACY_KERAS, which switches
    # tf.keras to legacy Keras for the whole process (Keras 3 is already loaded by then).
    import tensorflow_model_optimization as tfmot
    import tf_keras as tfk

    input_shape, _, opt, _, _ = SETUP[name]
    build = _tfkeras_lenet if name == "lenet_300_100" else _tfkeras_resnet
    tfk_dense = build(tfk, input_shape, 10)
    base = build(tfk, input_shape, 10)
    schedule = tfmot.sparsity.keras.ConstantSparsity(sparsity, begin_step=0, frequency=100)
    pruned = tfmot.sparsity.keras.prune_low_magnitude(base, pruning_schedule=schedule)

    def tfk_optimizer():
        return tfk.optimizers.Adam(1.2e-3) if opt == "adam" else tfk.optimizers.SGD(0.1, momentum=0.9)

    pruned.compile(tfk_optimizer(), tfk.losses.SparseCategoricalCrossentropy(from_logits=True))
    tfk_dense.compile(tfk_optimizer(), tfk.losses.SparseCategoricalCrossentropy(from_logits=True))
    dtimer = _epoch_timer(tfk.callbacks.Callback)
    ttimer = _epoch_timer(tfk.callbacks.Callback)
    return {
        "tfk_dense": (lambda: tfk_dense.fit(**fit_data, epochs=1, verbose=0, shuffle=False, callbacks=[dtimer]),
                      dtimer),
        "tfmot": (lambda: pruned.fit(**fit_data, epochs=1, verbose=0, shuffle=False,
                                     callbacks=[ttimer, tfmot.sparsity.keras.UpdatePruningStep()]), ttimer),
    }


def bench(name, rounds, steps, sparsity, steps_per_execution, jit_compile, with_tfmot, input_kind="dataset",
          with_compact=False, variants=None):
    """Times the variants of ``name``; returns ``({label: [seconds per step, one per round]}, density, zeros_ok)``.

    ``variants``: the labels to time (all by default; :func:`selected` adds the dense baselines they need).
    """
    wanted = set(selected(variants, with_tfmot, with_compact))
    input_shape, _, opt, _, _ = SETUP[name]
    fit_data = _fit_data(name, steps, input_kind)
    dense = zoo.get(name, input_shape, 10, seed=0)
    dense_copy = zoo.get(name, input_shape, 10, seed=0)
    masked = mask(dense)
    masked_forward = mask(dense, mask_forward=True)
    gradient_unmasked = mask(dense)
    for model in (masked, masked_forward, gradient_unmasked):
        prune(model, LayerwiseMagnitude(density=1.0 - sparsity))
    for layer in masked_layers(gradient_unmasked):
        layer.mask_gradient = _value_only
    # keras_lottery.sparsity, configured as the TFMOT variant (ConstantSparsity, a turn every 100 steps),
    # and with 2:4 sparsity; both train with UpdatePruningStep. Like TFMOT's, prune_low_magnitude wraps the
    # model's own layer objects, so each variant gets its own copy of the dense model (same seed, same weights).
    schedule = ConstantSparsity(sparsity, begin_step=0, frequency=100)

    def fresh():
        return zoo.get(name, input_shape, 10, seed=0)

    api = prune_low_magnitude(fresh(), pruning_schedule=schedule)
    m_by_n = prune_low_magnitude(fresh(), sparsity_m_by_n=(2, 4))
    api_no_callback = prune_low_magnitude(fresh(), pruning_schedule=schedule)
    for wrapper in pruning_wrappers(api_no_callback):
        wrapper.prune_to(sparsity)
    setup = UpdatePruningStep()  # sets the wrappers up (training without it raises), then is left out of fit
    setup.set_model(api_no_callback)
    setup.on_train_begin()
    keras3_fused, keras3_lean = fresh(), fresh()
    for model in (keras3_fused, keras3_lean):
        fuse_batch_norm(model)
    streamline_train_function(keras3_lean)  # as the library's training compiles a model (training.optimizers)
    models = [("dense", dense), ("dense_copy", dense_copy), ("masked", masked), ("masked_forward", masked_forward),
              ("gradient_unmasked", gradient_unmasked), ("sparsity_api", api), ("m_by_n", m_by_n),
              ("api_no_callback", api_no_callback), ("keras3", fresh()), ("keras3_fused", keras3_fused),
              ("keras3_lean", keras3_lean)]
    with_step = {"sparsity_api", "m_by_n"}
    if "compact" in wanted:  # selected() names it only with_compact
        models.append(("compact", compact_copy(masked)))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    runs = {}
    for label, model in [(label, model) for label, model in models if label in wanted]:
        optimizer = keras.optimizers.Adam(1.2e-3) if opt == "adam" else keras.optimizers.SGD(0.1, momentum=0.9)
        model.compile(optimizer, loss, jit_compile=jit_compile, steps_per_execution=steps_per_execution)
        timer = _epoch_timer(keras.callbacks.Callback)
        callbacks = [UpdatePruningStep(), timer] if label in with_step else [timer]
        runs[label] = (lambda m=model, c=callbacks: m.fit(**fit_data, epochs=1, verbose=0, shuffle=False,
                                                          callbacks=c), timer)
    if wanted & set(TFMOT_VARIANTS):  # selected() names them only with_tfmot
        runs.update({k: v for k, v in _tfmot_runs(name, sparsity, fit_data).items() if k in wanted})

    for r in range(rounds + 1):  # round 0 traces and is dropped
        order = list(runs) if r % 2 == 0 else list(reversed(runs))
        for label in order:
            runs[label][0]()
    per_step = {label: [t / steps for t in timer.times[1:]] for label, (_, timer) in runs.items()}
    # every trained variant that keeps dead weights at zero (with the density of the plain mask)
    trained = [m for label, m in models if label in wanted and label not in ("dense", "dense_copy", "gradient_unmasked",
                                                                             "compact", "keras3", "keras3_fused",
                                                                             "keras3_lean")]
    checked = [(m, Mask.from_model(m)) for m in trained]
    zeros_ok = all(np.all(weights_of(m)[p][~alive] == 0) for m, found in checked for p, alive in found.items())
    return per_step, Mask.from_model(masked).density, zeros_ok


def selected(variants, with_tfmot=True, with_compact=False):
    """The labels :func:`bench` times for ``variants`` (``None``: every one the options allow), in timing
    order, with the dense model each one's ratio is taken to."""
    available = [v for v in KERAS3_VARIANTS if (with_compact or v != "compact")
                 and (with_tfmot or BASELINE.get(v) != "tfk_dense")]
    available += list(TFMOT_VARIANTS) if with_tfmot else []
    wanted = set(available if variants is None else variants)
    wanted |= {BASELINE[v] for v in wanted if v in BASELINE}
    return [v for v in available if v in wanted]


def paired_ratio(times, baseline):
    """Median over rounds of ``times[i] / baseline[i]``."""
    return statistics.median(a / b for a, b in zip(times, baseline))


def validate(models, compact=False, processes=1, input_kind="dataset", variants=None, tfmot=True):
    """Raise ``ValueError`` naming the argument if :func:`run` cannot take these arguments."""
    for name in models:
        if name not in SETUP:
            raise ValueError(f"models accepts {sorted(SETUP)}; got {name!r}.")
    if compact and list(models) != ["lenet_300_100"]:
        raise ValueError("compact needs models == ['lenet_300_100'] (its masked layers are all Dense).")
    if processes < 1:
        raise ValueError("processes must be >= 1.")
    if input_kind not in INPUT_KINDS:
        raise ValueError(f"input_kind accepts {list(INPUT_KINDS)}; got {input_kind!r}.")
    if variants is not None:
        known = KERAS3_VARIANTS + TFMOT_VARIANTS
        unknown = [v for v in variants if v not in known]
        if unknown or not variants:
            raise ValueError(f"variants accepts a non-empty list of {list(known)}; got {list(variants)!r}.")
        if "compact" in variants and not compact:
            raise ValueError("variants names 'compact': pass compact=True (--compact) as well.")
        if {v for v in variants if v in TFMOT_VARIANTS or BASELINE.get(v) == "tfk_dense"} and not tfmot:
            raise ValueError("variants names a variant timed against tf_keras but tfmot=False (--notfmot).")


def measure(models, rounds=None, steps=None, sparsity=0.8, steps_per_execution=1, jit_compile=False,
            input_kind="dataset", tfmot=True, compact=False, verbose=True, variants=None):
    """Benchmarks each model in this process; returns one row (a dict) per model.

    Row keys: ``model``, ``per_step`` (``{variant: [seconds per step, one per round]}``), ``density``
    (of the masked model), ``zeros_ok`` (dead weights exactly 0 after training), ``rounds``, ``steps``.
    ``rounds`` and ``steps`` default to the model's (:data:`SETUP`). ``verbose`` prints each model's
    fastest step times when it is done. ``variants`` (labels of the module docstring; all by default)
    limits what is timed: fewer variants make each round shorter.
    """
    rows = []
    for name in models:
        rounds_n, steps_n = rounds or SETUP[name][3], steps or SETUP[name][4]
        per_step, density, zeros_ok = bench(name, rounds_n, steps_n, sparsity, steps_per_execution, jit_compile,
                                            tfmot, input_kind, compact, variants)
        rows.append(dict(model=name, per_step=per_step, density=float(density), zeros_ok=bool(zeros_ok),
                         rounds=rounds_n, steps=steps_n))
        if verbose:
            print(f"{name}: " + ", ".join(f"{k} {min(v) * 1e3:.2f} ms/step" for k, v in per_step.items()), flush=True)
    return rows


def measure_in_subprocesses(count, **options):
    """Runs :func:`measure` (``options``: its arguments) in ``count`` fresh processes, one after another.

    Each process is ``python -m keras_lottery.benchmarks.masks OPTIONS_JSON OUT_JSON``; its printed
    progress goes to this process's standard output. Returns the rows of each process.
    """
    rows_by_process = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(count):
            out = os.path.join(tmp, f"run{i}.json")
            subprocess.run([sys.executable, "-m", WORKER, json.dumps(options), out], check=True)
            with open(out) as f:
                rows_by_process.append(json.load(f))
    return rows_by_process


def run(models=("lenet_300_100", "resnet20"), rounds=None, steps=None, sparsity=0.8, steps_per_execution=1,
        jit_compile=False, input_kind="dataset", tfmot=True, compact=False, processes=1, verbose=True, variants=None):
    """Runs the benchmark (see the module docstring); returns the rows of each process (a list of lists).

    With ``processes=1`` it runs in this process, else in ``processes`` fresh ones. Arguments are those
    of :func:`measure`; :func:`validate` checks them first.
    """
    models = list(models)
    validate(models, compact, processes, input_kind, variants, tfmot)
    options = dict(models=models, rounds=rounds, steps=steps, sparsity=sparsity,
                   steps_per_execution=steps_per_execution, jit_compile=jit_compile, input_kind=input_kind,
                   tfmot=tfmot, compact=compact, verbose=verbose,
                   variants=None if variants is None else list(variants))
    if processes > 1:
        return measure_in_subprocesses(processes, **options)
    return [measure(**options)]


def table(rows_by_process, input_kind="dataset", steps_per_execution=1, jit_compile=False):
    """The Markdown table of :func:`run`'s result, with a closing line of checks and settings, as lines.

    With several processes each variant's ratio is the median of the processes' ratios (each one
    listed), and a last column gives their mean with its 95% confidence interval (Student t over the
    processes: each process is one sample of its memory placement and thread scheduling).
    """
    count = len(rows_by_process)
    several = count > 1
    lines = ["", "| model | batch | processes x rounds x steps | variant | fastest ms/step | median ms/step "
             "| ratio to its dense: median of paired rounds"
             + (" (median of processes; each process) | mean of processes ± 95% CI |" if several else " |"),
             "|---|---|---|---|---|---|---|" + ("---|" if several else "")]
    for i, row in enumerate(rows_by_process[0]):
        processes = [process_rows[i]["per_step"] for process_rows in rows_by_process]
        for label in processes[0]:
            times = [t for per_step in processes for t in per_step[label]]
            base = BASELINE.get(label)
            pooled = ""
            if base:
                ratios = [paired_ratio(per_step[label], per_step[base]) for per_step in processes]
                ratio = f"{statistics.median(ratios):.3f} to {base}"
                if several:
                    ratio += " (" + ", ".join(f"{r:.3f}" for r in ratios) + ")"
                    pooled = "{:.3f} ± {:.3f}".format(*mean_interval(ratios))
            else:
                ratio = "1"
            lines.append(f"| {row['model']} | {SETUP[row['model']][1]} | {count} x {row['rounds']} x {row['steps']} "
                         f"| {label} | {min(times) * 1e3:.2f} | {statistics.median(times) * 1e3:.2f} | {ratio} |"
                         + (f" {pooled} |" if several else ""))
    rows = [r for process_rows in rows_by_process for r in process_rows]
    densities = sorted({f"{r['model']}={r['density']:.3f}" for r in rows})
    lines += ["", f"masked density {', '.join(densities)}; dead weights exactly 0 after training: "
              f"{all(r['zeros_ok'] for r in rows)}; input={input_kind}, steps_per_execution={steps_per_execution}, "
              f"jit_compile={jit_compile}, python {sys.version.split()[0]}"]
    return lines


def _worker(argv):
    """A :func:`measure_in_subprocesses` child: ``argv[1]`` is :func:`measure`'s arguments as JSON, ``argv[2]``
    the JSON file for its rows."""
    rows = measure(**json.loads(argv[1]))
    with open(argv[2], "w") as f:
        json.dump(rows, f)


if __name__ == "__main__":
    _worker(sys.argv)
