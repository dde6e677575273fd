"""The model card: a JSON file beside each export saying what the model is and where it came from.

Everything in it is either measured on the exported model (architecture, density, FLOPs,
parameters, sizes) or handed in by the caller (accuracy, hyper-parameters, run directory, the
dense model to compare against). Nothing is guessed: a value that is not known is ``null``.
"""

import dataclasses
import datetime
import json
import math
import platform

import keras
import numpy as np
import tensorflow as tf

from keras_lottery import files, masking
from keras_lottery.version import __version__

__all__ = ["CARD_FILENAME", "architecture", "check_accuracy", "check_jsonable", "density_report", "model_card"]

CARD_FILENAME = "model_card.json"
SCHEMA = "keras-lottery/model-card/v1"

# The card's density is the library's one density report: masks for a masked model, non-zero entries
# of the prunable weights (keras_lottery.layers) for a plain one.
density_report = masking.density_report


def _shape(tensor):
    return [None if d is None else int(d) for d in tensor.shape]


def architecture(model):
    """Name, class, layer count and per-class counts, and input/output shapes of ``model``."""
    classes = {}
    for layer in model.layers:
        classes[type(layer).__name__] = classes.get(type(layer).__name__, 0) + 1
    return {
        "name": model.name,
        "class": type(model).__name__,
        "layers": len(model.layers),
        "layer_classes": dict(sorted(classes.items())),
        "layer_names": [layer.name for layer in model.layers],
        "inputs": {t.name: _shape(t) for t in model.inputs},
        "outputs": [_shape(t) for t in model.outputs],
    }


def check_jsonable(name, value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    try:
        return json.loads(json.dumps(value, allow_nan=False, default=files.json_default))
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be JSON-serializable (dict, list, str, number, bool, None); "
                        f"got {type(value).__name__}: {err}") from None


def check_accuracy(accuracy):
    """``accuracy`` as stored in the card: None, a number in [0, 1], or ``{split: number}``."""
    if accuracy is None:
        return None
    values = accuracy if isinstance(accuracy, dict) else {"accuracy": accuracy}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0 <= float(value) <= 1 \
                or math.isnan(float(value)):
            raise ValueError(f"accuracy must be a number in [0, 1] or a dict of them; got {key!r}: {value!r}.")
    return accuracy if not isinstance(accuracy, dict) else {str(k): float(v) for k, v in accuracy.items()}


def _ratio(a, b):
    return None if a is None or not b else a / b


def model_card(*, ticket, signature, version, density, sizes, flops, params, dense=None, blocks_removed=None,
               accuracy=None, hparams=None, run_dir=None, ticket_kind=None, layers_renumbered=False):
    """Assembles the model card dict (see ``docs/serving.md`` for the fields).

    ``ticket`` is the exported (plain Keras) model; ``dense`` is ``None`` or a dict with the dense
    model's ``architecture``, ``flops``, ``params``, ``sizes`` and ``density``. ``blocks_removed`` None
    means unknown (``null`` in the card); with ``layers_renumbered`` (a backbone resized to fewer
    layers) ``layers_removed`` is ``null`` too, as names no longer pair the two models' layers.
    """
    dense = dense or {}
    arch = architecture(ticket)
    card = {
        "schema": SCHEMA,
        "name": ticket.name,
        "version": version,
        "ticket": ticket_kind,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        "signature": signature,
        "architecture": arch,
        "density": density,
        "blocks_removed": None if blocks_removed is None and layers_renumbered else list(blocks_removed or []),
        "layers_removed": None if layers_renumbered else [
            n for n in dense.get("architecture", {}).get("layer_names", []) if n not in arch["layer_names"]],
        "flops": {"ticket": flops, "dense": dense.get("flops"), "ratio": _ratio(flops, dense.get("flops"))},
        "params": {"ticket": params, "ticket_nonzero_prunable": density["global"]["alive"],
                   "dense": dense.get("params"), "ratio": _ratio(params, dense.get("params"))},
        "size": {
            "ticket": sizes,
            "dense": dense.get("sizes"),
            "gzip_ratio": _ratio(sizes["gzip_bytes"], (dense.get("sizes") or {}).get("gzip_bytes")),
        },
        "dense_model": None if not dense else {"name": dense["architecture"]["name"],
                                              "layers": dense["architecture"]["layers"],
                                              "density": dense["density"]["global"]["density"]},
        "accuracy": check_accuracy(accuracy),
        "hparams": check_jsonable("hparams", hparams),
        "run_dir": None if run_dir is None else str(run_dir),
        "versions": {"keras_lottery": __version__, "keras": keras.__version__,
                     "tensorflow": tf.__version__, "python": platform.python_version()},
    }
    return card
