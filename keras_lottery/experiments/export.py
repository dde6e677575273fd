r"""Exports a ticket from a run directory for TF Serving: ``saved_models/<name>/<version>/``.

An IMP run's level (``--level=N``) or a layer-lottery run's ticket (``--ticket=ticket_<criterion>_p<p>_r<r>.keras``
in the run directory; the only one when omitted) becomes a SavedModel with a model card, compared with
the dense model (IMP's level 0, the layer-lottery replicate's dense training); the card takes its
hyper-parameters and accuracy from the run directory. A sample request,
``saved_models/<name>/request.json``, is written next to the versions, the export is checked in a
process without Keras, and the commands that serve and query it are printed.
``keras_lottery.export.export_run`` does the work; ``keras_lottery.runs`` names the files it reads.

  keras-lottery export --run_dir=runs/imp/lenet --level=5 --name=lenet_l5
  keras-lottery export --run_dir=runs/layer_lottery/resnet20 --ticket=ticket_grasp_p3_r0.keras \
      --name=resnet20_grasp3
"""

from absl import app, flags, logging

from keras_lottery import cli, export

flags.DEFINE_string("run_dir", None, "The run directory to export from.", required=True)
flags.DEFINE_integer("level", None, "IMP level to export (reads <run_dir>/level_<N>/); "
                     "omit for a layer-lottery run's --ticket.")
flags.DEFINE_string("ticket", None, "Layer-lottery ticket: a .keras file relative to --run_dir "
                    "(ticket_<criterion>_p<p>_r<r>.keras); default: the run's only ticket_*.keras.")
flags.DEFINE_string("dense", None, "The dense model to compare with (.keras, relative to --run_dir). Default: "
                    "level_0's model for IMP runs, replicate_<r>/dense/model.keras for layer-lottery tickets.")
flags.DEFINE_string("name", None, "Model name for TF Serving; default: the run directory's name plus "
                    "_level<N> or _<ticket>, with characters TF Serving refuses (= and , of run names) as _.")
flags.DEFINE_string("base_dir", "saved_models", "Where exported models live.")
flags.DEFINE_integer("version", None, "Version to write; default: the next free one.")
flags.DEFINE_bool("verify", True, "Check the export in a fresh process without Keras.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # TensorFlow's SavedModel writer logs every step at INFO
    f = flags.FLAGS
    try:
        export.export_run(f.run_dir, f.level, f.ticket, f.dense, f.name, f.base_dir, f.version, f.verify)
    except (ValueError, OSError, export.VerificationError) as error:  # OSError: missing files, permissions
        cli.fail(error)


if __name__ == "__main__":
    app.run(main)
