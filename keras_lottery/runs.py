"""Run directories: where each experiment's files live, and the rules that keep them safe.

A run is a set of hyper-parameter dataclasses (data, model, training, pruning, ...). Its directory is
``<root>/<experiment>/<name>``, where ``name`` lists the fields that differ from their defaults
(``default`` when none do), and it holds ``hparams.json`` with every field. Running the same command
again finds the same directory and resumes; a directory whose ``hparams.json`` disagrees with the
command is refused, never overwritten.

This module names every file an experiment writes (the layout section below); the library's run
functions and the export read and write through these names only. Files are written atomically
with :mod:`keras_lottery.files`.
"""

import atexit
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import socket
import sys
import time

from keras_lottery import files

_MAX_NAME = 120

# -- layout: every file of a run directory ----------------------------------------------------------
HPARAMS = "hparams.json"            # every hyper-parameter of the run (written first)
LOCK = "run.lock"                   # pid and host of the process working in the directory (see RunDirectory.lock)
COMPLETE = "complete.json"          # written last, when the whole experiment finished (see mark_complete)
EXECUTION = "execution.json"        # strategy, replicas and mixed precision of a run that used them
# A training directory (training.fit): the experiment's own, or one inside it.
STATE = "state.json"                # the latest complete checkpoint and the history so far
METRICS = "metrics.json"            # final metrics; written last, it marks the training finished
HISTORY = "history.csv"             # one row per evaluation
FINAL_MODEL = "model.keras"         # the trained model (masks included for masked models)
CHECKPOINT_GLOB = "ckpt-*.keras"
ATTACHED_MASK_SUFFIX = ".mask.npz"  # beside a saved model: the masks attached in place, which .keras leaves out
# IMP (lottery.imp): level_<N>/ is a training directory with the level's mask; controls below it.
IMP_RECORD = "imp.json"             # the settings IMP derived (k in steps, ...); checked on resume
REWIND = "rewind.npz"               # the rewind point theta_k with the optimizer state at k
MASK = "mask.npz"                   # a level's mask (the JSON report beside it has the same stem)
SPARSITY = "sparsity.json"          # a level's density report
RESULTS = "results.csv"             # IMP: one row per trained network; stability: one row per k
IMP_PLOT = "accuracy_vs_density.png"        # IMP: accuracy against density
STABILITY_PLOT = "instability_vs_k.png"     # stability: instability against the rewind step
UNITS_PLOT = "accuracy_diff_vs_p.png"       # layer lottery with filter tickets: accuracy difference against p
# Layer lottery (lottery.layer_lottery).
DENSE = "dense"                     # replicate_<r>/dense/: the dense model's training directory
DENSE_TO_REWIND = "dense_to_rewind"  # replicate_<r>/dense_to_rewind/: Algorithm 1's training up to epoch i
TABLES = ("table.csv", "table.json", "table.md")
UNIT_TABLES = ("units.csv", "units.json", "units.md")  # with both units: layers minus filters, paired
# Stability (lottery.stability).
REWIND_POINTS = "rewind_points"     # rewind_points/k_<k>.npz
PRETRAIN = "pretrain"               # the dense training up to the largest k
STABILITY = "stability.json"        # k_<k>/stability.json: the error curves at k
# Robustness (robustness.evaluate).
MODEL_RESULTS = "models"            # models/<id>.json: one evaluated model's accuracies (written once it is done)
SUMMARY_TABLES = ("summary.csv", "summary.json", "summary.md")  # mean and spread over replicates, per group
SEVERITY_PLOT = "accuracy_vs_severity.png"
EPSILON_PLOT = "accuracy_vs_epsilon.png"
CORRUPTION_CACHE = "corruptions"    # <run_root>/corruptions/<dataset>/<test-set key>/<corruption>.npy
_TICKET = re.compile(r"^ticket_(?P<criterion>.+)_p(?P<p>\d+)_r(?P<replicate>\d+)(?:_(?P<unit>filters))?\.keras$")
UNITS = ("layers", "filters")  # layer lottery: what a ticket removes (residual blocks, or channels)
_LEVEL = re.compile(r"^level_(\d+)$")


def level_dir(directory, level, kind="ticket"):
    """IMP: the directory of ``level``'s ticket, or of a control (``kind`` = reinit or random) inside it."""
    base = os.path.join(directory, f"level_{int(level)}")
    return base if kind == "ticket" else os.path.join(base, kind)


def attached_mask_file(model_path):
    """Where the masks attached in place to a model saved at ``model_path`` are saved (``model.mask.npz``
    beside ``model.keras``): a ``.keras`` file holds graph wrappers but not masks attached in place."""
    return os.fspath(model_path).removesuffix(".keras") + ATTACHED_MASK_SUFFIX


def model_file(directory):
    """The trained model (``FINAL_MODEL``) of a training directory: an IMP level, a replicate's dense, a ticket's."""
    return os.path.join(directory, FINAL_MODEL)


def levels(directory):
    """IMP: the level numbers that have a directory, in order."""
    if not os.path.isdir(directory):
        return []
    return sorted(int(m.group(1)) for m in map(_LEVEL.match, os.listdir(directory)) if m)


def replicate_dir(directory, replicate):
    """Layer lottery: the directory of replicate ``replicate`` (its dense and ticket trainings, scores)."""
    return os.path.join(directory, f"replicate_{int(replicate)}")


def _unit_suffix(unit):
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}.")
    return "" if unit == "layers" else f"_{unit}"


def scores_file(directory, replicate, criterion, unit="layers"):
    """Layer lottery: the block scores (``unit="filters"``: the channel scores) of ``criterion`` in ``replicate``."""
    prefix = "scores" if unit == "layers" else f"{unit}_scores"
    _unit_suffix(unit)
    return os.path.join(replicate_dir(directory, replicate), f"{prefix}_{criterion}.json")


def ticket_training_dir(directory, replicate, criterion, p, unit="layers"):
    """Layer lottery: the training directory of the ticket without the ``p`` lowest blocks of ``criterion``
    (``unit="filters"``: of the filter ticket matched to it), ``<criterion>_p<p>[_filters]``."""
    return os.path.join(replicate_dir(directory, replicate), f"{criterion}_p{int(p)}{_unit_suffix(unit)}")


def ticket_file(directory, replicate, criterion, p, unit="layers"):
    """Layer lottery: the trained slim ticket, ``ticket_<criterion>_p<p>_r<r>[_filters].keras`` in the run directory."""
    return os.path.join(directory, f"ticket_{criterion}_p{int(p)}_r{int(replicate)}{_unit_suffix(unit)}.keras")


def parse_ticket_file(name, with_unit=False):
    """``(criterion, p, replicate)`` of a :func:`ticket_file` name (``with_unit``: and its unit), or None."""
    match = _TICKET.match(os.path.basename(name))
    if match is None:
        return None
    parsed = (match["criterion"], int(match["p"]), int(match["replicate"]))
    return parsed + (match["unit"] or "layers",) if with_unit else parsed


def ticket_files(directory):
    """Layer lottery: the ticket file names of a run directory, sorted."""
    return sorted(f for f in os.listdir(directory) if parse_ticket_file(f))


def rewind_point_file(directory, step):
    """Stability: the rewind point at step ``step``."""
    return os.path.join(directory, REWIND_POINTS, f"k_{int(step)}.npz")


def stability_dir(directory, step):
    """Stability: the directory of the two copies trained from step ``step``."""
    return os.path.join(directory, f"k_{int(step)}")


def model_result_file(directory, model_id):
    """Robustness: the accuracies of model ``model_id`` in a robustness run directory."""
    return os.path.join(directory, MODEL_RESULTS, f"{model_id}.json")


def corruption_cache(root, dataset):
    """Robustness: where the corrupted test images of ``dataset`` are cached, under the run root."""
    return os.path.join(root, CORRUPTION_CACHE, _clean(dataset))


class RunDirectoryMismatch(ValueError):
    """The run directory holds a run with other hyper-parameters."""


class RunDirectoryError(ValueError):
    """The run directory cannot be used: a bad name, a folder of unrelated files, or unfinished work."""


class RunLocked(RunDirectoryError):
    """Another process is working in the run directory."""


def mark_complete(directory, experiment, **summary):
    """Writes ``complete.json`` (``COMPLETE``) in ``directory``: the experiment finished; call it last.

    Consumers of a run's results (export, the stability binary's masks, comparisons between runs)
    check :func:`is_complete` or a training directory's ``metrics.json``, never a file that happens
    to be there.
    """
    record = {"experiment": experiment, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    record.update(summary)
    files.write_json(os.path.join(directory, COMPLETE), record)


def is_complete(directory):
    """True when the experiment in ``directory`` wrote its completion marker (:func:`mark_complete`)."""
    return os.path.isfile(os.path.join(directory, COMPLETE))


def training_finished(directory):
    """True when the training directory ``directory`` wrote its ``metrics.json`` (``training.fit`` writes it last)."""
    return os.path.isfile(os.path.join(directory, METRICS))


def training_progress(directory):
    """``"step S of E"`` (or ``"finished"``, ``"not started"``) for one training directory."""
    if training_finished(directory):
        return "finished"
    try:
        state = files.read_json(os.path.join(directory, STATE))
    except files.DamagedFileError:
        return f"{STATE} damaged"
    if state is None:
        return "not started"
    end = state.get("end_step")
    return f"at step {state.get('step')}" + (f" of {end}" if end is not None else "")


def progress(directory):
    """One line on what a run directory already holds: finished trainings and those in progress.

    A training directory is any folder with ``state.json`` or ``metrics.json`` (the run's own, an IMP
    level, a replicate's dense model, a ticket, a stability copy).
    """
    done, running = [], []
    for root, dirs, names in os.walk(directory):
        dirs.sort()
        relative = os.path.relpath(root, directory)
        relative = "." if relative == "." else relative
        if METRICS in names:
            done.append(relative)
        elif STATE in names:
            running.append(f"{relative} {training_progress(root)}")
    if not done and not running:
        return "nothing trained yet"
    line = f"{len(done)} training(s) finished"
    if done:
        shown = ", ".join(done[:6]) + (", ..." if len(done) > 6 else "")
        line += f" ({shown})"
    if running:
        line += f"; in progress: {', '.join(running)}"
    return line


def differences(recorded, wanted):
    """``["key.field: directory has X, command has Y", ...]`` between two (nested) settings dicts."""
    out = []
    for key in sorted(set(recorded) | set(wanted)):
        old, new = recorded.get(key), wanted.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            out += [f"{key}.{f}: directory has {old.get(f)!r}, command has {new.get(f)!r}"
                    for f in sorted(set(old) | set(new)) if old.get(f) != new.get(f)]
        elif old != new:
            out.append(f"{key}: directory has {old!r}, command has {new!r}")
    return out


def growable(hparams):
    """``{(group, field): grew(old, new)}`` from the ``GROWABLE`` of each hyper-parameter dataclass in
    ``hparams`` (``{group: instance}``): the settings a recorded run may be continued with, when they
    only add work after its finished part (e.g. ``PruningHparams``: more IMP levels or controls)."""
    return {(group, field): grew for group, value in hparams.items()
            for field, grew in getattr(type(value), "GROWABLE", {}).items()}


def _grown(recorded, wanted, growable):
    """``[(group, field, old, new)]`` when every difference is a setting of ``growable`` that grew; else None."""
    grown = []
    for key in set(recorded) | set(wanted):
        old, new = recorded.get(key), wanted.get(key)
        if old == new:
            continue
        if not (isinstance(old, dict) and isinstance(new, dict)):
            return None
        for field in sorted(set(old) | set(new)):
            if old.get(field) == new.get(field):
                continue
            grew = growable.get((key, field))
            try:
                if grew is None or not grew(old, new):
                    return None
            except (KeyError, TypeError, ValueError):
                return None
            grown.append((key, field, old.get(field), new.get(field)))
    return grown


def check_record(path, record, what="run", defaults=None, growable=None):
    """Raises ``RunDirectoryMismatch`` when the JSON file ``path`` exists and records other settings than ``record``.

    ``defaults`` (``{group: {field: default}}``, as :func:`field_defaults` gives): a field that the
    file does not record (added to the library after the run was made) matches when ``record`` has
    its default, so an upgrade does not orphan runs made before it. ``growable``
    (``{(group, field): grew(old group, new group)}``, as :func:`growable` gives): settings that may
    differ from the record when they only add work after the finished part (more IMP levels, more
    controls); anything else that differs is still a mismatch.

    Returns ``[(group, field, recorded, wanted)]`` for the settings that grew (empty when none did).
    """
    recorded = files.read_json(path)
    wanted = json.loads(json.dumps(record, default=files.json_default))
    if recorded is not None and defaults:
        defaults = json.loads(json.dumps(defaults, default=files.json_default))
        recorded = {group: ({**{f: v for f, v in defaults.get(group, {}).items() if f not in values}, **values}
                            if isinstance(values, dict) else values)
                    for group, values in recorded.items()}
    if recorded is None or recorded == wanted:
        return []
    grown = _grown(recorded, wanted, growable or {})
    if grown:
        return grown
    diffs = "; ".join(differences(recorded, wanted))
    raise RunDirectoryMismatch(f"{os.path.dirname(path) or '.'} holds a {what} with other hyper-parameters ({diffs}). "
                               "Use another --run_root or --run_name, or remove that directory yourself.")


# -- naming ---------------------------------------------------------------------------------------
def check_name(name):
    """Raises ``RunDirectoryError`` unless ``name`` is one directory name (no separator, not ``.`` or ``..``),
    so that a run directory always lies inside ``<root>/<experiment>/``."""
    name = str(name)
    seps = {os.sep, "/"} | ({os.altsep} if os.altsep else set())
    if not name.strip() or name in (".", "..") or any(sep in name for sep in seps) or "\0" in name:
        raise RunDirectoryError(f"--run_name must be one folder name inside --run_root (no '/', not '.' or '..'), "
                                f"got {name!r}.")
    return name


def as_dict(hparams):
    """``{group: {field: value}}`` for a ``{group: dataclass instance}`` mapping."""
    return {group: dataclasses.asdict(value) for group, value in hparams.items()}


def field_defaults(hparams):
    """``{group: {field: default}}`` for a ``{group: dataclass instance}`` mapping (fields with a plain default)."""
    return {group: {f.name: f.default for f in dataclasses.fields(value) if f.default is not dataclasses.MISSING}
            for group, value in hparams.items()}


def run_name(hparams):
    """A readable name from the fields that differ from their defaults, e.g. ``lr=0.01,model=resnet20``."""
    changed = {}
    for value in hparams.values():
        for field in dataclasses.fields(value):
            current = getattr(value, field.name)
            if current != field.default:
                changed[field.name] = current
    if not changed:
        return "default"
    name = ",".join(f"{key}={_clean(val)}" for key, val in sorted(changed.items()))
    if len(name) > _MAX_NAME:
        digest = hashlib.sha1(name.encode()).hexdigest()[:10]
        name = f"{name[:_MAX_NAME - 11]}_{digest}"
    return name


def _clean(value):
    return re.sub(r"[^A-Za-z0-9_.:+\-]", "-", str(value))


# -- the directory ----------------------------------------------------------------------------------
class RunDirectory:
    """The directory of one run: ``<root>/<experiment>/<run_name(hparams)>``.

    Args:
      root: where runs live (``runs`` by default in the binaries).
      experiment: the binary's name (``train``, ``imp``, ``layer_lottery``, ...).
      hparams: ``{group: dataclass instance}``; recorded in ``hparams.json``.
      name: overrides the derived directory name.
    """

    def __init__(self, root, experiment, hparams, name=None):
        self.hparams = hparams
        self.experiment = experiment
        self.path = os.path.join(root, experiment, check_name(name or run_name(hparams)))

    def file(self, *parts):
        """The path of a file inside the run directory."""
        return os.path.join(self.path, *parts)

    def check(self):
        """Raises ``RunDirectoryMismatch`` when the directory records other hyper-parameters, and
        ``RunDirectoryError`` when the path is a file or a folder of files that belong to no run."""
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise RunDirectoryError(f"{self.path} is a file, not a run directory; pick another --run_name.")
        if os.path.isdir(self.path) and not os.path.exists(self.file(HPARAMS)):
            foreign = sorted(set(os.listdir(self.path)) - {EXECUTION, LOCK})
            if foreign:
                shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
                raise RunDirectoryError(f"{self.path} holds files of no run ({shown}; no {HPARAMS}); refusing to "
                                        "write into it. Pick another --run_name or --run_root.")
        return check_record(self.file(HPARAMS), as_dict(self.hparams), defaults=field_defaults(self.hparams),
                            growable=growable(self.hparams))

    def check_execution(self, mixed_precision):
        """Raises ``RunDirectoryMismatch`` when the run was started with another ``mixed_precision``.

        A run directory without ``execution.json`` but with ``hparams.json`` is a float32 run.
        """
        recorded = files.read_json(self.file(EXECUTION))
        started = recorded is not None or os.path.exists(self.file(HPARAMS))
        was_mixed = bool(recorded and recorded.get("mixed_precision"))
        if started and was_mixed != bool(mixed_precision):
            raise RunDirectoryMismatch(
                f"{self.path} was started with --mixed_precision={was_mixed}; this command has "
                f"--mixed_precision={bool(mixed_precision)}. Use the same setting to resume, or another --run_name.")

    def record_execution(self, mixed_precision, strategy, replicas):
        """Writes ``execution.json`` once, for a mixed-precision run (float32 runs need no record)."""
        if mixed_precision and files.read_json(self.file(EXECUTION)) is None:
            os.makedirs(self.path, exist_ok=True)
            files.write_json(self.file(EXECUTION), {"mixed_precision": bool(mixed_precision), "strategy": strategy,
                                                    "replicas": int(replicas)})

    def prepare(self):
        """Creates the directory and ``hparams.json``, or checks an existing one. Returns self.

        A run continued with a growable setting (:func:`growable`: more IMP levels or controls) records
        the new settings, and its completion marker is removed until the longer run finishes.
        """
        grown = self.check()
        os.makedirs(self.path, exist_ok=True)
        if grown or not os.path.exists(self.file(HPARAMS)):
            if grown and os.path.exists(self.file(COMPLETE)):
                os.remove(self.file(COMPLETE))
            files.write_json(self.file(HPARAMS), as_dict(self.hparams))
        return self

    def write_json(self, filename, obj):
        """Writes ``filename`` in the directory atomically."""
        files.write_json(self.file(filename), obj)

    def read_json(self, filename, default=None):
        """Reads ``filename`` in the directory (``default`` when absent)."""
        return files.read_json(self.file(filename), default)

    @property
    def started(self):
        """True when the directory already holds this run (its ``hparams.json``)."""
        return os.path.exists(self.file(HPARAMS))

    @property
    def finished(self):
        """True when the whole experiment finished: its completion marker ``complete.json`` exists."""
        return is_complete(self.path)

    def mark_complete(self, **summary):
        """Writes the completion marker (:func:`mark_complete`); the experiment's last write."""
        mark_complete(self.path, self.experiment, **summary)

    def lock(self, log=print):
        """Takes the run directory for this process, or raises ``RunLocked`` naming the process that has it.

        The lock is ``run.lock``: an ``flock``-ed file holding the holder's pid, host and command. The
        kernel drops the lock when its process ends, ``kill -9`` included, so a lock left by a dead
        process is stale and taken over (with a line saying so); the file is removed at a clean exit.
        Creates the directory. Returns self.
        """
        os.makedirs(self.path, exist_ok=True)
        _acquire(self.file(LOCK), log)
        return self


# -- locks ------------------------------------------------------------------------------------------
_HELD = {}  # real path of a lock file -> its open descriptor, for the life of the process


def _holder():
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": " ".join(sys.argv)[:300]}


def _describe_holder(record):
    if not isinstance(record, dict) or "pid" not in record:
        return "another process"
    return (f"process {record['pid']} on {record.get('host', '?')} (started {record.get('started', '?')}: "
            f"{record.get('command', '?')})")


def _read_holder(path):
    try:
        with open(path) as f:
            return json.loads(f.read() or "null")
    except (OSError, ValueError):
        return None


def _acquire(path, log):
    key = os.path.realpath(path)
    if key in _HELD:
        return
    for _ in range(5):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            directory = os.path.dirname(path)
            raise RunLocked(f"{directory} is in use by {_describe_holder(_read_holder(path))}; wait for it to end, or "
                            f"use another --run_name. (If that process is gone, delete {path}.)") from None
        try:
            same_file = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same_file = False
        if not same_file:  # the holder removed the file between our open and our lock: try again
            os.close(fd)
            continue
        previous = _read_holder(path)
        if isinstance(previous, dict) and previous.get("host") not in (None, socket.gethostname()):
            os.close(fd)  # locks may not reach across hosts: the other process may be alive
            raise RunLocked(f"{os.path.dirname(path)} was taken by {_describe_holder(previous)}, another host; if that "
                            f"process is gone, delete {path} and run again.")
        if isinstance(previous, dict) and log is not None:
            log(f"Took over a stale lock ({_describe_holder(previous)} ended without releasing it).")
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_holder()).encode(), 0)
        os.fsync(fd)
        _HELD[key] = fd
        atexit.register(_release, key, path)
        return
    raise RunLocked(f"Could not take the lock {path}: other processes keep replacing it.")


def _release(key, path):
    fd = _HELD.pop(key, None)
    if fd is None:
        return
    try:
        os.remove(path)  # while still locked: no other process can hold it now
    except FileNotFoundError:
        pass
    os.close(fd)
