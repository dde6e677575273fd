"""Exports a ticket from a run directory for TF Serving: ``saved_models/<name>/<version>/``.

An IMP run's level (``--level=N`` reads ``<run_dir>/level_N/model.keras``) or a layer-lottery run's
ticket (``--ticket=ticket_<criterion>_p<p>_r<r>.keras`` in the run directory; the only one when
omitted) becomes a SavedModel with a model card; the card takes its hyper-parameters from
``<run_dir>/hparams.json`` and its accuracy from the level's or the ticket training's
``metrics.json`` (``replicate_<r>/<criterion>_p<p>/``), else the run's. The dense model it is
compared with is IMP's ``level_0`` or the layer-lottery replicate's ``replicate_<r>/dense/``. A sample request, ``saved_models/<name>/request.json``, is
written next to the versions, the export is checked in a process without Keras, and the commands
that serve and query it are printed.

  python -m experiments.export --run_dir=runs/imp/lenet --level=5 --name=lenet_l5
  python -m experiments.export --run_dir=runs/layer_lottery/resnet20 --ticket=ticket_grasp_p3_r0.keras \
      --name=resnet20_grasp3
"""

import json
import os
import re

import numpy as np
from absl import app, flags, logging

flags.DEFINE_string("run_dir", None, "The run directory to export from.", required=True)
flags.DEFINE_integer("level", None, "IMP level to export (reads <run_dir>/level_<N>/); "
                     "omit for a layer-lottery run's --ticket.")
flags.DEFINE_string("ticket", None, "Layer-lottery ticket: a .keras file relative to --run_dir "
                    "(ticket_<criterion>_p<p>_r<r>.keras); default: the run's only ticket_*.keras.")
flags.DEFINE_string("dense", None, "The dense model to compare with (.keras, relative to --run_dir). Default: "
                    "level_0's model for IMP runs, replicate_<r>/dense/model.keras for layer-lottery tickets.")
flags.DEFINE_string("name", None, "Model name for TF Serving; default: the run directory's name plus "
                    "_level<N> or _ticket.")
flags.DEFINE_string("base_dir", "saved_models", "Where exported models live.")
flags.DEFINE_integer("version", None, "Version to write; default: the next free one.")
flags.DEFINE_bool("verify", True, "Check the export in a fresh process without Keras.")

MODEL_FILES = ("model.keras", "final.keras", "trained.keras")


def _level_model(level_dir):
    """The one .keras model file of an IMP level directory."""
    if not os.path.isdir(level_dir):
        raise FileNotFoundError(f"No IMP level directory {level_dir!r}.")
    for name in MODEL_FILES:
        if os.path.isfile(os.path.join(level_dir, name)):
            return os.path.join(level_dir, name)
    found = sorted(f for f in os.listdir(level_dir) if f.endswith(".keras"))
    if len(found) != 1:
        raise FileNotFoundError(f"{level_dir!r} needs one of {MODEL_FILES} or exactly one .keras file; found "
                                f"{found or 'none'}.")
    return os.path.join(level_dir, found[0])


def _accuracy(*metrics_files):
    """``{key: value}`` of the accuracy entries of the first metrics.json that has any, else None."""
    for path in metrics_files:
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            metrics = json.load(f)
        found = {k: float(v) for k, v in metrics.items()
                 if "accuracy" in k and isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1}
        if found:
            return found
    return None


_TICKET = re.compile(r"^ticket_(?P<train>.+_p\d+)_r(?P<replicate>\d+)\.keras$")


def _layer_ticket(run_dir, ticket):
    if ticket is None:
        found = sorted(f for f in os.listdir(run_dir) if f.startswith("ticket") and f.endswith(".keras"))
        if len(found) != 1:
            raise FileNotFoundError(f"{run_dir!r} holds {len(found)} layer-lottery tickets ({', '.join(found) or 'none'}); "
                                    "pick one with --ticket=FILE, or pass --level=N for an IMP run.")
        ticket = found[0]
    path = os.path.join(run_dir, ticket)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No layer-lottery ticket {path!r}; pass --level=N for an IMP run or --ticket=FILE.")
    return path


def sources(run_dir, level=None, ticket=None, dense=None):
    """What to export from ``run_dir``: ``{"model", "dense", "metrics", "kind"}`` paths (dense may be None)."""
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"--run_dir {run_dir!r} is not a directory.")
    if level is not None:
        if level < 0:
            raise ValueError(f"--level must be a level number >= 0, got {level}.")
        level_dir = os.path.join(run_dir, f"level_{level}")
        model = _level_model(level_dir)
        dense_path = os.path.join(run_dir, dense) if dense else _level_model(os.path.join(run_dir, "level_0"))
        metrics = [os.path.join(level_dir, "metrics.json"), os.path.join(run_dir, "metrics.json")]
        return {"model": model, "dense": dense_path, "metrics": metrics, "kind": f"level{level}"}
    model = _layer_ticket(run_dir, ticket)
    metrics = [os.path.join(run_dir, "metrics.json")]
    dense_path = os.path.join(run_dir, dense) if dense else None
    match = _TICKET.match(os.path.basename(model))
    if match:
        replicate = os.path.join(run_dir, f"replicate_{match['replicate']}")
        metrics.insert(0, os.path.join(replicate, match["train"], "metrics.json"))
        if not dense and os.path.isfile(os.path.join(replicate, "dense", "model.keras")):
            dense_path = os.path.join(replicate, "dense", "model.keras")
    kind = os.path.basename(model)[:-len(".keras")]
    return {"model": model, "dense": dense_path, "metrics": metrics, "kind": kind}


def export_run(run_dir, level=None, ticket=None, dense=None, name=None, base_dir="saved_models",
               version=None, verify=True):
    """Exports a run's ticket; returns the ``ExportResult``. See the module docstring."""
    import keras

    import keras_lottery.wrappers  # noqa: F401  (registers MaskedLayer for loading masked .keras files)
    from keras_lottery import export

    run_dir = os.path.normpath(run_dir)
    found = sources(run_dir, level, ticket, dense)
    name = name or f"{os.path.basename(run_dir)}_{found['kind']}"
    export.docker_command(base_dir, name)  # checks the name before any work
    hparams_file = os.path.join(run_dir, "hparams.json")
    hparams = None
    if os.path.isfile(hparams_file):
        with open(hparams_file) as f:
            hparams = json.load(f)
    model = keras.saving.load_model(found["model"], compile=False)
    dense_model = keras.saving.load_model(found["dense"], compile=False) if found["dense"] else None
    model_dir = os.path.join(base_dir, name)
    result = export.for_serving(model, model_dir, version, dense_model=dense_model,
                                accuracy=_accuracy(*found["metrics"]), hparams=hparams, run_dir=run_dir,
                                require_sparse=level is not None and level > 0)
    sample = {t.name: np.random.default_rng(0).normal(size=(1, *t.shape[1:])).astype(t.dtype)
              for t in model.inputs}
    request = os.path.join(model_dir, "request.json")
    with open(request, "w") as f:
        json.dump(export.request_body(sample), f)
    if verify:
        _, diffs = export.verify(result.path, model, sample)
        print(f"Verified without Keras: max abs difference {diffs}")
    card = result.card
    print(f"Exported {found['model']} -> {result.path} ({card['ticket']} ticket, density "
          f"{card['density']['global']['density']:.4f})")
    size = card["size"]
    line = f"SavedModel {size['ticket']['bytes']:,} bytes, {size['ticket']['gzip_bytes']:,} gzipped"
    if size["dense"]:
        line += f" (dense: {size['dense']['bytes']:,} / {size['dense']['gzip_bytes']:,})"
    print(line)
    print("Serve:  " + export.docker_command(model_dir, name))
    print("Query:  " + export.curl_command(name, request))
    return result


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # TensorFlow's SavedModel writer logs every step at INFO
    f = flags.FLAGS
    export_run(f.run_dir, f.level, f.ticket, f.dense, f.name, f.base_dir, f.version, f.verify)


if __name__ == "__main__":
    app.run(main)
