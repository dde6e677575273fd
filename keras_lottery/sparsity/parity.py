"""Cross-check of ``keras_lottery.sparsity`` against TFMOT itself, step by step.

TFMOT runs on ``tf_keras`` (importing it sets ``TF_USE_LEGACY_KERAS`` for the whole process), so its
side runs in a fresh interpreter: ``python -m keras_lottery.sparsity.parity CASE.npz OUT.npz``. (several
cases, in pairs of arguments). A *case* is a small model spec, its initial weights, the training data and the pruning arguments;
both sides build the same model on their Keras, load the same weights, wrap it with their
``prune_low_magnitude``, train it with ``fit`` (plain SGD, MSE, no shuffling) and record, after each
step, every pruned weight's mask (and, before each step, the weights).

:func:`compare` runs both and reports, step by step, the fraction of mask entries that differ.
:func:`replay` is the exact check: TFMOT's own weights before each of its pruning turns, given to
this library's mask rule with the schedule's sparsity, must give TFMOT's mask (ties at the
threshold aside; with ``block_size``, weights whose dimensions are multiples of the block: for other
shapes TFMOT scores each block over a window shifted by half the "SAME" padding of its pooling, while
this library scores the block itself). Differences in the end-to-end comparison come from two sources only: float
rounding between the two frameworks, and TFMOT letting a pruned weight's one-step gradient update
survive until the next forward pass (here it stays exactly 0), which can revive a weight.
"""

import json
import os
import subprocess
import sys
import tempfile

import keras
import numpy as np

from keras_lottery.sparsity import schedules, structured
from keras_lottery.sparsity.callbacks import UpdatePruningStep
from keras_lottery.sparsity.prune import prune_low_magnitude
from keras_lottery.sparsity.wrapper import pruning_wrappers

__all__ = ["compare", "make_case", "replay", "run_ours", "run_tfmot"]


def _build(keras_module, spec, input_shape):
    """The Sequential model of ``spec`` (``[["conv", filters, kernel] | ["flatten"] | ["dense", units, act]]``)."""
    L = keras_module.layers
    stack = [L.InputLayer(input_shape=input_shape) if keras_module is not keras else keras.Input(input_shape)]
    for kind, *args in spec:
        if kind == "conv":
            stack.append(L.Conv2D(args[0], args[1], activation="relu"))
        elif kind == "flatten":
            stack.append(L.Flatten())
        else:
            stack.append(L.Dense(args[0], activation=args[1] if len(args) > 1 else None))
    return keras_module.Sequential(stack)


def make_case(spec, input_shape=(12,), outputs=4, steps=20, batch=16, seed=0, schedule=None, block_size=(1, 1),
              block_pooling_type="AVG", sparsity_m_by_n=None, learning_rate=0.05):
    """A case dict: model ``spec`` (see ``_build``), seeded initial weights and data, pruning arguments."""
    model = _build(keras, spec, input_shape)
    rng = np.random.default_rng(seed)
    weights = [rng.normal(0, 0.5, w.shape).astype("float32") for w in model.get_weights()]
    schedule = schedule or schedules.ConstantSparsity(0.5, 0, frequency=5)
    return {"spec": spec, "input_shape": list(input_shape), "steps": steps, "batch": batch, "lr": learning_rate,
            "weights": weights, "x": rng.normal(size=(steps * batch, *input_shape)).astype("float32"),
            "y": rng.normal(size=(steps * batch, outputs)).astype("float32"),
            "prune": {"pruning_schedule": schedule.get_config(), "block_size": list(block_size),
                      "block_pooling_type": block_pooling_type,
                      "sparsity_m_by_n": None if sparsity_m_by_n is None else list(sparsity_m_by_n)}}


def _save_case(case, path):
    arrays = {f"w{i}": w for i, w in enumerate(case["weights"])}
    meta = {k: v for k, v in case.items() if k not in ("weights", "x", "y")}
    np.savez(path, x=case["x"], y=case["y"], meta=json.dumps(meta), **arrays)


def _load_case(path):
    data = np.load(path)
    case = json.loads(str(data["meta"]))
    case.update(x=data["x"], y=data["y"], weights=[data[f"w{i}"] for i in range(sum(k.startswith("w") for k in data))])
    return case


def _recorder(keras_module, pruned_vars):
    """A callback recording the weights before and the masks after each step: ``{"w<t>_<i>", "m<t>_<i>"}``."""
    record = {}

    class Recorder(keras_module.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            for i, (weight, _) in enumerate(pruned_vars()):
                record[f"w{batch + 1}_{i}"] = np.array(weight.numpy())

        def on_train_batch_end(self, batch, logs=None):
            for i, (_, mask) in enumerate(pruned_vars()):
                record[f"m{batch + 1}_{i}"] = np.array(mask.numpy()) != 0

    return Recorder(), record


def _fit(model, keras_module, case, callbacks):
    model.compile(optimizer=keras_module.optimizers.SGD(case["lr"]), loss="mse")
    model.fit(case["x"], case["y"], batch_size=case["batch"], epochs=1, shuffle=False, verbose=0, callbacks=callbacks)


def run_ours(case):
    """This library's record of ``case`` (see :func:`_recorder`)."""
    model = _build(keras, case["spec"], tuple(case["input_shape"]))
    model.set_weights(case["weights"])
    args = dict(case["prune"], pruning_schedule=schedules.deserialize(case["prune"]["pruning_schedule"]))
    pruned = prune_low_magnitude(model, **args)
    recorder, record = _recorder(keras, lambda: [(v, m) for w in pruning_wrappers(pruned)
                                                 for _, v, m in w.masked_weights()])
    _fit(pruned, keras, case, [UpdatePruningStep(), recorder])
    return record


def _tfmot_side(case_path, out_path):
    """The child: TFMOT's record of the case (run with ``python -m keras_lottery.sparsity.parity``)."""
    import tensorflow_model_optimization as tfmot  # only here: it switches tf.keras to legacy Keras
    import tf_keras

    case = _load_case(case_path)
    sparsity = tfmot.sparsity.keras
    model = _build(tf_keras, case["spec"], tuple(case["input_shape"]))
    model.set_weights(case["weights"])
    config = case["prune"]["pruning_schedule"]
    schedule = getattr(sparsity, config["class_name"]).from_config(config["config"])
    args = dict(case["prune"], pruning_schedule=schedule, block_size=tuple(case["prune"]["block_size"]),
                sparsity_m_by_n=None if case["prune"]["sparsity_m_by_n"] is None
                else tuple(case["prune"]["sparsity_m_by_n"]))
    pruned = sparsity.prune_low_magnitude(model, **args)
    recorder, record = _recorder(tf_keras, lambda: [(v, m) for layer in pruned.layers
                                                    for v, m, _ in getattr(layer, "pruning_vars", [])])
    _fit(pruned, tf_keras, case, [sparsity.UpdatePruningStep(), recorder])
    np.savez(out_path, **record)


def run_tfmot(cases, timeout=600):
    """TFMOT's records of ``cases`` (a list), from one fresh interpreter (Keras 3 untouched in this process)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_USE_LEGACY_KERAS", None)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, case in enumerate(cases):
            paths += [os.path.join(tmp, f"case{i}.npz"), os.path.join(tmp, f"tfmot{i}.npz")]
            _save_case(case, paths[-2])
        proc = subprocess.run([sys.executable, "-m", "keras_lottery.sparsity.parity", *paths],
                              env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"The TFMOT side failed:\n{proc.stderr[-4000:]}")
        records = []
        for out_path in paths[1::2]:
            with np.load(out_path) as data:
                records.append({k: data[k] for k in data})
        return records


def compare(case, tfmot_record=None):
    """``{"mismatch": [per step: fraction of mask entries that differ], "density_ours", "density_tfmot"}``."""
    ours, theirs = run_ours(case), tfmot_record if tfmot_record is not None else run_tfmot([case])[0]
    out = {"mismatch": [], "density_ours": [], "density_tfmot": []}
    for step in range(1, case["steps"] + 1):
        keys = sorted(k for k in theirs if k.startswith(f"m{step}_"))
        if sorted(k for k in ours if k.startswith(f"m{step}_")) != keys:
            raise ValueError(f"step {step}: the two sides prune different weights ({len(keys)} in TFMOT).")
        a = np.concatenate([ours[k].ravel() for k in keys])
        b = np.concatenate([theirs[k].ravel() for k in keys])
        out["mismatch"].append(float(np.mean(a != b)))
        out["density_ours"].append(float(a.mean()))
        out["density_tfmot"].append(float(b.mean()))
    return out


def replay(case, tfmot_record):
    """Per pruning turn ``t`` and weight ``i``: entries where this library's rule on TFMOT's weights before
    ``t`` differs from TFMOT's mask at ``t`` (``{(t, i): count}``; all 0 means the same masks)."""
    prune = case["prune"]
    schedule = schedules.deserialize(prune["pruning_schedule"])
    out = {}
    for step in range(1, case["steps"] + 1):
        m_by_n = prune["sparsity_m_by_n"]
        should, sparsity = (step == 1, 0.0) if m_by_n else schedules.evaluate(schedule, step)
        if not should:
            continue
        for key in sorted(k for k in tfmot_record if k.startswith(f"w{step}_")):
            index = int(key.split("_")[1])
            weights = tfmot_record[key]
            mask = (structured.m_by_n_mask(weights, m_by_n) if m_by_n
                    else structured.block_mask(weights, sparsity, prune["block_size"], prune["block_pooling_type"])[0])
            out[(step, index)] = int(np.sum(mask != tfmot_record[f"m{step}_{index}"]))
    return out


if __name__ == "__main__":
    for case_file, record_file in zip(sys.argv[1::2], sys.argv[2::2]):
        _tfmot_side(case_file, record_file)
