"""Stability to SGD noise (linear mode connectivity, Frankle et al. 2019/2020).

From one starting point (theta_k, and a mask for a sparse network), two copies are trained from
step k to T with different data-order seeds (and so different augmentation noise). The error of
``(1 - a) W1 + a W2`` is evaluated on a grid of ``a`` in [0, 1] on training and test data. The
instability is the largest error on the path minus the mean of the two end errors; a network is
called stable when it is below about 2%.

Batch normalization: the moving mean and variance of an interpolated network are not the
interpolation of the end points' statistics in any useful sense, so before each evaluation they
are recomputed on (unaugmented) training data: every ``BatchNormalization`` layer gets the exact
average of the batch means and variances over ``bn_examples`` training examples. Networks without
batch normalization are evaluated as interpolated.

Mask variables are never interpolated (both copies share the mask), and integer variables (seed
generator states) are taken from the first copy.

The ``stability`` experiment (:func:`run`, after :func:`check`): the dense network is trained once
from its initialization to the largest k, saving the rewind point at every k; at each k the mask is
applied (none, one for every k, or one per k) and :func:`instability` trains the two copies. The run
directory holds ``rewind_points/k_<k>.npz``, ``pretrain/`` (the dense training), ``k_<k>/`` (the two
copies and ``stability.json``, the curves), ``results.csv`` (one row per k) and
``instability_vs_k.png``; the file names are those of :mod:`keras_lottery.runs`.
"""

import dataclasses
import os
import shutil
import tempfile

import keras
import numpy as np

from keras_lottery import files, layers, masking, models, runs, training
from keras_lottery.callbacks.rewind import RewindCheckpoint, RewindPoint
from keras_lottery.lottery import plots
from keras_lottery.masks import Mask
from keras_lottery.training import durations

__all__ = ["PLOT", "Plan", "StabilityResult", "check", "error_curve", "instability", "recompute_batch_norm",
           "results_file", "run"]

PLOT = runs.STABILITY_PLOT


@dataclasses.dataclass
class StabilityResult:
    """The error along the linear path between two trained copies, and the instability.

    Attributes:
      alphas: the interpolation coefficients a (0 is the first copy, 1 the second).
      train_error, test_error: the error (1 - accuracy) at each a.
      train_instability, test_instability: max error on the path minus the mean of the end errors.
      start_step: k, where both copies started.
      data_seeds: the data-order seeds of the two copies.
    """

    alphas: list
    train_error: list
    test_error: list
    train_instability: float
    test_instability: float
    start_step: int = 0
    data_seeds: tuple = ()

    def as_dict(self):
        """A JSON-ready dict."""
        out = dataclasses.asdict(self)
        out["data_seeds"] = list(self.data_seeds)
        return out


def _instability(errors):
    errors = np.asarray(errors, dtype=np.float64)
    return float(errors.max() - 0.5 * (errors[0] + errors[-1]))


def _batch_norm_layers(model):
    return [layer for layer in layers.walk(model, unwrap=True) if isinstance(layer, keras.layers.BatchNormalization)]


def recompute_batch_norm(model, batches):
    """Sets each BatchNormalization's moving statistics to the average over ``batches``' statistics.

    ``batches`` yields ``(images, labels)`` or images. Returns the number of batches used (0 and
    nothing changed when the model has no batch normalization).
    """
    layers = _batch_norm_layers(model)
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    count = 0
    try:
        for batch in batches:
            images = batch[0] if isinstance(batch, (tuple, list)) else batch
            for layer in layers:  # moving = m * moving + (1 - m) * batch: a running mean when m = n / (n + 1)
                layer.momentum = count / (count + 1.0)
            model(images, training=True)
            count += 1
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    if count == 0:
        raise ValueError("recompute_batch_norm got no batches.")
    return count


def _interpolate(model, first, second, alpha, skip):
    for variable, a, b in zip(model.weights, first, second):
        if id(variable) in skip or not np.issubdtype(np.asarray(a).dtype, np.floating):
            variable.assign(a)
        else:
            mixed = (1.0 - alpha) * np.asarray(a, np.float64) + alpha * np.asarray(b, np.float64)
            variable.assign(mixed.astype(np.asarray(a).dtype))


def error_curve(model, first, second, datasets, points=30, train_limit=10000, bn_examples=10000):
    """Train and test error along ``(1 - a) first + a second`` for ``points`` values of a in [0, 1].

    Args:
      model: a compiled model of the architecture (masked or not) with an ``accuracy`` metric; its
        weights are overwritten.
      first, second: ``get_weights()`` lists of the two end points.
      datasets: the ``Datasets`` whose training (first ``train_limit`` examples) and test splits
        are evaluated.
      points: grid size (>= 2).
      train_limit: training examples evaluated (0 or None for all).
      bn_examples: training examples used to recompute batch-norm statistics at each point.

    Returns ``(alphas, train_error, test_error)`` as lists.
    """
    if int(points) < 2:
        raise ValueError(f"points must be >= 2 (the two end points at least), got {points}.")
    if len(first) != len(model.weights) or len(second) != len(model.weights):
        raise ValueError(f"The end points hold {len(first)} and {len(second)} weights; the model has "
                         f"{len(model.weights)}.")
    skip = {id(m) for m in masking.mask_variables(model)}
    has_bn = bool(_batch_norm_layers(model))
    alphas = [float(a) for a in np.linspace(0.0, 1.0, int(points))]
    train_error, test_error = [], []
    for alpha in alphas:
        _interpolate(model, first, second, alpha, skip)
        if has_bn:
            recompute_batch_norm(model, datasets.train_eval(limit=bn_examples))
        train_error.append(1.0 - float(model.evaluate(datasets.train_eval(limit=train_limit or None), verbose=0,
                                                      return_dict=True)["accuracy"]))
        test_error.append(1.0 - float(model.evaluate(datasets.test(), verbose=0, return_dict=True)["accuracy"]))
    return alphas, train_error, test_error


def _copy_model(model):
    if masking.masked_layers(model):
        return masking.mask(model)  # same graph, weights and masks
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def instability(model, datasets, training_hparams, *, start_step=0, optimizer_state=None, data_seeds=(1, 2),
                points=30, directory=None, train_limit=10000, bn_examples=10000, eval_every=None, verbose=0):
    """Trains two copies of ``model`` from step ``start_step`` with different data orders; measures the path.

    Args:
      model: the starting point theta_k (masked or plain); it is copied, never modified.
      datasets: a ``Datasets``; the copies use its splits with ``data_seeds`` for the order.
      training_hparams: a ``TrainingHparams``; both copies train from ``start_step`` to its T.
      start_step: k: the data position and the optimizer's iteration count at the start.
      optimizer_state: a ``RewindPoint`` whose optimizer state (captured at k) both copies start
        from; None for a fresh optimizer at iteration k.
      data_seeds: the two data-order seeds (equal seeds give two identical copies: instability 0).
      points: the grid size along the path (30 by default, as in the paper).
      directory: where the two copies' resumable training directories go (``copy_0``, ``copy_1``);
        a temporary directory, removed afterwards, when None.
      train_limit, bn_examples: see ``error_curve``.
      eval_every, verbose: passed to ``training.fit``.

    Returns a ``StabilityResult``.
    """
    if len(tuple(data_seeds)) != 2:
        raise ValueError(f"data_seeds takes two seeds, got {data_seeds!r}.")
    spe = datasets.steps_per_epoch
    total = training.total_steps(training_hparams, spe)
    if not 0 <= int(start_step) < total:
        raise ValueError(f"start_step={start_step} must lie in [0, T) with T = {total} steps.")
    if int(points) < 2:
        raise ValueError(f"points must be >= 2, got {points}.")
    state = optimizer_state or RewindPoint(start_step, [], [np.asarray(start_step, np.int64)])
    scratch = directory is None
    directory = tempfile.mkdtemp(prefix="stability-") if scratch else directory
    try:
        ends = []
        for index, seed in enumerate(data_seeds):
            replica = _copy_model(model)
            training.compile_for_classification(replica, training_hparams, spe)
            state.restore_optimizer(replica)
            trained, _ = training.fit(replica, datasets.with_data_seed(seed), training_hparams,
                                      os.path.join(directory, f"copy_{index}"), start_step=int(start_step),
                                      compile_model=False, eval_every=eval_every, verbose=verbose)
            ends.append(trained.get_weights())
        probe = _copy_model(model)
        training.compile_for_classification(probe, training_hparams, spe)
        alphas, train_error, test_error = error_curve(probe, ends[0], ends[1], datasets, points=points,
                                                      train_limit=train_limit, bn_examples=bn_examples)
    finally:
        if scratch:
            shutil.rmtree(directory, ignore_errors=True)
    return StabilityResult(alphas, train_error, test_error, _instability(train_error), _instability(test_error),
                           int(start_step), tuple(int(s) for s in data_seeds))


# -- the stability experiment -------------------------------------------------------------------------
@dataclasses.dataclass
class Plan:
    """What a stability run does, derived by :func:`check` from its hyper-parameters and the data.

    Attributes:
      total: T, the training length in steps.
      ks: the rewind steps k, sorted, each before T.
      masks: ``{k: Mask or None}`` (None: the dense network).
    """

    total: int
    ks: list
    masks: dict

    def describe(self):
        """``T = ..., ks = [...], mask density ...`` (one density per k)."""
        densities = ", ".join(f"{m.density if m is not None else 1.0:.4f}" for m in self.masks.values())
        return f"T = {self.total}, ks = {self.ks}, mask density {densities}"


def results_file(directory):
    """The stability experiment's ``results.csv`` in ``directory`` (one row per k)."""
    return os.path.join(directory, runs.RESULTS)


def _build(hparams, datasets):
    model_hp = hparams["model"]
    return masking.mask(models.get(model_hp.model, datasets.input_shape, datasets.classes, seed=model_hp.model_seed))


def _masks_by_step(stability_hparams, ks, steps_per_epoch, total):
    """``{k: Mask or None}`` for every rewind step of ``ks``; raises ValueError when --mask does not fit --ks."""
    paths = stability_hparams.mask_paths()
    if not paths:
        return {k: None for k in ks}
    if None in paths:
        mask = Mask.load(paths[None])
        return {k: mask for k in ks}
    by_step = {}
    for written, path in paths.items():
        step = durations.to_step_list(written, steps_per_epoch, total)[0]
        if step in by_step:
            raise ValueError(f"--mask gives step {step} two masks.")
        by_step[step] = path
    if set(by_step) != set(ks):
        raise ValueError(f"--mask gives masks for steps {sorted(by_step)} but --ks is {ks}: give one per k.")
    return {k: Mask.load(by_step[k]) for k in ks}


def check(hparams, datasets):
    """Every check of a stability run that needs the data; raises ValueError before anything is written.

    Each k must come before T, a per-k ``--mask`` must give one mask for each k of ``--ks``, and
    every mask must fit the model (a mask of another architecture fails here, before training).

    Args:
      hparams: ``{"model": ModelHparams, "training": TrainingHparams, "stability": StabilityHparams, ...}``.
      datasets: the ``Datasets`` the run trains on.

    Returns the run's :class:`Plan`.
    """
    stability_hparams, spe = hparams["stability"], datasets.steps_per_epoch
    total = training.check(hparams, datasets)  # the schedule, and the model builds for this input
    ks = sorted(set(durations.to_step_list(stability_hparams.ks, spe, total)))
    if not ks:
        raise ValueError("--ks needs at least one rewind step.")
    if ks[-1] >= total:
        raise ValueError(f"--ks reaches step {ks[-1]}; every k must come before T = {total}.")
    masks = _masks_by_step(stability_hparams, ks, spe, total)
    for mask in {id(m): m for m in masks.values() if m is not None}.values():
        masking.apply_mask(_build(hparams, datasets), mask)
    return Plan(total, ks, masks)


def _capture_rewind_points(directory, datasets, hparams, ks, total):
    """Writes ``rewind_points/k_<k>.npz`` for every k that lacks one: one dense run to the largest k."""
    paths = {k: runs.rewind_point_file(directory, k) for k in ks}
    missing = [k for k in ks if not os.path.exists(paths[k])]
    if not missing:
        return paths
    os.makedirs(os.path.dirname(paths[missing[0]]), exist_ok=True)
    spe = datasets.steps_per_epoch
    if max(missing) == 0:
        model = _build(hparams, datasets)
        training.compile_for_classification(model, hparams["training"], spe)
        RewindPoint.capture(model, step=0).save(paths[0])
    else:
        callbacks = [RewindCheckpoint(at=f"{k}it", steps_per_epoch=spe, total_steps=total, path=paths[k])
                     for k in missing]
        training.fit(_build(hparams, datasets), datasets, hparams["training"], os.path.join(directory, runs.PRETRAIN),
                     end_step=max(missing), callbacks=callbacks, verbose=0)
    return paths


def run(run_dir, datasets, hparams, *, eval_every=None, plot=True, log=print):
    """Runs (or resumes, or reports) the stability experiment: instability against the rewind step k.

    Args:
      run_dir: a prepared ``keras_lottery.runs.RunDirectory`` (or its path).
      datasets: the ``Datasets``; the copies train on them with the two data seeds.
      hparams: ``{"dataset": ..., "model": ModelHparams, "training": TrainingHparams,
        "stability": StabilityHparams}``.
      eval_every: validation / checkpoint interval of the copies' training, in steps (one epoch when None).
      plot: write ``instability_vs_k.png``.
      log: receives one line for the plan and one per k; None for silence.

    Returns:
      One row per k: ``k``, ``density``, ``train_instability``, ``test_instability``,
      ``train_error_end`` and ``test_error_end`` (the mean error of the two copies); also written to
      ``results.csv``. A k whose ``k_<k>/stability.json`` exists is read back, not retrained. The
      completion marker (``runs.COMPLETE``) is written last.

    Raises:
      ValueError: as :func:`check`, before anything is trained.
    """
    directory = os.fspath(getattr(run_dir, "path", run_dir))
    log = log or (lambda line: None)
    plan = check(hparams, datasets)
    stability_hparams, training_hparams = hparams["stability"], hparams["training"]
    log(plan.describe())
    points = _capture_rewind_points(directory, datasets, hparams, plan.ks, plan.total)
    rows = []
    for k in plan.ks:
        result_path = os.path.join(runs.stability_dir(directory, k), runs.STABILITY)
        result = files.read_json(result_path)
        if result is None:
            point = RewindPoint.load(points[k])
            model = point.restore_weights(_build(hparams, datasets))
            if plan.masks[k] is not None:
                masking.apply_mask(model, plan.masks[k])
            result = instability(model, datasets, training_hparams, start_step=k, optimizer_state=point,
                                 data_seeds=stability_hparams.seeds, points=stability_hparams.points,
                                 directory=runs.stability_dir(directory, k), train_limit=stability_hparams.train_limit,
                                 eval_every=eval_every).as_dict()
            files.write_json(result_path, result)
        row = {"k": k, "density": plan.masks[k].density if plan.masks[k] is not None else 1.0,
               "train_instability": result["train_instability"], "test_instability": result["test_instability"],
               "train_error_end": 0.5 * (result["train_error"][0] + result["train_error"][-1]),
               "test_error_end": 0.5 * (result["test_error"][0] + result["test_error"][-1])}
        rows.append(row)
        log(f"k = {k:6d}: instability train {row['train_instability']:.4f}, test {row['test_instability']:.4f}")
    files.write_csv(results_file(directory), rows)
    if plot:
        title = (f"{hparams['model'].model} on {hparams['dataset'].dataset}"
                 + (", masked" if stability_hparams.mask else ", dense"))
        plots.instability_vs_k(rows, os.path.join(directory, PLOT), title=title)
    runs.mark_complete(directory, "stability", ks=plan.ks)
    return rows
