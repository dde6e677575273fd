"""Flags and set-up shared by the experiment binaries: flags -> hparams -> run directory -> strategy -> data.

A binary defines its flags, calls :func:`start` (which checks every flag and the run directory and
exits with a one-line error before anything is written), calls one library function, and prints.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.stdout.reconfigure(line_buffering=True)  # progress lines appear as they happen, even in a pipe

import tensorflow as tf  # noqa: E402
from absl import flags  # noqa: E402

from keras_lottery import cli, data, distribute, files, runs, training  # noqa: E402
from keras_lottery.callbacks import DivergenceError, Emissions, emissions  # noqa: E402

flags.DEFINE_string("run_root", "runs", "Directory under which run directories are created.")
flags.DEFINE_string("run_name", "", "Overrides the run directory's name (derived from the flags by default).")
flags.DEFINE_boolean("emissions", True, "Track energy and CO2 with codecarbon's offline tracker.")
flags.DEFINE_string("country", "USA", "ISO alpha-3 country whose grid carbon intensity codecarbon uses.")
flags.DEFINE_string("eval_every", "", "Validate and checkpoint every this many steps ('1000it', '1ep'); one epoch by default.")
flags.DEFINE_enum("strategy", "default", list(distribute.STRATEGIES),
                  "Distribution: default (one device), mirrored (every local GPU), multi_worker (the cluster in "
                  "TF_CONFIG), tpu. --batch_size stays the global batch, split across replicas.")
flags.DEFINE_string("tpu", "", "With --strategy=tpu: the TPU name or grpc://host:port (empty: TPU_NAME, or local chips).")
flags.DEFINE_boolean("mixed_precision", False, "Build models with the mixed_float16 policy (float16 compute, float32 "
                     "variables, dynamic loss scaling). Recorded in the run directory's execution.json.")
flags.DEFINE_boolean("jit_compile", None, "Compile training and evaluation with XLA (--nojit_compile: never); unset "
                     "leaves it to Keras, which uses XLA on accelerators without a distribution strategy.")

flags.DEFINE_boolean("deterministic", False, "TensorFlow op determinism (tf.config.experimental.enable_op_determinism): "
                     "the same command gives the same numbers on the same machine, but other ones than with it off (other "
                     "kernels; off by default: docs/runs.md#determinism).")

FLAGS = flags.FLAGS


fail = cli.fail  # exits with "error: <message>" on one line, status 1

# What a user can get wrong before the work starts (flags, data, run directories): one line, no traceback.
USER_ERRORS = (ValueError, data.DatasetNotFoundError)
# ... and during it: a damaged file, a record that disagrees with the command, a training that diverged
# (DivergenceError: the step, what is not finite, lower --lr). Other errors are bugs.
# A file that cannot be written (full disk, permissions) is files.WriteError: one line, and the same command resumes.
RUN_ERRORS = (files.DamagedFileError, runs.RunDirectoryMismatch, runs.RunDirectoryError, DivergenceError,
              files.WriteError)


STANDARD = ("dataset", "model", "training")


def hparams_from_flags(standard=STANDARD, **groups):
    """The ``standard`` groups (``dataset``, ``model``, ``training``) plus ``groups`` (name -> dataclass),
    built from the parsed flags and validated, so every flag is checked before data is loaded or
    anything is written."""
    classes = {"dataset": data.DatasetHparams, "model": training.ModelHparams, "training": training.TrainingHparams}
    classes = {name: cls for name, cls in classes.items() if name in standard}
    classes.update(groups)
    hparams = {name: cli.from_flags(cls) for name, cls in classes.items()}
    for value in hparams.values():
        value.validate()
    return hparams


def check_flags():
    """The shared flags that are not hyper-parameters: raises ValueError for one that cannot work or
    would be ignored."""
    if FLAGS.eval_every:
        training.to_steps(FLAGS.eval_every, steps_per_epoch=1, total_steps=1)  # the syntax, before data loads
    if FLAGS.tpu and FLAGS.strategy != "tpu":
        raise ValueError(f"--tpu={FLAGS.tpu!r} is used only with --strategy=tpu (got --strategy={FLAGS.strategy}).")
    if FLAGS["country"].present and not FLAGS.emissions:
        raise ValueError("--country is used only for emissions tracking, which --noemissions turns off.")
    if FLAGS.emissions:
        emissions.check_country(FLAGS.country)


def _open_strategy(run, batch_size):
    """Opens the --strategy scope with --mixed_precision and --jit_compile for the rest of the process.

    Checks that the global batch splits across the replicas and that the run directory was not started
    with another --mixed_precision. Returns ``(run, chief)``: the run this process writes (``run`` on
    the chief, the same run in a private copy of the directory on other workers of a multi-worker run).
    """
    strategy = distribute.make_strategy(FLAGS.strategy, tpu=FLAGS.tpu)
    distribute.check_global_batch(batch_size, strategy)
    run.check_execution(FLAGS.mixed_precision)
    distribute.enter_for_process(strategy, FLAGS.mixed_precision, FLAGS.jit_compile)
    chief = distribute.is_chief(strategy)
    if not chief:
        run.path = distribute.worker_directory(run.path, strategy)
    if FLAGS.strategy != "default" or FLAGS.mixed_precision or FLAGS.jit_compile is not None:
        print(distribute.describe(strategy, FLAGS.strategy, batch_size, FLAGS.mixed_precision, FLAGS.jit_compile,
                                  writing_to=None if chief else run.path))
    return run, strategy, chief


def start(experiment, groups=None, check=None, standard=STANDARD):
    """Everything a binary does before its library call, with one-line errors and nothing written on failure.

    Builds and validates the hyper-parameters (the standard groups plus ``groups``) and the shared
    flags, finds the run directory and checks it (a name inside --run_root, no unrelated files, the
    same hyper-parameters), opens the distribution strategy, loads the data, checks the schedule,
    --eval_every and the model for it, and calls ``check(hparams, datasets)`` for the binary's own
    checks (it may return anything, e.g. what it derived). Only then is the run directory locked for
    this process (``runs.RunDirectory.lock``: a second copy of the command is refused) and created
    (``hparams.json``); a resumed run says what it found.

    A binary that trains nothing (``experiments.robustness``) passes ``standard=("dataset",)`` and a
    ``check``: no model or training flags, data seed 0.

    Returns:
      ``(run, hparams, datasets, checked)``: the prepared ``RunDirectory``, ``{group: dataclass}``, the
      ``Datasets`` and what ``check`` returned (None without one).
    """
    try:
        hparams = hparams_from_flags(standard, **(groups or {}))
        check_flags()
        run = runs.RunDirectory(FLAGS.run_root, experiment, hparams, name=FLAGS.run_name or None)
        run.check()
        run, strategy, chief = _open_strategy(run, hparams["dataset"].batch_size)
        trains = "training" in hparams
        datasets = data.load(hparams["dataset"], data_seed=hparams["training"].data_seed if trains else 0)
        if check is None:
            total = training.check(hparams, datasets)
        else:
            total = training.total_steps(hparams["training"], datasets.steps_per_epoch) if trains else None
        checked = check(hparams, datasets) if check is not None else total
        if FLAGS.eval_every and eval_every(datasets.steps_per_epoch, total) < 1:
            raise ValueError(f"--eval_every={FLAGS.eval_every!r} is less than one iteration.")
        if chief:
            run.lock()
    except USER_ERRORS as error:  # RunDirectoryMismatch, RunLocked, DamagedFileError are ValueErrors
        fail(error)
    if FLAGS.deterministic:
        tf.config.experimental.enable_op_determinism()
    resumed = run.started
    try:
        run.prepare()
        if chief:
            run.record_execution(FLAGS.mixed_precision, FLAGS.strategy, strategy.num_replicas_in_sync)
    except files.WriteError as error:
        fail(error)
    print(f"Run directory: {run.path}\nData: {datasets.describe()}")
    if resumed:
        print(f"Resuming: {'finished, reporting its results' if run.finished else runs.progress(run.path)}.")
    return run, hparams, datasets, checked


def run_library(function, *args, **kwargs):
    """Calls the binary's library function; a user error found on the way (a damaged file, a record
    that disagrees) ends the process with one line instead of a traceback."""
    try:
        return function(*args, **kwargs)
    except RUN_ERRORS as error:
        fail(error)


def emissions_factory():
    """A function making a fresh ``Emissions`` callback (codecarbon tracker) when --emissions is on, else None."""
    return (lambda: Emissions(country=FLAGS.country)) if FLAGS.emissions else None


def eval_every(steps_per_epoch, total=None):
    """--eval_every in iterations (None when unset)."""
    return training.to_steps(FLAGS.eval_every, steps_per_epoch, total) if FLAGS.eval_every else None


def print_table(rows, columns):
    """Prints rows (dicts) as an aligned text table."""
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(_fmt(row.get(c)).ljust(widths[c]) for c in columns))


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.3e}" if value and abs(value) < 1e-2 else f"{value:.4f}"
    return "" if value is None else str(value)
