"""Optimizers and compilation from ``TrainingHparams``."""

import keras

from keras_lottery import distribute
from keras_lottery.training import durations
from keras_lottery.training.fused_batch_norm import fuse_batch_norm
from keras_lottery.training.lr_schedule import StepSchedule
from keras_lottery.training.train_function import streamline_train_function


def total_steps(hparams, steps_per_epoch):
    """The training length T in iterations; raises ValueError when it is under one iteration."""
    steps = durations.to_steps(hparams.steps, steps_per_epoch)
    if steps < 1:
        raise ValueError(f"--steps={hparams.steps!r} is {steps} iterations (an epoch is {steps_per_epoch}); "
                         "training needs at least one.")
    return steps


def learning_rate(hparams, steps_per_epoch):
    """The ``StepSchedule`` for these hyper-parameters."""
    total = total_steps(hparams, steps_per_epoch)
    return StepSchedule(
        hparams.lr,
        warmup_steps=durations.to_steps(hparams.warmup, steps_per_epoch, total),
        milestones=durations.to_step_list(hparams.milestones, steps_per_epoch, total),
        gamma=hparams.gamma,
    )


def make_optimizer(hparams, steps_per_epoch):
    """A fresh Keras optimizer (zero slots, iteration 0) for ``hparams``."""
    hparams.validate()
    lr = learning_rate(hparams, steps_per_epoch)
    common = {"clipnorm": hparams.clipnorm or None}
    if hparams.optimizer != "adamw":
        common["weight_decay"] = hparams.weight_decay or None
    if hparams.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=hparams.momentum, nesterov=hparams.nesterov, **common)
    if hparams.optimizer == "adam":
        return keras.optimizers.Adam(lr, **common)
    if hparams.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=hparams.weight_decay, **common)
    return keras.optimizers.RMSprop(lr, momentum=hparams.momentum, **common)


def train_fast(model):
    """Sets ``model`` up to train as fast as this backend allows, with Keras' results: its batch
    normalizations on the fused kernel (:func:`~keras_lottery.training.fused_batch_norm.fuse_batch_norm`)
    and ``fit`` on the lean train function
    (:func:`~keras_lottery.training.train_function.streamline_train_function`). Both are runtime patches
    that a saved model does not keep: a model loaded back to go on training needs this call again.
    Calling it again is harmless; returns ``model``."""
    fuse_batch_norm(model)
    streamline_train_function(model)
    return model


def compile_for_classification(model, hparams, steps_per_epoch, jit_compile=None):
    """Compiles ``model`` (logits output) with a fresh optimizer, cross-entropy and accuracy.

    ``jit_compile`` None takes the setting of the open ``keras_lottery.distribute.execution`` block
    (``"auto"`` outside one). Under a ``mixed_float16`` policy Keras wraps the optimizer in a
    ``LossScaleOptimizer``. On the TensorFlow backend the model's batch normalizations run on the fused
    kernel (:func:`~keras_lottery.training.fused_batch_norm.fuse_batch_norm`: Keras' results, faster),
    and ``fit`` runs each step through a lean train function
    (:func:`~keras_lottery.training.train_function.streamline_train_function`: the same step, less
    dispatch around it).
    """
    train_fast(model)
    if jit_compile is None:
        jit_compile = distribute.jit_compile()
    model.compile(
        optimizer=make_optimizer(hparams, steps_per_epoch),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=jit_compile,
    )
    return model
