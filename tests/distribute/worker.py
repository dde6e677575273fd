"""Runs an experiment binary as ``python -m`` would, for the distribution tests.

    python tests/distribute/worker.py experiments.imp --flags...

Environment knobs (test-only):
  KL_TEST_LOGICAL_CPUS=n      split the CPU into n logical devices first (for --strategy=mirrored).
  KL_TEST_DIE_AFTER_CHECKPOINT=n
                              SIGKILL this process right after its n-th training checkpoint (chief
                              and single-worker runs): a worker killed mid-run, at a known point.
"""

import os
import runpy
import signal
import sys

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    module = sys.argv[1]
    sys.argv = [module] + sys.argv[2:]
    if os.environ.get("KL_TEST_LOGICAL_CPUS"):
        from keras_lottery import distribute

        distribute.split_cpu(int(os.environ["KL_TEST_LOGICAL_CPUS"]))
    if os.environ.get("KL_TEST_DIE_AFTER_CHECKPOINT"):
        from keras_lottery.training import loop

        limit, saved, original = int(os.environ["KL_TEST_DIE_AFTER_CHECKPOINT"]), [0], loop.save_checkpoint

        def save_then_die(*args, **kwargs):
            original(*args, **kwargs)
            saved[0] += 1
            if saved[0] >= limit:
                os.kill(os.getpid(), signal.SIGKILL)

        loop.save_checkpoint = save_then_die
    import keras

    keras.config.disable_traceback_filtering()
    runpy.run_module(module, run_name="__main__", alter_sys=True)
