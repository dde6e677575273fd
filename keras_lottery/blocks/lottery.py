"""Former location of the layer-lottery experiment, now :mod:`keras_lottery.lottery.layer_lottery`.

``LayerLotteryHparams`` and ``ALGORITHMS`` moved to :mod:`keras_lottery.lottery.hparams`. This module
re-exports the public names so that ``from keras_lottery.blocks import lottery`` keeps working;
``keras_lottery.blocks`` itself does not import it (the lottery package depends on blocks, not the
reverse). Only :func:`run` differs: it keeps the former signature and calls
``keras_lottery.lottery.layer_lottery.run``, which takes a prepared ``RunDirectory`` and the
``{group: dataclass}`` dict as ``keras_lottery.training.run`` does.
"""

import os

from keras_lottery import runs
from keras_lottery.lottery import layer_lottery
from keras_lottery.lottery.layer_lottery import (ALGORITHMS, TABLE_COLUMNS, LayerLotteryHparams, check, check_model,
                                                 markdown_table, rewind_step, table_paths, write_table)

__all__ = ["ALGORITHMS", "LayerLotteryHparams", "TABLE_COLUMNS", "check", "check_model", "markdown_table",
           "rewind_step", "run", "table_paths", "write_table"]


def run(directory, datasets, model_hparams, training_hparams, lottery, *, emissions_factory=None, log=print):
    """The former signature of :func:`keras_lottery.lottery.layer_lottery.run`: writes into the path ``directory``."""
    hparams = {"model": model_hparams, "training": training_hparams, "lottery": lottery}
    run_dir = runs.RunDirectory(os.fspath(directory), "", hparams)
    run_dir.path = os.fspath(directory)
    return layer_lottery.run(run_dir, datasets, hparams, emissions_factory=emissions_factory, log=log)
