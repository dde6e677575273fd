"""The experiment binaries, installed with the package: ``keras-lottery <experiment> [flags]``.

Each module here is one absl binary (flags, :mod:`keras_lottery.experiments.common`'s checks, one
library call, printing). Importing one defines its flags on absl's global ``FLAGS``, so a process
imports exactly one: :func:`main` (the ``keras-lottery`` console command, also ``python -m
keras_lottery``) picks it from the first argument and imports it alone. ``python -m
experiments.<name>`` from a clone runs the same modules through the thin shims in ``experiments/``.

``keras-lottery --help`` lists the experiments (the first line of each module's docstring, read
without importing it); ``keras-lottery <experiment> --help`` lists that experiment's own flags,
grouped, with their defaults (:func:`keras_lottery.cli.help_text`).
"""

import ast
import importlib
import importlib.util
import sys
import textwrap

from absl import app

from keras_lottery import cli, files
from keras_lottery.callbacks import DivergenceError

__all__ = ["EXPERIMENTS", "describe", "launch", "main"]

# The binaries, in the order ``keras-lottery --help`` lists them.
EXPERIMENTS = ("train", "imp", "layer_lottery", "stability", "export", "robustness", "depth_pruning",
               "bench_blocks", "bench_masks", "bench_robustness", "bench_tflite_size", "bench_units")
PROGRAM = "keras-lottery"
HELP = ("--help", "-h", "-?", "--helpshort")
# Titles of the flag groups defined directly in modules (dataclass flags are grouped by class).
COMMON_TITLE = "Run directory, distribution and emissions"


def describe(name):
    """The first line of experiment ``name``'s docstring, read from its source without importing it."""
    spec = importlib.util.find_spec(f"{__name__}.{name}")
    with open(spec.origin) as f:
        doc = ast.get_docstring(ast.parse(f.read())) or ""
    paragraph = " ".join(doc.strip().split("\n\n")[0].split()).replace("``", "")
    return paragraph.split(". ")[0].rstrip(".:;")


def usage():
    """What ``keras-lottery --help`` prints: the command line and one line per experiment."""
    width = max(len(name) for name in EXPERIMENTS)
    lines = [f"usage: {PROGRAM} <experiment> [flags]", f"       python -m keras_lottery <experiment> [flags]", "",
             "Experiments:"]
    lines += [f"  {name.ljust(width)}  " + textwrap.shorten(describe(name), 96 - width, placeholder=" ...")
              for name in EXPERIMENTS]
    lines += ["", f"{PROGRAM} <experiment> --help lists the flags of one experiment, with their defaults."]
    return "\n".join(lines)


def launch(name, args=None):
    """Runs experiment ``name`` with the command-line arguments ``args`` (``sys.argv[1:]`` by default).

    ``--help`` (``-h``, ``--helpshort``) prints the experiment's own flags and exits with status 0;
    everything else goes to absl's ``app.run`` (``--helpfull`` included). A file that cannot be
    written (a full disk) or a training that diverged ends with one line and exit status 1 in every
    binary, as ``common.run_library`` does for those that use it.
    """
    args = sys.argv[1:] if args is None else list(args)
    module = importlib.import_module(f"{__name__}.{name}")
    if any(arg in HELP for arg in args):
        titles = {module.__name__: f"{name} flags", f"{__name__}.common": COMMON_TITLE}
        print(cli.help_text(f"{PROGRAM} {name} [flags]", module.__doc__, titles))
        sys.exit(0)
    try:
        app.run(module.main, argv=[f"{PROGRAM} {name}", *args])
    except (files.WriteError, DivergenceError) as error:
        cli.fail(error)


def main(argv=None):
    """The ``keras-lottery`` command: ``keras-lottery <experiment> [flags]``; ``--help`` lists the experiments."""
    argv = sys.argv if argv is None else argv
    args = argv[1:]
    if not args or args[0] in HELP or args[0] == "help":
        print(usage())
        sys.exit(0 if args else 2)
    name = args[0].replace("-", "_")
    if name not in EXPERIMENTS:
        sys.exit(f"error: unknown experiment {args[0]!r}; {PROGRAM} --help lists them: {', '.join(EXPERIMENTS)}.")
    launch(name, args[1:])
