"""Timing helpers: call counts, order and which times are measured (sleeps of known length)."""

import time

import keras
import numpy as np

from keras_lottery.benchmarks import timing


def test_time_call_returns_the_last_result_and_one_time_per_call():
    calls = []

    def fn(a, b=0):
        calls.append((a, b))
        time.sleep(0.01)
        return len(calls)

    result, times = timing.time_call(fn, 1, repeat=3, b=2)
    assert result == 3 and calls == [(1, 2)] * 3
    assert len(times) == 3 and all(0.01 <= t < 1 for t in times)


def test_interleaved_step_times_runs_in_turn_and_ranks_a_slower_step_by_its_extra_time():
    calls = []

    def step(name, seconds, warmup_seconds=0.0):
        def run(x, y):
            calls.append(name)
            time.sleep(warmup_seconds if calls.count(name) == 1 else seconds)
        return run

    # "fast" sleeps 0.2 s in its warm-up call only (untimed: the call order shows warm-up runs first).
    steps = {"fast": step("fast", 0.0, warmup_seconds=0.2), "slow": step("slow", 0.01)}
    times = timing.interleaved_step_times(steps, None, None, rounds=3, steps_per_round=5, warmup=1)
    assert calls == ["fast", "slow"] + ["fast"] * 5 + ["slow"] * 5 + ["fast"] * 5 + ["slow"] * 5 + \
        ["fast"] * 5 + ["slow"] * 5
    assert times["fast"] < 0.005 < 0.01 <= times["slow"] < 0.04  # seconds per step, not per round


def test_make_train_step_compiles_the_given_model_in_place_and_trains_it():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    step = timing.make_train_step(model)
    assert isinstance(model.optimizer, keras.optimizers.SGD) and float(model.optimizer.momentum) == 0.9
    before = model.get_weights()[0].copy()
    loss = step(np.ones((4, 3), "float32"), np.array([0, 1, 0, 1]))
    assert np.isfinite(loss) and not np.allclose(model.get_weights()[0], before)
