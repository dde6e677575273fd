"""Timing helpers: wall time of calls and of training steps, measured fairly on a shared machine."""

import statistics
import time

import keras


def time_call(fn, *args, repeat=1, **kwargs):
    """Run ``fn(*args, **kwargs)`` ``repeat`` times; return (last result, list of wall seconds per call)."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return result, times


def make_train_step(model, optimizer=None, loss=None, jit_compile=False):
    """Compile ``model`` itself for training and return ``step(x, y)``, which runs one update of it.

    ``model`` is compiled in place (no copy), replacing any previous compile: its optimizer, loss and
    metrics. It gets ``optimizer`` (SGD with momentum 0.9 by default) and ``loss`` (sparse categorical
    cross-entropy from logits by default); ``step`` calls ``model.train_on_batch``, so it trains the
    caller's model.
    """
    model.compile(optimizer=optimizer or keras.optimizers.SGD(0.01, momentum=0.9),
                  loss=loss or keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=jit_compile)

    def step(x, y):
        return model.train_on_batch(x, y)

    return step


def interleaved_step_times(steps, x, y, rounds=5, steps_per_round=5, warmup=2):
    """Time several training steps fairly on a shared machine.

    Args:
        steps: ``{name: step(x, y)}`` callables (e.g. from :func:`make_train_step`).
        x, y: one batch, the same for every step function.
        rounds: timing rounds; in each round every step function runs ``steps_per_round`` times in turn,
            so that load changes on the machine hit all of them alike.
        warmup: untimed calls of each step function first (tracing, allocation).

    Returns:
        ``{name: median seconds per step}`` over the per-round means.
    """
    for step in steps.values():
        for _ in range(warmup):
            step(x, y)
    per_round = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(steps_per_round):
                step(x, y)
            per_round[name].append((time.perf_counter() - start) / steps_per_round)
    return {name: statistics.median(values) for name, values in per_round.items()}
