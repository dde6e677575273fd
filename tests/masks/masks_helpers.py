"""Helpers for the weight-mask tests: a fresh-interpreter runner (for TFMOT, which switches tf.keras
to legacy Keras, and for logical-device set-ups that must precede TensorFlow's initialisation) and a
reader of the dead entries of a masked model."""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_python(code, timeout=120):
    """Runs ``code`` in a new interpreter at the repo root; returns the JSON printed on its last line."""
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_USE_LEGACY_KERAS", None)
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"subprocess failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])



def dead_entries(model):
    """``{path: values of the masked weight at dead positions}``."""
    import keras_lottery as kl

    mask = kl.Mask.from_model(model)
    weights = kl.pruning.weights_of(model)
    return {p: weights[p][~m] for p, m in mask.items()}
