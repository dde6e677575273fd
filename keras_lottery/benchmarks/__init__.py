"""Benchmarks: timing helpers and the benchmarks that the ``experiments/bench_*`` binaries run.

* ``timing``: ``time_call``, ``make_train_step``, ``interleaved_step_times``.
* ``masks``: step time of masked training against dense training and TFMOT (``masks.run``).
* ``blocks``: layer tickets' speed-up against their FLOPs ratio, and the cost of finding, scoring
  and removing blocks (``blocks.run``).

Import the modules themselves (``from keras_lottery.benchmarks import masks``): this package imports
none of them, so that ``python -m keras_lottery.benchmarks.masks`` (the worker that ``masks.run``
starts for ``processes > 1``) runs the module once, as ``__main__``.
"""
