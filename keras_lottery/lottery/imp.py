"""Iterative magnitude pruning (IMP) with rewinding, its controls, and resumable level directories.

Level 0 trains the dense network (masked, all ones) for T steps and saves the rewind point theta_k
(weights, optimizer state, data position) once, when training passes step k. Level n >= 1 prunes
the trained weights of level n - 1 with the rule, then restarts training from step k:

* ``weights``: survivors back to theta_k, optimizer state as it was at k (a fresh optimizer for
  k = 0, as in the reference code), the learning-rate schedule and the data order from k;
* ``lr``: keep the final weights of level n - 1, optimizer state and schedule from k;
* ``finetune``: keep the final weights and the final optimizer state (so the final learning rate).

Every level trains T - k steps, reading the data stream from step k. Controls at a level (the
same training in every respect but the start): ``reinit`` keeps the level's mask and draws a fresh
initialization; ``random`` draws a random mask with the level's per-tensor densities and starts
from theta_k, the rewind point's weights, in every mode. In mode ``weights`` that is also where the
ticket starts; in modes ``lr`` and ``finetune`` the ticket starts from level n - 1's final weights
instead. Both controls start from the ticket's optimizer state.

On disk, ``<directory>/``::

    imp.json            what the run is (training and pruning hyper-parameters, seeds, k, T)
    rewind.npz          the rewind point, written once
    level_N/            mask.npz (+ mask.json), sparsity.json, and a ``training.fit`` directory:
                        state.json and checkpoints while running; history.csv, model.keras and
                        metrics.json (written last) when done
    level_N/reinit/, level_N/random/   the controls, same layout

The mask of level N is written (atomically) before level N trains, and computed only from the
finished level N - 1, so a run killed at any moment and started again continues from its last
checkpoint and ends with the masks of an uninterrupted run with the same seeds. Finished levels
are read back, not retrained.

The ``imp`` experiment (:func:`run_experiment`, after :func:`check`) runs this on a zoo model in a
run directory, then writes ``results.csv`` and ``accuracy_vs_density.png`` (:func:`report`), the
latter optionally with other IMP runs (``compare_with``) drawn beside it.
"""

import dataclasses
import os

import numpy as np

from keras_lottery import files, masking, models, pruning, runs, training
from keras_lottery.callbacks.rewind import RewindCheckpoint, RewindPoint
from keras_lottery.lottery import plots
from keras_lottery.masking import apply_mask, read_mask
from keras_lottery.masks import Mask
from keras_lottery.training import durations

__all__ = ["KINDS", "PLOT", "check", "check_rule", "compare_series", "is_run", "level_dir", "report", "results",
           "results_file", "rewind_step", "rewind_step_of", "run", "run_experiment", "write_csv"]

KINDS = ("ticket", "reinit", "random")
# File names and level directories are the run directory's (keras_lottery.runs); kept here under
# the names this module has always had.
RECORD, REWIND, MASK, SPARSITY = runs.IMP_RECORD, runs.REWIND, runs.MASK, runs.SPARSITY
level_dir = runs.level_dir
PLOT = runs.IMP_PLOT


def rewind_step(pruning_hparams, steps_per_epoch, total):
    """k in iterations; raises when k is not strictly before the end of training."""
    k = durations.to_steps(pruning_hparams.rewind, steps_per_epoch, total)
    if not 0 <= k < total:
        raise ValueError(f"--rewind={pruning_hparams.rewind!r} is step {k}; it must come before the end of "
                         f"training (T = {total} steps).")
    return k


def _finished(path):
    return os.path.exists(os.path.join(path, runs.METRICS)) and os.path.exists(os.path.join(path, MASK))


def _seed(*parts):
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0] % (2**31 - 1))


def _save_mask(path, mask, extra):
    os.makedirs(path, exist_ok=True)
    report = mask.report()
    report.update(extra)
    files.write_json(os.path.join(path, SPARSITY), report)
    # sparsity.json first; then Mask.save renames the complete npz into place and writes its JSON
    # report (mask.json) after it, atomically too. The npz is what _level_mask and _finished look for:
    # once it exists, it and sparsity.json are complete; a kill between the two writes of Mask.save
    # leaves only mask.json missing.
    mask.save(os.path.join(path, MASK))


@dataclasses.dataclass
class _Context:
    directory: str
    build_model: object
    datasets: object
    training: object
    pruning: object
    model_seed: int
    steps: int
    k: int
    eval_every: object
    emissions_factory: object
    verbose: object
    log: object

    def fit(self, model, path, start_step, callbacks=(), compile_model=True):
        emissions = self.emissions_factory() if self.emissions_factory else None
        return training.fit(model, self.datasets, self.training, path, start_step=start_step, end_step=self.steps,
                            eval_every=self.eval_every, callbacks=callbacks, compile_model=compile_model,
                            emissions=emissions, verbose=self.verbose)

    def fresh(self, seed):
        """A new masked model from ``build_model(seed)`` (the built model itself is left alone)."""
        return masking.mask(self.build_model(seed))

    def compile(self, model):
        training.compile_for_classification(model, self.training, self.datasets.steps_per_epoch)
        return model

    def rewind_point(self):
        path = os.path.join(self.directory, REWIND)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} is missing although level 0 finished; it is written when level 0 "
                                    "passes the rewind step. Remove level_0 to retrain it.")
        return RewindPoint.load(path)

    def previous(self, level):
        """The trained model of the ticket at ``level - 1`` (compiled, optimizer state at its end)."""
        path = level_dir(self.directory, level - 1)
        if not _finished(path):
            raise RuntimeError(f"Level {level} needs the finished level {level - 1} ({path}).")
        return training.load_final_model(path)


def _level_mask(ctx, level):
    """The mask of ``level``: read from disk, or computed from level - 1 and written atomically."""
    path = level_dir(ctx.directory, level)
    if os.path.exists(os.path.join(path, MASK)):
        return Mask.load(os.path.join(path, MASK))
    if level == 0:
        mask = masking.ones_mask(ctx.fresh(ctx.model_seed))
    else:
        previous = ctx.previous(level)
        mask = ctx.pruning.rule_object()(pruning.weights_of(previous), read_mask(previous),
                                         pruning.layers_info(previous))
    _save_mask(path, mask, {"level": level, "kind": "ticket", "rule": ctx.pruning.rule, "rate": ctx.pruning.rate})
    return mask


def _train_level_0(ctx):
    path = level_dir(ctx.directory, 0)
    _level_mask(ctx, 0)
    rewind_path = os.path.join(ctx.directory, REWIND)
    callbacks = []
    if not os.path.exists(rewind_path):
        callbacks.append(RewindCheckpoint(at=f"{ctx.k}it", steps_per_epoch=ctx.datasets.steps_per_epoch,
                                          total_steps=ctx.steps, path=rewind_path))
    ctx.fit(ctx.fresh(ctx.model_seed), path, start_step=0, callbacks=callbacks)
    if not os.path.exists(rewind_path):
        raise RuntimeError(f"Level 0 finished without capturing the rewind point at step {ctx.k}.")


def _start_state(ctx, level):
    """The optimizer state every run at ``level`` starts from (a ``RewindPoint``)."""
    if ctx.pruning.mode == "finetune":
        return RewindPoint.capture(ctx.previous(level))
    return ctx.rewind_point()


def _train_ticket(ctx, level):
    path = level_dir(ctx.directory, level)
    mask = _level_mask(ctx, level)
    if _finished(path):
        return
    if training.read_state(path) is not None:  # resuming: fit reads the checkpoint, the model is not used
        ctx.fit(None, path, start_step=ctx.k, compile_model=False)
        return
    model = ctx.previous(level)  # the architecture, and the final weights for lr / finetune
    apply_mask(model, mask)
    if ctx.pruning.mode == "weights":
        ctx.compile(model)
        ctx.rewind_point().restore(model, weights=True, optimizer=True)
    elif ctx.pruning.mode == "lr":
        ctx.compile(model)
        ctx.rewind_point().restore(model, weights=False, optimizer=True)
    ctx.fit(model, path, start_step=ctx.k, compile_model=False)


def _train_control(ctx, level, kind):
    path = level_dir(ctx.directory, level, kind)
    if _finished(path):
        return
    if training.read_state(path) is not None:
        ctx.fit(None, path, start_step=ctx.k, compile_model=False)
        return
    ticket_mask = Mask.load(os.path.join(level_dir(ctx.directory, level), MASK))
    seed = _seed(ctx.pruning.control_seed, ctx.model_seed, level, KINDS.index(kind))
    if kind == "reinit":
        model, mask = ctx.fresh(seed), ticket_mask
        apply_mask(model, mask)
    else:
        model = ctx.fresh(ctx.model_seed)
        mask = pruning.RandomPruning(like=ticket_mask, seed=seed)(pruning.weights_of(model), read_mask(model))
        apply_mask(model, mask)
        ctx.rewind_point().restore_weights(model)  # theta_k under the random mask
    if not os.path.exists(os.path.join(path, MASK)):
        _save_mask(path, mask, {"level": level, "kind": kind, "seed": seed})
    ctx.compile(model)
    _start_state(ctx, level).restore_optimizer(model)
    ctx.fit(model, path, start_step=ctx.k, compile_model=False)


def run(directory, build_model, datasets, training_hparams, pruning_hparams, *, model_seed=0, eval_every=None,
        emissions_factory=None, verbose=0, log=print):
    """Runs (or resumes, or reports) IMP with rewinding and its controls in ``directory``.

    Args:
      directory: the run's directory (created; see the module docstring for its layout).
      build_model: ``seed -> keras.Model``, a plain (unmasked) model whose initialization is fixed
        by ``seed``; called with ``model_seed`` for the ticket and with other seeds for the reinit
        control. The models it returns are copied by ``keras_lottery.mask``, never modified.
      datasets: a ``keras_lottery.data.Datasets`` (its data seed fixes the data order).
      training_hparams: a ``TrainingHparams``; its ``steps`` is T.
      pruning_hparams: a ``PruningHparams`` (levels, rule, rate, rewind step k, mode, controls).
      model_seed: the ticket's initialization seed (recorded).
      eval_every: validation / checkpoint interval in iterations (one epoch by default).
      emissions_factory: a zero-argument function returning a fresh ``Emissions`` callback (one per
        training run), or None for no energy tracking.
      verbose: Keras verbosity for each training run.
      log: a function receiving one line per finished run, or None.

    Returns:
      The list of per-run records of ``results(directory)``.

    Raises:
      ValueError: bad hyper-parameters (checked before anything is trained).
      keras_lottery.runs.RunDirectoryMismatch: ``directory`` holds a run with other settings.
    """
    pruning_hparams.validate()
    training_hparams.validate()
    spe = datasets.steps_per_epoch
    steps = training.total_steps(training_hparams, spe)
    k = rewind_step(pruning_hparams, spe, steps)
    probe = check_rule(build_model, pruning_hparams, model_seed)
    record = {"training": dataclasses.asdict(training_hparams), "pruning": dataclasses.asdict(pruning_hparams),
              "dataset": dataclasses.asdict(datasets.hparams), "data_seed": datasets.data_seed,
              "model_seed": int(model_seed), "model": probe.name, "steps_per_epoch": spe, "T": steps, "k": k}
    grown = runs.check_record(os.path.join(directory, RECORD), record, what="IMP run",
                              growable=runs.growable({"pruning": pruning_hparams}))
    os.makedirs(directory, exist_ok=True)
    if grown or not os.path.exists(os.path.join(directory, RECORD)):  # more levels: the record says how many now
        files.write_json(os.path.join(directory, RECORD), record)

    ctx = _Context(directory, build_model, datasets, training_hparams, pruning_hparams, int(model_seed), steps, k,
                   eval_every, emissions_factory, verbose, log)
    controls = pruning_hparams.control_list
    control_levels = set(pruning_hparams.control_level_list())
    for level in range(pruning_hparams.levels + 1):
        if level == 0:
            _train_level_0(ctx)
        else:
            _train_ticket(ctx, level)
        _log(ctx, level, "ticket")
        for kind in controls if level in control_levels else ():
            _train_control(ctx, level, kind)
            _log(ctx, level, kind)
    return results(directory)


def check_rule(build_model, pruning_hparams, model_seed=0):
    """Applies the pruning rule once to a fresh masked model, so bad selectors fail before training.

    Raises ValueError when the rule prunes nothing at all (``--exclude`` naming every prunable layer,
    say) although levels are asked for: every level would train the dense network again.
    Returns the masked probe model (``build_model``'s model itself is left alone).
    """
    probe = masking.mask(build_model(model_seed))
    pruned = pruning_hparams.rule_object()(pruning.weights_of(probe), read_mask(probe), pruning.layers_info(probe))
    if pruning_hparams.levels and pruned.density >= 1.0:
        raise ValueError(f"The pruning rule removes no weight of {probe.name} (--rule={pruning_hparams.rule}, "
                         f"--exclude={pruning_hparams.exclude!r}): every level would train at density 1.0. "
                         f"Prunable weights: {', '.join(list(read_mask(probe))[:8])}.")
    return probe


def _log(ctx, level, kind):
    if ctx.log is None:
        return
    row = _record(ctx.directory, level, kind)
    if row:
        ctx.log(f"level {level:2d} {kind:7s} density {row['density']:.4f}  test {row['test_accuracy']:.4f}  "
                f"best val {row.get('best_val_accuracy', float('nan')):.4f} at it {row.get('best_val_iteration')}  "
                f"{row['train_time_s']:.1f}s")


def _record(directory, level, kind):
    path = level_dir(directory, level, kind)
    metrics = files.read_json(os.path.join(path, runs.METRICS))
    report = files.read_json(os.path.join(path, SPARSITY))
    if metrics is None or report is None:
        return None
    row = {"level": level, "kind": kind, "density": report["global"]["density"],
           "alive": report["global"]["alive"]}
    for key in ("test_accuracy", "val_accuracy", "best_val_accuracy", "best_val_step", "train_accuracy",
                "train_time_s", "start_step", "end_step", "emissions_energy_kwh", "emissions_emissions_kg"):
        if key in metrics:
            row[key] = metrics[key]
    if "best_val_step" in metrics:
        row["best_val_iteration"] = metrics["best_val_step"] - metrics.get("start_step", 0)
    for weight, layer in report["layers"].items():
        row[f"density:{weight}"] = layer["density"]
    return row


def results(directory):
    """One record per finished run in ``directory`` (level order; ticket, then controls).

    Each record holds ``level``, ``kind`` (ticket / reinit / random), the global ``density`` and
    ``density:<weight path>`` per tensor, the final ``test_accuracy`` and ``val_accuracy``,
    ``best_val_accuracy`` with ``best_val_step`` (global step) and ``best_val_iteration`` (steps into
    the level: the early-stopping iteration), ``train_time_s``, and the energy (kWh) / CO2 (kg)
    when tracked.
    """
    rows = []
    for level in runs.levels(directory):
        for kind in KINDS:
            row = _record(directory, level, kind)
            if row:
                rows.append(row)
    return rows


def write_csv(rows, path):
    """Writes records (every field, in first-seen order) to the CSV file ``path`` atomically."""
    files.write_csv(path, rows)


# -- the imp experiment (a zoo model in a run directory) ----------------------------------------------
def _path(run_dir):
    return os.fspath(getattr(run_dir, "path", run_dir))


def results_file(directory):
    """The ``results.csv`` of the IMP run in ``directory`` (one row per trained network)."""
    return os.path.join(_path(directory), runs.RESULTS)


def is_run(path):
    """True when ``path`` is an IMP run directory (it has the record ``imp.json``)."""
    return os.path.exists(os.path.join(path, RECORD))


def rewind_step_of(path):
    """The rewind step k (iterations) recorded by the IMP run in ``path``."""
    record = files.read_json(os.path.join(path, RECORD))
    if record is None:
        raise ValueError(f"{path!r} is not an IMP run directory (no {RECORD}).")
    return int(record["k"])


def compare_series(rows, k, compare_with=()):
    """``rows`` alone, or ``{"k=<k>": rows, "k=<other k>": other rows, ...}`` with the runs of ``compare_with``."""
    if not compare_with:
        return rows
    series = {f"k={k}": rows}
    for other in compare_with:
        series[f"k={rewind_step_of(other)}"] = results(other)
    return series


def _builder(hparams, datasets):
    model_hp = hparams["model"]
    return lambda seed: models.get(model_hp.model, datasets.input_shape, datasets.classes, seed=seed)


def check(hparams, datasets, compare_with=(), plot=True):
    """Every check of an IMP experiment that needs the data; raises ValueError before anything is written.

    The schedule and the model (``training.check``), the rewind step before T, the pruning rule
    must apply to the model and prune something, and each path of ``compare_with`` (drawn in the
    plot, so ``plot`` must be on) must be a finished IMP run (its completion marker written).
    Returns T, the training length in steps.
    """
    if compare_with and not plot:
        raise ValueError("--compare_with only adds runs to the plot, which --noplot turns off; drop one of them.")
    for other in compare_with:
        if not is_run(other):
            raise ValueError(f"--compare_with={other!r} is not an IMP run directory (no {RECORD}).")
        if not runs.is_complete(other):
            raise ValueError(f"--compare_with={other!r} has not finished (no {runs.COMPLETE}; {runs.progress(other)}): "
                             "run its command again to finish it.")
    total = training.check(hparams, datasets)
    rewind_step(hparams["pruning"], datasets.steps_per_epoch, total)
    check_rule(_builder(hparams, datasets), hparams["pruning"], hparams["model"].model_seed)
    return total


def report(run_dir, rows, *, plot=True, compare_with=(), title=None):
    """Writes ``results.csv`` (``rows``) and, with ``plot``, ``accuracy_vs_density.png`` in ``run_dir``.

    The figure draws ``rows`` and, labelled by their rewind steps, the runs of ``compare_with``.
    Returns the path of ``results.csv``.
    """
    directory = _path(run_dir)
    write_csv(rows, results_file(directory))
    if plot:
        series = compare_series(rows, rewind_step_of(directory), compare_with)
        plots.accuracy_vs_density(series, os.path.join(directory, PLOT), title=title)
    return results_file(directory)


def run_experiment(run_dir, datasets, hparams, *, eval_every=None, emissions_factory=None, plot=True,
                   compare_with=(), verbose=0, log=print):
    """Runs (or resumes, or reports) IMP on ``hparams["model"]`` in a prepared run directory, then :func:`report`.

    Args:
      run_dir: a prepared ``keras_lottery.runs.RunDirectory`` (or its path).
      datasets: the ``Datasets``.
      hparams: ``{"dataset": ..., "model": ModelHparams, "training": TrainingHparams,
        "pruning": PruningHparams}``.
      eval_every, emissions_factory, verbose: as :func:`run`.
      plot: write ``accuracy_vs_density.png``.
      compare_with: other IMP run directories drawn in the same figure.
      log: receives the plan, then one line per finished run; None for silence.

    Returns the rows of :func:`results`. The run's completion marker (``runs.COMPLETE``) is written last.
    """
    directory, log = _path(run_dir), log or (lambda line: None)
    model_hp, training_hp, pruning_hp = hparams["model"], hparams["training"], hparams["pruning"]
    total = training.total_steps(training_hp, datasets.steps_per_epoch)
    k = rewind_step(pruning_hp, datasets.steps_per_epoch, total)
    log(f"T = {total} steps, rewind k = {k}, {pruning_hp.levels} levels, mode {pruning_hp.mode}")
    if os.path.exists(results_file(directory)) and results(directory):
        log("Continuing or reporting an existing run.")
    rows = run(directory, _builder(hparams, datasets), datasets, training_hp, pruning_hp,
               model_seed=model_hp.model_seed, eval_every=eval_every, emissions_factory=emissions_factory,
               verbose=verbose, log=log)
    name = f"{model_hp.model} on {hparams['dataset'].dataset}: IMP"
    title = f"{name}, mode {pruning_hp.mode}" if compare_with else \
        f"{name}, rewind {pruning_hp.rewind}, mode {pruning_hp.mode}"
    report(directory, rows, plot=plot, compare_with=compare_with, title=title)
    runs.mark_complete(directory, "imp", levels=pruning_hp.levels, trainings=len(rows))
    return rows
