"""Checks an exported SavedModel the way TF Serving sees it: in another process, without Keras.

``run_saved_model`` starts a fresh Python interpreter in which ``keras``, ``tf_keras`` and
``keras_lottery`` cannot be imported (a directory of packages that raise ``ImportError`` comes
first on its path), loads the export with ``tf.saved_model.load``, calls a signature and returns
its outputs and the SavedModel's variables. ``verify`` compares those outputs with a Keras model's.
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from keras_lottery import compat
from keras_lottery.export import savedmodel

__all__ = ["ServedOutputs", "VerificationError", "compare", "keras_free_env", "run_saved_model", "verify"]

BLOCKED = ("keras", "tf_keras", "keras_lottery")

_CHILD = r"""
import json, sys
import numpy as np
import tensorflow as tf

export_dir, signature_name, inputs_path, outputs_path = sys.argv[1:5]
loaded = tf.saved_model.load(export_dir)
if signature_name not in loaded.signatures:
    raise SystemExit(f"signature {signature_name!r} not found; have {sorted(loaded.signatures)}")
fn = loaded.signatures[signature_name]
with np.load(inputs_path) as data:
    inputs = {k: tf.constant(data[k]) for k in data.files}
outputs = fn(**inputs)
arrays = {"out/" + k: v.numpy() for k, v in outputs.items()}
arrays.update({"var/" + v.name: v.numpy() for v in loaded.variables})
np.savez(outputs_path, **arrays)
blocked = sys.argv[5].split(",")
imported = sorted(m for m in sys.modules if m.split(".")[0] in blocked)
print("VERIFY_JSON " + json.dumps({"imported_blocked": imported, "tensorflow": tf.__version__}))
"""


class VerificationError(AssertionError):
    """An exported model disagrees with the Keras model, or could not be run on its own."""


class ServedOutputs:
    """What a fresh process got from a SavedModel: ``outputs`` and ``variables`` (name -> array)."""

    def __init__(self, outputs, variables, tensorflow_version):
        self.outputs = outputs
        self.variables = variables
        self.tensorflow_version = tensorflow_version

    def __repr__(self):
        return f"ServedOutputs(outputs={sorted(self.outputs)}, variables={len(self.variables)})"


def keras_free_env(root):
    """Environment for a child ``python -P`` in which ``keras``, ``tf_keras`` and ``keras_lottery`` fail to import.

    Writes packages of those names that raise ``ImportError`` under ``root`` and puts ``root``
    first on ``PYTHONPATH``, so they shadow the installed ones (and an editable install).
    """
    for name in BLOCKED:
        os.makedirs(os.path.join(root, name), exist_ok=True)
        with open(os.path.join(root, name, "__init__.py"), "w") as f:
            f.write(f"raise ImportError('{name} must not be imported while checking a SavedModel')\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = root
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.pop("PYTHONSTARTUP", None)
    return env


def run_saved_model(export_dir, inputs, signature_name="serving_default", timeout=300):
    """Calls ``signature_name`` of the SavedModel at ``export_dir`` in a fresh process without Keras.

    Args:
        export_dir: a SavedModel directory (``base_dir/<version>``).
        inputs: ``{input name: array}`` (the signature's keyword arguments).
        signature_name: which signature to call.
        timeout: seconds before the child process is killed.

    Returns:
        ``ServedOutputs`` with the signature's outputs and every variable of the loaded SavedModel
        (names as stored, e.g. ``"fc1/kernel:0"``).
    """
    export_dir = os.path.abspath(os.fspath(export_dir))
    if not os.path.isfile(os.path.join(export_dir, "saved_model.pb")):
        raise FileNotFoundError(f"No SavedModel at {export_dir!r} (expected {export_dir}/saved_model.pb).")
    if not isinstance(inputs, dict) or not inputs:
        raise TypeError(f"inputs must be a non-empty dict {{input name: array}}, got {type(inputs).__name__}.")
    with tempfile.TemporaryDirectory(prefix="kl_verify_") as tmp:
        in_path, out_path = os.path.join(tmp, "inputs.npz"), os.path.join(tmp, "outputs.npz")
        np.savez(in_path, **{k: np.asarray(v) for k, v in inputs.items()})
        env = keras_free_env(os.path.join(tmp, "blocked"))
        # -P: the working directory is not put on sys.path, so a checkout's keras_lottery stays invisible.
        cmd = [sys.executable, "-P", "-c", _CHILD, export_dir, signature_name, in_path, out_path, ",".join(BLOCKED)]
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)
        info = None
        for line in proc.stdout.splitlines():
            if line.startswith("VERIFY_JSON "):
                info = json.loads(line[len("VERIFY_JSON "):])
        if proc.returncode != 0 or info is None:
            raise VerificationError(f"Loading {export_dir} in a fresh TensorFlow process failed "
                                    f"(exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        if info["imported_blocked"]:
            raise VerificationError(f"The serving process imported {info['imported_blocked']}; a SavedModel for "
                                    "TF Serving must not need them.")
        with np.load(out_path) as data:
            outputs = {k[4:]: data[k] for k in data.files if k.startswith("out/")}
            variables = {k[4:]: data[k] for k in data.files if k.startswith("var/")}
    return ServedOutputs(outputs, variables, info["tensorflow"])


def _inputs_by_name(model, names, inputs):
    """``inputs`` as a dict keyed by the model's input names (a bare array for a one-input model)."""
    if not isinstance(inputs, dict):
        if len(names) != 1:
            raise TypeError(f"Model {model.name!r} has inputs {names}; pass inputs as a dict keyed by them.")
        inputs = {names[0]: inputs}
    if set(inputs) != set(names):
        raise ValueError(f"inputs has keys {sorted(inputs)}; the model's inputs are {names}.")
    return inputs


def compare(served, model, inputs, atol=1e-5):
    """``{output name: max abs difference}`` between served outputs and ``model``'s; raises above ``atol``.

    ``served`` is a ``ServedOutputs`` (or a dict of outputs). ``model``'s inference-mode output on
    ``inputs`` is compared with ``logits`` when the signature has it, else with ``probabilities``;
    ``probabilities`` next to ``logits`` is compared with the softmax of the model's logits. A model with
    several outputs is compared output by output, by name.

    Raises:
        VerificationError: when an output differs by more than ``atol`` or is unexpected.
    """
    outputs = served.outputs if isinstance(served, ServedOutputs) else served
    names = savedmodel.input_names(model)
    inputs = _inputs_by_name(model, names, inputs)
    args = [np.asarray(inputs[n]) for n in names]
    result = compat.call_with_inputs(model, args, training=False)
    reference = {}
    expected = np.asarray(result) if len(model.outputs) == 1 else None
    if expected is None:  # one signature output per model output, under its name
        reference = {k: np.asarray(v) for k, v in savedmodel.flat_outputs(model, result).items()}
    elif "logits" in outputs:
        reference["logits"] = expected
        shifted = np.exp(expected - expected.max(axis=-1, keepdims=True))
        reference["probabilities"] = shifted / shifted.sum(axis=-1, keepdims=True)
    else:
        reference["probabilities"] = expected
    diffs = {}
    for name, value in outputs.items():
        if name not in reference:
            raise VerificationError(f"Unexpected output {name!r}; expected {sorted(reference)}.")
        value = np.asarray(value)
        if value.shape != reference[name].shape:
            raise VerificationError(f"Output {name!r} has shape {value.shape}, the Keras model gives {reference[name].shape}.")
        diffs[name] = float(np.max(np.abs(value.astype(np.float64) - reference[name].astype(np.float64))))
    bad = {k: v for k, v in diffs.items() if not v <= atol}
    if bad:
        raise VerificationError(f"The served model differs from the Keras model by {bad} (atol={atol}).")
    return diffs


def verify(export_dir, model, inputs, atol=1e-5, signature_name="serving_default", timeout=300):
    """Checks that the SavedModel at ``export_dir`` computes what ``model`` computes, without Keras.

    Runs the signature in a fresh process (``run_saved_model``) and compares with ``compare``.

    Args:
        export_dir: the exported version directory.
        model: the Keras model the export came from (masked or plain).
        inputs: one array (single-input models) or ``{input name: array}``.
        atol: largest accepted absolute difference.

    Returns:
        ``(ServedOutputs, {output name: max abs difference})``.

    Raises:
        VerificationError: when an output differs by more than ``atol`` or the model cannot be served.
    """
    names = savedmodel.input_names(model)
    inputs = _inputs_by_name(model, names, inputs)
    served = run_saved_model(export_dir, inputs, signature_name, timeout)
    return served, compare(served, model, inputs, atol)
