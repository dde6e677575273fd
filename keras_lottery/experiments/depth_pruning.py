"""Depth pruning of a small KerasHub GPT-2 trained here on the Python standard library (issue 28).

    keras-lottery depth_pruning --seeds=0,1,2 --results_dir=docs/results/depth_pruning

Trains ``GPT2CausalLM`` (built from arguments, byte vocabulary) per seed, removes 1..4 of its layers by
each criterion (block_influence, angular_window, sleb, last, random), measures held-out perplexity and
next-token accuracy before and after healing, generate() speed and parameters, and SNIP/GraSP/random at
initialization. Writes ``<run_root>/depth_pruning/<changed recipe flags>/`` (one JSON per finished cell in
``cells/``, the dense models in ``seed_<s>/``) and the results (``results.md``, ``results.json``,
``perplexity_vs_removed.png``) there and in ``--results_dir``. Rerun the same command to resume: finished
cells are kept; the cell flags (--seeds, --parts, --removed, --criteria, --init_criteria,
--init_removed) are not part of the run's record, so a rerun with more of them adds cells to the same
run and reuses its dense models. The study itself is ``keras_lottery.blocks.depth_study``; docs/depth_pruning.md reads
its results.
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.stdout.reconfigure(line_buffering=True)  # progress lines appear as they happen, even in a pipe

from absl import app, flags  # noqa: E402

from keras_lottery import cli, files, runs  # noqa: E402
from keras_lottery.blocks import depth_study  # noqa: E402

cli.define_flags(depth_study.DepthStudyHparams, depth_study.DepthStudyCells)
flags.DEFINE_string("run_root", "runs", "Directory under which run directories are created.")
flags.DEFINE_string("run_name", "", "Overrides the run directory's name (derived from the flags by default).")
flags.DEFINE_string("results_dir", "", "Also write results.md, results.json and the plot here (e.g. "
                    "docs/results/depth_pruning).")
flags.DEFINE_boolean("summarize_only", False, "Write the results of the cells finished so far; train nothing.")
FLAGS = flags.FLAGS


def _log(line):
    print(f"{time.strftime('%H:%M:%S')} {line}")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        hparams = cli.from_flags(depth_study.DepthStudyHparams)
        cells = cli.from_flags(depth_study.DepthStudyCells).validate(hparams.validate().layers)
        data = depth_study.load_data(hparams)  # every flag and the corpus checked before anything is written
        run = runs.RunDirectory(FLAGS.run_root, "depth_pruning", {"study": hparams}, name=FLAGS.run_name or None)
        run.check()
        if FLAGS.summarize_only:
            if not run.started:
                raise ValueError(f"{run.path} holds no study to summarize.")
        else:
            run.lock().prepare()
            print(f"Run directory: {run.path}")
            depth_study.run(hparams, cells, run.path, data=data, log=_log)
    except (ValueError, files.DamagedFileError, runs.RunDirectoryMismatch, runs.RunDirectoryError) as error:
        cli.fail(error)
    summary = depth_study.write_results(run.path)
    if FLAGS.results_dir:
        depth_study.write_results(run.path, FLAGS.results_dir)
    print()
    print(depth_study.markdown(summary))
    print(f"Results: {run.path}/results.md (also results.json, perplexity_vs_removed.png)"
          + (f" and {FLAGS.results_dir}/" if FLAGS.results_dir else ""))


if __name__ == "__main__":
    app.run(main)
