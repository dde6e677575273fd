"""Training: hyper-parameters, optimizers and learning-rate schedules, and a resumable ``fit``."""

from keras_lottery.training.divergence import DivergenceError, StopOnDivergence
from keras_lottery.training.durations import to_step_list, to_steps
from keras_lottery.training.experiment import check, check_model, run
from keras_lottery.training.fused_batch_norm import fuse_batch_norm
from keras_lottery.training.hparams import OPTIMIZERS, ModelHparams, TrainingHparams
from keras_lottery.training.loop import fit, load_checkpoint, load_final_model, read_state, save_checkpoint, summarize
from keras_lottery.training.lr_schedule import StepSchedule
from keras_lottery.training.optimizers import (compile_for_classification, learning_rate, make_optimizer,
                                               total_steps, train_fast)
from keras_lottery.training.train_function import is_streamlined, streamline_train_function, uses_lean_function

__all__ = ["DivergenceError", "OPTIMIZERS", "ModelHparams", "StepSchedule", "StopOnDivergence",
           "TrainingHparams", "check", "check_model", "compile_for_classification", "fit", "fuse_batch_norm",
           "is_streamlined", "learning_rate", "load_checkpoint", "load_final_model", "make_optimizer",
           "read_state", "run", "save_checkpoint", "streamline_train_function", "summarize", "to_step_list",
           "to_steps", "total_steps", "train_fast", "uses_lean_function"]
