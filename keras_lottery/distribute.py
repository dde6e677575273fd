"""Distribution strategies, mixed precision and XLA for every workflow.

Everything in keras-lottery runs inside a ``tf.distribute`` strategy's scope: build, mask, prune,
rewind, train, score and rewrite models there and Keras splits each global batch across the
replicas. This module makes the strategy from a name (``default``, ``mirrored``, ``multi_worker``,
``tpu``), tells the chief worker from the others, gives each worker the directory it may write to,
and holds the precision policy and the XLA default::

    strategy = kl.distribute.make_strategy("mirrored")
    with kl.distribute.execution(strategy, mixed_precision=True, jit_compile=True):
        model = kl.mask(kl.models.lenet_300_100((28, 28, 1), 10))
        kl.training.fit(model, datasets, hparams, "runs/mine")   # compiled with XLA, loss scaling

**Who writes.** In a multi-worker run every worker executes the same program and must make the
same decisions (resume from the same checkpoint, skip the same finished levels), but only the
chief may write the run directory. ``worker_directory`` gives the chief the real directory and
gives every other worker a private, throwaway copy of it (in the local temporary directory, removed
when the process exits): a non-chief worker reads and writes only its copy, which starts equal to
the chief's directory, so both sides see the same state and the chief's files are never touched by
anyone else. This is TensorFlow's documented arrangement for multi-worker Keras (the chief saves,
the others save to temporary locations they delete); copying the directory at start is what lets a
killed run resume on every worker from the chief's last checkpoint. The run directory must
therefore be on a file system every worker can read when it starts (NFS, GCS FUSE, ...); only the
chief writes it.
"""

import atexit
import contextlib
import json
import os
import shutil
import tempfile

import keras
import tensorflow as tf

__all__ = ["STRATEGIES", "check_global_batch", "describe", "enter_for_process", "execution", "is_chief", "jit_compile",
           "make_strategy",
           "precision", "read_tf_config", "split_cpu", "task", "worker_directory"]

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")

_TF_CONFIG_EXAMPLE = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                      '"task": {"type": "worker", "index": 0}}\'')


# ---------------------------------------------------------------------------------------------
# Making a strategy


def split_cpu(count):
    """Splits the first CPU into ``count`` logical devices (one ``MirroredStrategy`` replica each).

    Must run before TensorFlow initializes its devices (before any tensor is made); useful to
    exercise ``mirrored`` on a machine without accelerators.
    """
    count = int(count)
    if count < 1:
        raise ValueError(f"split_cpu needs count >= 1, got {count}.")
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)


def read_tf_config(environ=None):
    """The parsed and checked ``TF_CONFIG`` of this process (as TensorFlow documents it).

    It must name a cluster with ``worker`` (and optionally one ``chief``) addresses, and this
    process's task as ``{"type": "worker" | "chief", "index": i}``.

    Raises:
      ValueError: saying what was found in ``TF_CONFIG`` and what is accepted.
    """
    environ = os.environ if environ is None else environ
    raw = environ.get("TF_CONFIG", "").strip()
    if not raw:
        raise ValueError("--strategy=multi_worker reads the cluster from the TF_CONFIG environment variable, which "
                         f"is not set. Set it on every worker, e.g. {_TF_CONFIG_EXAMPLE} (index 1 on the second "
                         "worker); see docs/distributed.md.")
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}): got {raw!r}. Expected e.g. {_TF_CONFIG_EXAMPLE}.") \
            from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not any(cluster.get(kind) for kind in ("worker", "chief")):
        raise ValueError(f"TF_CONFIG needs a \"cluster\" with a \"worker\" (and optionally a \"chief\") list of "
                         f"host:port addresses; got {raw!r}.")
    for kind, addresses in cluster.items():
        if kind not in ("worker", "chief"):
            raise ValueError(f"TF_CONFIG cluster has a {kind!r} job; --strategy=multi_worker accepts only \"worker\" "
                             "and \"chief\" jobs (parameter servers are not supported).")
        if not isinstance(addresses, list) or not all(isinstance(a, str) and ":" in a for a in addresses):
            raise ValueError(f"TF_CONFIG cluster.{kind} must be a list of \"host:port\" strings, got {addresses!r}.")
    if len(cluster.get("chief", [])) > 1:
        raise ValueError(f"TF_CONFIG cluster.chief holds {len(cluster['chief'])} addresses; at most one is accepted.")
    task_ = config.get("task")
    if not isinstance(task_, dict) or "type" not in task_ or "index" not in task_:
        raise ValueError(f"TF_CONFIG needs this process's \"task\": {{\"type\": \"worker\", \"index\": i}}; got "
                         f"{task_!r}.")
    kind, index = task_["type"], task_["index"]
    if kind not in cluster or not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise ValueError(f"TF_CONFIG task {task_!r} is not in the cluster (jobs: "
                         f"{', '.join(f'{k} x{len(v)}' for k, v in cluster.items())}).")
    return config


def _tpu_resolver(tpu):
    local = any(name.startswith(("accel", "vfio")) for name in _listdir("/dev"))
    if not (tpu or os.environ.get("TPU_NAME") or local):
        raise ValueError("--strategy=tpu found no TPU: --tpu is empty, TPU_NAME is not set and this machine has no "
                         "local TPU chips (/dev/accel*). Run on a TPU VM, or pass --tpu=<name or grpc://host:port>; "
                         "accepted strategies without a TPU: default, mirrored, multi_worker.")
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or None)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        raise ValueError(f"--strategy=tpu could not reach the TPU {tpu or os.environ.get('TPU_NAME') or '(local)'!r}: "
                         f"{error}") from None
    return resolver


def _listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []


def make_strategy(name="default", tpu=""):
    """The ``tf.distribute.Strategy`` called ``name``.

    Args:
      name: ``default`` (no distribution: TensorFlow's default strategy), ``mirrored`` (one replica
        per local GPU, or per logical CPU device when there is no GPU and the CPU is split with
        ``split_cpu``), ``multi_worker`` (``MultiWorkerMirroredStrategy`` over the cluster in
        ``TF_CONFIG``; create it before any other TensorFlow work in the process) or ``tpu``.
      tpu: for ``tpu``, the TPU's name or ``grpc://`` address; empty for ``TPU_NAME`` or local chips.

    Raises:
      ValueError: an unknown name, ``multi_worker`` without a usable ``TF_CONFIG``, or ``tpu``
        without a TPU; raised before any training.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; accepted: {', '.join(STRATEGIES)}.")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if tf.config.list_logical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        cpus = [device.name for device in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(cpus)
    if name == "multi_worker":
        read_tf_config()
        return _multi_worker_strategy()
    return tf.distribute.TPUStrategy(_tpu_resolver(tpu))


def _multi_worker_strategy():
    """``MultiWorkerMirroredStrategy`` with a ``reduce`` that Keras 3's trainer can use.

    With more than one worker, Keras (3.15) calls ``strategy.reduce`` in two ways that TensorFlow's
    collective implementation rejects: on the nested first batch ``(x, y)`` (to build the model
    symbolically), and with ``axis=0`` on the scalar loss and metric values of each step. This
    subclass reduces each element of a structure on its own, and reduces scalars across replicas
    (``axis=None``), which is what Keras means by averaging them; everything else is unchanged.
    """
    def rank(item):
        values = getattr(item, "values", None)
        first = values[0] if isinstance(values, (tuple, list)) and values else item
        shape = getattr(first, "shape", None)
        return None if shape is None else shape.rank

    class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op, value, axis):
            parent = super().reduce
            return tf.nest.map_structure(
                lambda item: parent(reduce_op, item, None if axis is not None and rank(item) == 0 else axis), value)

    return MultiWorkerMirroredStrategy()


# ---------------------------------------------------------------------------------------------
# Workers


def task(strategy=None):
    """``(task_type, task_id)`` of this process in a multi-worker cluster, ``(None, None)`` otherwise."""
    strategy = strategy or tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return None, None
    resolver = strategy.cluster_resolver
    if resolver is None or not resolver.cluster_spec().as_dict():
        return None, None
    return resolver.task_type, resolver.task_id


def is_chief(strategy=None):
    """True when this process writes results: always, except on non-chief workers of a multi-worker run.

    The chief is the ``chief`` task when the cluster has one, else ``worker`` 0 (TensorFlow's rule).
    ``strategy`` defaults to the one whose scope is open.
    """
    strategy = strategy or tf.distribute.get_strategy()
    task_type, task_id = task(strategy)
    if task_type is None:
        return True
    if "chief" in strategy.cluster_resolver.cluster_spec().as_dict():
        return task_type == "chief"
    return task_type == "worker" and task_id == 0


_SNAPSHOTS = {}  # real directory -> this (non-chief) worker's private copy


def _copy_tree(source, target):
    """Copies ``source`` into ``target``, leaving out unfinished temporary files; tolerates files
    the chief removes meanwhile."""
    os.makedirs(target, exist_ok=True)
    for entry in _listdir(source):
        if entry.endswith(".tmp") or entry.startswith("tmp-") or ".tmp." in entry:
            continue
        src, dst = os.path.join(source, entry), os.path.join(target, entry)
        try:
            if os.path.isdir(src):
                _copy_tree(src, dst)
            else:
                shutil.copy2(src, dst)
        except FileNotFoundError:
            pass


def _remove_snapshots():
    for path in _SNAPSHOTS.values():
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)
    _SNAPSHOTS.clear()


def worker_directory(directory, strategy=None):
    """The directory this process should read and write in place of ``directory``.

    The chief (and any single-worker run) gets ``directory`` itself. A non-chief worker of a
    multi-worker run gets a private copy of it, made on first request in the local temporary
    directory and deleted at exit, so that it takes exactly the chief's decisions (resume point,
    finished levels) while writing nothing the chief owns. A path inside an already copied
    directory maps into that copy; a path inside a copy is returned unchanged, so nested callers
    (a binary, then ``lottery.imp.run``, then ``training.fit``) agree.
    """
    if is_chief(strategy):
        return directory
    real = os.path.abspath(directory)
    for source, copy in _SNAPSHOTS.items():
        if real == copy or real.startswith(copy + os.sep):
            return directory
        if real == source or real.startswith(source + os.sep):
            return os.path.join(copy, os.path.relpath(real, source))
    task_type, task_id = task(strategy)
    if not _SNAPSHOTS:
        atexit.register(_remove_snapshots)
    copy = os.path.join(tempfile.mkdtemp(prefix=f"keras_lottery_{task_type}{task_id}_"), os.path.basename(real))
    _copy_tree(real, copy)
    _SNAPSHOTS[real] = copy
    return copy


def check_global_batch(batch_size, strategy=None):
    """Raises ValueError when the global ``batch_size`` does not split evenly across the replicas."""
    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    if int(batch_size) % replicas:
        raise ValueError(f"--batch_size={batch_size} is the global batch; it must split evenly across the "
                         f"{replicas} replicas of the strategy (a multiple of {replicas}).")


# ---------------------------------------------------------------------------------------------
# Precision and XLA


@contextlib.contextmanager
def precision(mixed_precision=False):
    """Within the block, models are built with ``mixed_float16`` (float16 compute, float32
    variables) when ``mixed_precision`` is set; Keras then wraps each optimizer in a
    ``LossScaleOptimizer`` (dynamic loss scaling) at ``compile``. The previous policy comes back after."""
    previous = keras.config.dtype_policy()
    if mixed_precision:
        keras.config.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


_JIT = ["auto"]


def jit_compile():
    """The ``jit_compile`` that ``training.compile_for_classification`` uses when given none:
    ``"auto"`` (Keras' choice: XLA on accelerators, off under a distribution strategy), True or False."""
    return _JIT[-1]


@contextlib.contextmanager
def execution(strategy=None, mixed_precision=False, jit_compile=None):
    """Opens ``strategy``'s scope, the precision policy and the XLA default, all at once.

    Args:
      strategy: a ``tf.distribute.Strategy`` (from ``make_strategy``), or None for the current one.
      mixed_precision: build models with the ``mixed_float16`` policy (loss scaling at compile).
      jit_compile: True / False force XLA compilation of training and evaluation on / off for models
        compiled by keras-lottery; None leaves it to Keras (``"auto"``).

    Yields the strategy.
    """
    strategy = strategy or tf.distribute.get_strategy()
    if jit_compile not in (None, True, False, "auto"):
        raise ValueError(f"jit_compile must be None, 'auto', True or False; got {jit_compile!r}.")
    if jit_compile is True and strategy.num_replicas_in_sync > 1 and not isinstance(strategy, tf.distribute.TPUStrategy):
        raise ValueError(f"--jit_compile with {type(strategy).__name__} ({strategy.num_replicas_in_sync} replicas) is not "
                         "supported: Keras 3 compiles each replica's step apart and XLA then reaches variables on other "
                         "devices. Accepted: --jit_compile on one device (--strategy=default), or --strategy=tpu (always "
                         "XLA), or leave --jit_compile unset under mirrored / multi_worker.")
    _JIT.append("auto" if jit_compile is None else jit_compile)
    try:
        with strategy.scope(), precision(mixed_precision):
            yield strategy
    finally:
        _JIT.pop()


def enter_for_process(strategy, mixed_precision=False, jit_compile=None):
    """Enters ``execution(...)`` for the rest of the process (closed at exit); for binaries. Returns the strategy.

    Raises the same errors as ``execution``, before anything is built.
    """
    stack = contextlib.ExitStack()
    stack.enter_context(execution(strategy, mixed_precision, jit_compile))
    atexit.register(stack.close)
    return strategy


def describe(strategy, name, batch_size, mixed_precision=False, jit_compile=None, writing_to=None):
    """One line saying how a binary runs: strategy, replicas, task, global and per-replica batch, precision, XLA."""
    task_type, task_id = task(strategy)
    replicas = strategy.num_replicas_in_sync
    where = ""
    if task_type:
        where = f", task {task_type} {task_id}" + (" (chief)" if writing_to is None else f", writing to {writing_to}")
    return (f"Strategy {name}: {replicas} replicas in sync{where}; global batch {batch_size} "
            f"({batch_size // replicas} per replica); mixed_float16 {'on' if mixed_precision else 'off'}; jit_compile "
            f"{'auto' if jit_compile is None else jit_compile}")
