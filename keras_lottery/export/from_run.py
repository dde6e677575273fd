"""A ticket from a run directory to TF Serving's ``saved_models/<name>/<version>/`` (``experiments/export.py``).

An IMP run's level ``N`` (the ``runs.FINAL_MODEL`` of ``runs.level_dir(run_dir, N)``) or a layer-lottery
run's ticket (a ``runs.ticket_file`` in the run directory; the only one when none is named) becomes a
SavedModel with a model card (:func:`keras_lottery.export.for_serving`). The card takes its
hyper-parameters from the run's ``runs.HPARAMS`` and its accuracy from the level's or the ticket
training's (``runs.ticket_training_dir``) ``runs.METRICS``, else the run's. The dense model it is
compared with is IMP's level 0 or the layer-lottery replicate's ``runs.DENSE`` training. A sample
request, ``<base_dir>/<name>/request.json``, is written next to the versions, the export is checked in
a process without Keras, and the commands that serve and query it are logged.

Every file of the run directory is named by :mod:`keras_lottery.runs`; nothing here knows a layout.
"""

import json
import os
import re

import keras
import numpy as np

from keras_lottery import files, runs
from keras_lottery import masking  # noqa: F401  (registers MaskedLayer with Keras, to load masked .keras files)
from keras_lottery.export import rest, savedmodel, serving, verification

__all__ = ["REQUEST_FILENAME", "export_run", "serving_name", "sources"]

REQUEST_FILENAME = "request.json"  # beside the versions; TF Serving ignores it (not a number)


def _finished_levels(run_dir):
    return [n for n in runs.levels(run_dir) if runs.training_finished(runs.level_dir(run_dir, n))]


def _level_model(run_dir, level):
    """The trained model of IMP level ``level`` of ``run_dir``; only a finished level (its ``metrics.json``)."""
    level_dir = runs.level_dir(run_dir, level)
    done = ", ".join(map(str, _finished_levels(run_dir))) or "none"
    if not os.path.isdir(level_dir):
        raise FileNotFoundError(f"No IMP level directory {level_dir!r} (finished levels: {done}).")
    if not runs.training_finished(level_dir):
        raise ValueError(f"Level {level} of {run_dir} has not finished training ({runs.training_progress(level_dir)}; no "
                         f"{runs.METRICS}): run the imp command again to finish it. Finished levels: {done}.")
    model = runs.model_file(level_dir)
    if not os.path.isfile(model):
        raise files.DamagedFileError(model, f"missing, although {runs.METRICS} marks level {level} finished",
                                     f"Delete {os.path.join(level_dir, runs.METRICS)} and run the imp command again.")
    return model


def _ticket_finished(run_dir, path):
    """Raises ValueError when the layer-lottery ticket ``path`` or its replicate's dense model has not finished."""
    parsed = runs.parse_ticket_file(path, with_unit=True)
    if parsed is None:
        return
    criterion, p, replicate, unit = parsed
    for what, training_dir in (("ticket", runs.ticket_training_dir(run_dir, replicate, criterion, p, unit)),
                               ("dense model", os.path.join(runs.replicate_dir(run_dir, replicate), runs.DENSE))):
        if not runs.training_finished(training_dir):
            raise ValueError(f"The {what} of {os.path.basename(path)} has not finished training ({training_dir}: "
                             f"{runs.training_progress(training_dir)}): run the layer_lottery command again to finish it.")


def serving_name(text):
    """``text`` made into a TF Serving model name: characters other than letters, digits, ``_.-`` become ``_``
    (run directory names hold ``=`` and ``,``)."""
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", str(text)).strip("._-")
    return name or "model"


def _layer_ticket(run_dir, ticket):
    """The path of the layer-lottery ticket ``ticket`` (a file name in ``run_dir``), or of the only one."""
    if ticket is None:
        found = runs.ticket_files(run_dir)
        if len(found) != 1:
            raise FileNotFoundError(f"{run_dir!r} holds {len(found)} layer-lottery tickets ({', '.join(found) or 'none'}); "
                                    "pick one with --ticket=FILE, or pass --level=N for an IMP run.")
        ticket = found[0]
    path = os.path.join(run_dir, ticket)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No layer-lottery ticket {path!r}; pass --level=N for an IMP run or --ticket=FILE.")
    return path


def sources(run_dir, level=None, ticket=None, dense=None):
    """What to export from ``run_dir``: ``{"model", "dense", "metrics", "kind"}``.

    ``model`` and ``dense`` are paths (``dense`` None for a ticket whose replicate has no dense model);
    ``metrics`` lists the metrics files to take the accuracy from, first found first; ``kind`` names
    the export (``level<N>``, or the ticket file's name without ``.keras``). ``ticket`` and ``dense``
    are relative to ``run_dir``; ``level`` picks an IMP level, else a layer-lottery ticket is exported.

    Raises:
      FileNotFoundError: a directory or model that is not there (the message names it).
      ValueError: a negative ``level``, both ``level`` and ``ticket``, or a level or ticket (or its
        dense model) that has not finished training.
    """
    run_dir = os.fspath(run_dir)
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"--run_dir {run_dir!r} is not a directory.")
    dense_path = os.path.join(run_dir, dense) if dense else None
    if dense_path is not None and not os.path.isfile(dense_path):
        raise FileNotFoundError(f"No dense model {dense_path!r} (--dense is relative to --run_dir).")
    if level is not None and ticket is not None:
        raise ValueError("--level (an IMP level) and --ticket (a layer-lottery ticket) exclude each other; pass one.")
    if level is not None:
        if level < 0:
            raise ValueError(f"--level must be a level number >= 0, got {level}.")
        model = _level_model(run_dir, level)
        metrics = [os.path.join(runs.level_dir(run_dir, level), runs.METRICS), os.path.join(run_dir, runs.METRICS)]
        return {"model": model, "dense": dense_path or _level_model(run_dir, 0), "metrics": metrics,
                "kind": f"level{level}"}
    model = _layer_ticket(run_dir, ticket)
    _ticket_finished(run_dir, model)
    metrics = [os.path.join(run_dir, runs.METRICS)]
    parsed = runs.parse_ticket_file(model, with_unit=True)
    if parsed:
        criterion, p, replicate, unit = parsed
        metrics.insert(0, os.path.join(runs.ticket_training_dir(run_dir, replicate, criterion, p, unit), runs.METRICS))
        replicate_dense = runs.model_file(os.path.join(runs.replicate_dir(run_dir, replicate), runs.DENSE))
        if dense_path is None and os.path.isfile(replicate_dense):
            dense_path = replicate_dense
    kind = os.path.splitext(os.path.basename(model))[0]
    return {"model": model, "dense": dense_path, "metrics": metrics, "kind": kind}


def _accuracy(metrics_files):
    """``{key: value}`` of the accuracy entries of the first metrics file that has any, else None."""
    for path in metrics_files:
        metrics = files.read_json(path, {}, advice="Delete it and run the experiment's command again to recompute it.")
        found = {k: float(v) for k, v in metrics.items()
                 if "accuracy" in k and isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1}
        if found:
            return found
    return None


def _load(path):
    advice = "Delete it and run the experiment's command again to recompute it (or export another level or ticket)."
    with files.guard(path, advice):
        return keras.saving.load_model(path, compile=False)


def export_run(run_dir, level=None, ticket=None, dense=None, name=None, base_dir="saved_models", version=None,
               verify=True, log=print):
    """Exports a run's IMP level or layer-lottery ticket for TF Serving (see the module docstring).

    Args:
      run_dir: the run directory.
      level, ticket, dense: what to export and compare with (:func:`sources`).
      name: the model name for TF Serving; default: the run directory's name plus ``_level<N>`` or
        ``_<ticket file stem>``, made a valid name (:func:`serving_name`).
      base_dir: where exported models live (``<base_dir>/<name>/<version>/``).
      version: the version to write; None takes the next free one.
      verify: check the export in a fresh process without Keras.
      log: called with each line to print (what was exported, sizes, the serve and query commands).

    Returns:
      The ``ExportResult``.

    Raises:
      FileNotFoundError, ValueError: a missing source or bad argument, before anything is written.
      VerificationError: the export disagrees with the Keras model, or could not be served.
    """
    run_dir = os.path.normpath(os.fspath(run_dir))
    found = sources(run_dir, level, ticket, dense)
    name = name or serving_name(f"{os.path.basename(run_dir)}_{found['kind']}")
    serving.docker_command(base_dir, name)  # checks the name before any work
    hparams = files.read_json(os.path.join(run_dir, runs.HPARAMS))
    model, dense_model = (_load(path) if path else None for path in (found["model"], found["dense"]))
    model_dir = os.path.join(base_dir, name)
    result = savedmodel.for_serving(model, model_dir, version, dense_model=dense_model,
                                    accuracy=_accuracy(found["metrics"]),
                                    hparams=hparams, run_dir=run_dir,
                                    require_sparse=level is not None and level > 0)
    sample = {t.name: np.random.default_rng(0).normal(size=(1, *t.shape[1:])).astype(t.dtype)
              for t in model.inputs}
    request = os.path.join(model_dir, REQUEST_FILENAME)
    files.write_text(request, json.dumps(rest.request_body(sample)))
    if verify:
        _, diffs = verification.verify(result.path, model, sample)
        log(f"Verified without Keras: max abs difference {diffs}")
    card = result.card
    log(f"Exported {found['model']} -> {result.path} ({card['ticket']} ticket, density "
        f"{card['density']['global']['density']:.4f})")
    size = card["size"]
    line = f"SavedModel {size['ticket']['bytes']:,} bytes, {size['ticket']['gzip_bytes']:,} gzipped"
    if size["dense"]:
        line += f" (dense: {size['dense']['bytes']:,} / {size['dense']['gzip_bytes']:,})"
    log(line)
    log("Serve:  " + serving.docker_command(model_dir, name))
    log("Query:  " + serving.curl_command(name, request))
    return result
