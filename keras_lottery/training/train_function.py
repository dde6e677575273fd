"""A leaner compiled train function for Keras 3 models on the TensorFlow backend.

Keras 3's TensorFlow trainer wraps each step's outputs in a ``tf.experimental.Optional`` (so that a
``tf.while_loop`` over ``steps_per_execution`` steps can stop at the end of the data), and with
``steps_per_execution=1`` it still does: the compiled function returns an ``Optional``, and every step
then runs two eager ops from Python, ``has_value()`` (read back as a Python bool) and ``get_value()``;
the step itself is a nested ``tf.function``. On a small model this is the difference to tf_keras,
whose train function takes the batch with ``next(iterator)`` inside the graph and returns the logs:
on LeNet-300-100 (batch 60, Adam, about 2 ms a step on 2 CPU cores) about 0.2 ms a step, with the
compiled step itself no slower than tf_keras' (docs/results/bench_masks/diagnostics/README.md).

:func:`streamline_train_function` makes a model build tf_keras' kind of train function for ``fit``:
one ``tf.function`` that takes the next batch and runs the model's own ``train_step`` on it. It
changes how a step is dispatched, not what it computes: the step is the model's ``train_step`` on the
same batch (XLA-compiled as Keras compiles it when ``jit_compile`` is on), so weights, optimizer state
and metrics are Keras' own (tests/training/test_train_function.py compares them). The end of the data
surfaces as TensorFlow's ``OutOfRangeError``, which Keras' epoch iterator turns into the end of the
epoch, as for Keras' own function. Where the lean function does not apply, Keras' function is used
unchanged: ``steps_per_execution > 1``, ``run_eagerly``, a distribution strategy other than the
default one, a model class that overrides ``make_train_function``, and calls that pass batches rather
than a dataset iterator (``train_on_batch``).
"""

import types

import keras
import tensorflow as tf

__all__ = ["is_streamlined", "streamline_train_function", "uses_lean_function"]

_LEAN = "_keras_lottery_lean"  # set on a train function built here


def streamline_train_function(model):
    """Makes ``model`` build the lean train function (module docstring) whenever ``fit`` makes one.

    The choice is made each time Keras makes the train function (after every ``compile``), with the
    settings of that moment. Returns whether the model now does (False on other backends). Calling it
    again is harmless.
    """
    if keras.backend.backend() != "tensorflow" or not isinstance(model, keras.Model):
        return False
    if not is_streamlined(model):
        model.make_train_function = types.MethodType(_make_train_function, model)
        model.train_function = None  # made again, by the new method, at the next fit
    return True


def is_streamlined(model):
    """Whether :func:`streamline_train_function` set ``model`` up (and its method was not replaced since)."""
    method = model.__dict__.get("make_train_function")
    return getattr(method, "__func__", None) is _make_train_function


def uses_lean_function(model):
    """Whether ``model``'s current train function is the lean one (False before ``fit`` makes one)."""
    return getattr(getattr(model, "train_function", None), _LEAN, False)


def _make_train_function(self, force=False):
    """Keras' ``make_train_function``, then the lean function in its place where it applies."""
    if self.train_function is not None and not force:
        return self.train_function
    type(self).make_train_function(self, force=True)  # Keras' own: kept for what the lean one does not serve
    if _lean_applies(self):
        self.train_function = _lean_function(self, self.train_function)
    return self.train_function


def _lean_applies(model):
    default_strategy = not tf.distribute.has_strategy() and model.distribute_strategy is tf.distribute.get_strategy()
    return (default_strategy and model.steps_per_execution == 1 and not model.run_eagerly
            and type(model).make_train_function is keras.Model.make_train_function)


def _lean_function(model, keras_function):
    step = model.train_step
    if model.jit_compile:  # as Keras compiles it: the step with XLA, the iterator outside
        step = tf.function(step, reduce_retracing=True, jit_compile=True)

    @tf.autograph.experimental.do_not_convert
    def one_step_on_iterator(iterator):
        # Keras' data adapters give a missing entry (sample weights of a generator) as an empty Optional
        data = keras.tree.map_structure(lambda x: None if isinstance(x, tf.experimental.Optional) else x,
                                        next(iterator))
        return step(data)

    compiled = tf.function(one_step_on_iterator, reduce_retracing=True)

    def function(iterator):
        if isinstance(iterator, (tf.data.Iterator, tf.distribute.DistributedIterator)):
            return compiled(iterator)
        return keras_function(iterator)  # batches given directly (train_on_batch)

    setattr(function, _LEAN, True)
    return function
