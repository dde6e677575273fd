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

FLAGS = flags.FLAGS


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
