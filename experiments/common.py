"""Flags and set-up shared by the experiment binaries."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.stdout.reconfigure(line_buffering=True)  # progress lines appear as they happen, even in a pipe

from absl import flags  # noqa: E402

flags.DEFINE_string("run_root", "runs", "Directory under which run directories are created.")
flags.DEFINE_string("run_name", "", "Overrides the run directory's name (derived from the flags by default).")
flags.DEFINE_boolean("emissions", True, "Track energy and CO2 with codecarbon's offline tracker.")
flags.DEFINE_string("country", "USA", "ISO alpha-3 country whose grid carbon intensity codecarbon uses.")
flags.DEFINE_string("eval_every", "", "Validate and checkpoint every this many steps ('1000it', '1ep'); one epoch by default.")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker", "tpu"],
                  "Distribution: default (one device), mirrored (every local GPU), multi_worker (the cluster in "
                  "TF_CONFIG), tpu. --batch_size stays the global batch, split across replicas.")
flags.DEFINE_string("tpu", "", "With --strategy=tpu: the TPU name or grpc://host:port (empty: TPU_NAME, or local chips).")
flags.DEFINE_boolean("mixed_precision", False, "Build models with the mixed_float16 policy (float16 compute, float32 "
                     "variables, dynamic loss scaling). Recorded in the run directory's execution.json.")
flags.DEFINE_boolean("jit_compile", None, "Compile training and evaluation with XLA (--nojit_compile: never); unset "
                     "leaves it to Keras, which uses XLA on accelerators without a distribution strategy.")

FLAGS = flags.FLAGS

EXECUTION = "execution.json"


def distribute(run, batch_size):
    """Opens the --strategy scope with --mixed_precision and --jit_compile for the rest of the process.

    Call it in a binary right after ``run.check()`` and before any data is loaded (a multi-worker
    strategy must be made before other TensorFlow work). Checks that ``batch_size`` (the global
    batch) splits across the replicas and that the run directory was not started with another
    --mixed_precision, exiting with an error naming both otherwise.

    Returns:
      The ``RunDirectory`` this process writes: ``run`` on the chief, the same run in a private
      copy of the directory on other workers of a multi-worker run.
    """
    import atexit
    import contextlib

    from keras_lottery import distribute as kl_distribute
    from keras_lottery import runs

    try:
        strategy = kl_distribute.make_strategy(FLAGS.strategy, tpu=FLAGS.tpu)
        kl_distribute.check_global_batch(batch_size, strategy)
        recorded = runs.read_json(run.file(EXECUTION))
        started = recorded is not None or os.path.exists(run.file("hparams.json"))
        was_mixed = bool(recorded and recorded.get("mixed_precision"))  # no record: a float32 run
        if started and was_mixed != FLAGS.mixed_precision:
            raise runs.RunDirectoryMismatch(
                f"{run.path} was started with --mixed_precision={was_mixed}; this command has "
                f"--mixed_precision={FLAGS.mixed_precision}. Use the same setting to resume, or another --run_name.")
    except (ValueError, runs.RunDirectoryMismatch) as error:
        sys.exit(f"error: {error}")
    stack = contextlib.ExitStack()
    stack.enter_context(kl_distribute.execution(strategy, FLAGS.mixed_precision, FLAGS.jit_compile))
    atexit.register(stack.close)
    chief = kl_distribute.is_chief(strategy)
    if chief and FLAGS.mixed_precision and recorded is None:
        os.makedirs(run.path, exist_ok=True)
        runs.write_json_atomic(run.file(EXECUTION), {"mixed_precision": FLAGS.mixed_precision,
                                                     "strategy": FLAGS.strategy,
                                                     "replicas": strategy.num_replicas_in_sync})
    if not chief:
        run.path = kl_distribute.worker_directory(run.path, strategy)
    if FLAGS.strategy != "default" or FLAGS.mixed_precision or FLAGS.jit_compile is not None:
        task_type, task_id = kl_distribute.task(strategy)
        print(f"Strategy {FLAGS.strategy}: {strategy.num_replicas_in_sync} replicas in sync"
              + (f", task {task_type} {task_id}{' (chief)' if chief else ', writing to ' + run.path}"
                 if task_type else "")
              + f"; global batch {batch_size} ({batch_size // strategy.num_replicas_in_sync} per replica); "
              f"mixed_float16 {'on' if FLAGS.mixed_precision else 'off'}; jit_compile "
              f"{'auto' if FLAGS.jit_compile is None else FLAGS.jit_compile}")
    return run


def hparams_from_flags(**groups):
    """``{"dataset", "model", "training"}`` plus ``groups`` (name -> dataclass), built from the parsed
    flags and validated, so every flag is checked before data is loaded or anything is written."""
    from keras_lottery import data, runs, training

    classes = {"dataset": data.DatasetHparams, "model": training.ModelHparams, "training": training.TrainingHparams}
    classes.update(groups)
    hparams = {name: runs.from_flags(cls) for name, cls in classes.items()}
    for value in hparams.values():
        value.validate()
    return hparams


def emissions_callback():
    """An ``Emissions`` callback when --emissions is on, else None."""
    if not FLAGS.emissions:
        return None
    from keras_lottery.callbacks import Emissions

    return Emissions(country=FLAGS.country)


def eval_every(steps_per_epoch, total=None):
    """--eval_every in iterations (None when unset)."""
    from keras_lottery.training import to_steps

    return to_steps(FLAGS.eval_every, steps_per_epoch, total) if FLAGS.eval_every else None


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
