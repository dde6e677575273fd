"""Where a Keras 3 LeNet-300-100 step (batch 60, Adam, cached dataset) spends its time against tf_keras'.

    python keras3_step_overhead.py ROUNDS functions  # train functions called in a loop (no fit)
    python keras3_step_overhead.py ROUNDS fit        # fit epochs: Keras 3, lean, lean without batch hooks
    python keras3_step_overhead.py EPOCHS profile    # cProfile of fit epochs, both frameworks
    python keras3_step_overhead.py 0 ops             # op counts of the two compiled train functions

``functions`` and ``fit`` time each variant in interleaved rounds of 100 steps and print the median
step, the fastest round's step and the median over rounds of the variant / tf_keras ratio of the same
round (paired). ``functions`` calls each train function 100 times on a fresh dataset iterator:

- ``graph``: ``tf.function(model.train_step)`` on one fixed batch (the compiled step, no iterator);
- ``keras3``: Keras 3's own train function (``model.train_function`` as ``fit`` makes it);
- ``flat``: one ``tf.function`` running ``train_step(next(iterator))`` (the lean function's design);
- ``nested``: the same with the step in a nested ``tf.function`` (as Keras nests ``one_step_on_data``);
- ``optional``: ``flat`` with Keras' ``Optional`` around the outputs and its two eager ops per step
  (``has_value()`` read as a bool, ``get_value()``);
- ``tf_keras``: tf_keras' train function.

``fit`` times ``fit`` epochs (the benchmark's epoch timer): Keras 3, with
``keras_lottery.training.streamline_train_function`` (``lean``), the same with the per-step callback
hooks skipped (a ``CallbackList`` whose batch hooks do nothing, as tf_keras skips them when no callback
has one: ``lean_nohooks``), and tf_keras. Run from the repository root with the project's
environment and the repository on ``PYTHONPATH`` (``PYTHONPATH=. python docs/...``).
"""

import collections
import cProfile
import io
import pstats
import statistics
import sys
import time

import keras
import numpy as np
import tensorflow as tf
import tf_keras as tfk
from keras.callbacks import CallbackList

from keras_lottery import models as zoo
from keras_lottery.benchmarks import masks as bm
from keras_lottery.training.train_function import streamline_train_function

STEPS, BATCH = 100, 60


def data():
    rng = np.random.default_rng(0)
    x = rng.random((BATCH * STEPS, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, BATCH * STEPS)
    return x, y, tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH).cache()


def keras3(dataset=None):
    model = zoo.get("lenet_300_100", (28, 28, 1), 10, seed=0)
    model.compile(keras.optimizers.Adam(1.2e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    if dataset is not None:
        model.fit(dataset.take(1), verbose=0)  # builds the optimizer
    return model


def tf_keras():
    model = bm._tfkeras_lenet(tfk, (28, 28, 1), 10)
    model.compile(tfk.optimizers.Adam(1.2e-3), tfk.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def report(times, baseline="tf_keras"):
    for label, values in times.items():
        ratio = statistics.median(a / b for a, b in zip(values, times[baseline]))
        print(f"{label:13s} median {statistics.median(values) * 1e3:.3f} ms, fastest round {min(values) * 1e3:.3f} ms, "
              f"paired ratio to {baseline} {ratio:.3f}")


def interleaved(runs, rounds):
    """``{label: [seconds per step, one per round]}``; round 0 (tracing) is dropped."""
    times = {label: [] for label in runs}
    for r in range(rounds + 1):
        for label in (list(runs) if r % 2 == 0 else list(reversed(runs))):
            t0 = time.perf_counter()
            runs[label]()
            if r:
                times[label].append((time.perf_counter() - t0) / STEPS)
    return times


def functions(rounds):
    x, y, dataset = data()
    batch = (tf.constant(x[:BATCH]), tf.constant(y[:BATCH]))
    fns = {}
    model = keras3(dataset)
    graph = tf.function(model.train_step)
    model = keras3(dataset)
    model.make_train_function()
    fns["keras3"] = model.train_function
    model = keras3(dataset)
    fns["flat"] = tf.function(lambda it, m=model: m.train_step(next(it)))
    model = keras3(dataset)
    inner = tf.function(model.train_step)
    fns["nested"] = tf.function(lambda it: inner(next(it)))
    model = keras3(dataset)
    outer = tf.function(lambda it, m=model: tf.experimental.Optional.from_value(m.train_step(next(it))))

    def optional(it):
        outputs = outer(it)
        if not outputs.has_value():
            raise StopIteration
        return outputs.get_value()

    fns["optional"] = optional
    fns["tf_keras"] = tf_keras().make_train_function()

    def loop(f):
        it = iter(dataset)
        for _ in range(STEPS):
            f(it)

    runs = {"graph": lambda: [graph(batch) for _ in range(STEPS)]}
    runs.update({label: (lambda f=f: loop(f)) for label, f in fns.items()})
    report(interleaved(runs, rounds))


class _NoBatchHooks(CallbackList):
    def on_train_batch_begin(self, batch, logs=None):
        pass

    def on_train_batch_end(self, batch, logs=None):
        pass


def fit(rounds):
    _, _, dataset = data()
    plain, lean, lean_nohooks = keras3(), keras3(), keras3()
    for model in (lean, lean_nohooks):
        streamline_train_function(model)
    timer = bm._epoch_timer(keras.callbacks.Callback)  # the benchmark's callback (epoch hooks only)

    def hooks_skipped(model):
        return _NoBatchHooks([timer], add_history=True, model=model, epochs=1, steps=STEPS, verbose=0)

    runs = {"keras3": lambda: plain.fit(dataset, epochs=1, verbose=0, shuffle=False, callbacks=[timer]),
            "lean": lambda: lean.fit(dataset, epochs=1, verbose=0, shuffle=False, callbacks=[timer]),
            "lean_nohooks": lambda: lean_nohooks.fit(dataset, epochs=1, verbose=0, shuffle=False,
                                                     callbacks=hooks_skipped(lean_nohooks))}
    tk, tk_timer = tf_keras(), bm._epoch_timer(tfk.callbacks.Callback)
    runs["tf_keras"] = lambda: tk.fit(dataset, epochs=1, verbose=0, shuffle=False, callbacks=[tk_timer])
    report(interleaved(runs, rounds))


def profile(epochs):
    _, _, dataset = data()
    lean = keras3()
    streamline_train_function(lean)
    for name, model in (("keras3", keras3()), ("keras3 lean", lean), ("tf_keras", tf_keras())):
        model.fit(dataset, epochs=1, verbose=0, shuffle=False)
        prof = cProfile.Profile()
        prof.enable()
        model.fit(dataset, epochs=epochs, verbose=0, shuffle=False)
        prof.disable()
        out = io.StringIO()
        stats = pstats.Stats(prof, stream=out).sort_stats("tottime")
        stats.print_stats(6)
        stats.print_callers("TFE_Py_FastPathExecute")  # the eager ops run from Python, by caller
        print(f"== {name}: {epochs} epochs of {STEPS} steps")
        print("\n".join(line for line in out.getvalue().splitlines() if line.strip()))


def ops():
    _, _, dataset = data()
    model = keras3(dataset)
    model.make_train_function()
    lean = keras3(dataset)
    streamline_train_function(lean)
    lean.fit(dataset.take(1), verbose=0)
    tk = tf_keras()
    tk.fit(dataset.take(1), verbose=0)
    import inspect  # Keras' compiled function is a closure variable of model.train_function
    keras_outer = inspect.getclosurevars(model.train_function).nonlocals["multi_step_on_iterator"]
    lean_outer = inspect.getclosurevars(lean.train_function).nonlocals["compiled"]
    for name, function in (("keras3", keras_outer), ("keras3 lean", lean_outer), ("tf_keras", tk.train_function)):
        graph = function.get_concrete_function(iter(dataset)).graph.as_graph_def()
        counts = [collections.Counter(n.op for n in graph.node)]
        counts += [collections.Counter(n.op for n in f.node_def) for f in graph.library.function]
        total = sum(counts, collections.Counter())
        print(f"{name}: {sum(total.values())} ops (outer graph {sum(counts[0].values())}, "
              f"{len(counts) - 1} nested functions); "
              + ", ".join(f"{op} {total[op]}" for op in ("OptionalFromValue", "StatefulPartitionedCall", "Cast",
                                                             "ReadVariableOp", "MatMul")))


if __name__ == "__main__":
    count, which = int(sys.argv[1]), sys.argv[2]
    {"functions": functions, "fit": fit, "profile": profile, "ops": lambda _: ops()}[which](count)
