"""Run directories named by their hyper-parameters, and absl flags generated from dataclasses.

A run is a set of hyper-parameter dataclasses (data, model, training, pruning, ...). Its directory is
``<root>/<experiment>/<name>``, where ``name`` lists the fields that differ from their defaults
(``default`` when none do), and it holds ``hparams.json`` with every field. Running the same command
again finds the same directory and resumes; a directory whose ``hparams.json`` disagrees with the
command is refused, never overwritten.
"""

import dataclasses
import hashlib
import json
import os
import re

_MAX_NAME = 120


class RunDirectoryMismatch(ValueError):
    """The run directory holds a run with other hyper-parameters."""


# ---------------------------------------------------------------------------------------------
# Flags


def define_flags(*hparam_classes, flag_values=None):
    """Declares one absl flag per field of each dataclass, with its default and docstring help."""
    from absl import flags

    fv = flags.FLAGS if flag_values is None else flag_values
    for cls in hparam_classes:
        docs = _field_docs(cls)
        for field in dataclasses.fields(cls):
            if field.name in fv:
                raise ValueError(f"Flag --{field.name} of {cls.__name__} is already defined.")
            define = {bool: flags.DEFINE_boolean, int: flags.DEFINE_integer, float: flags.DEFINE_float,
                      str: flags.DEFINE_string}[type(field.default)]
            define(field.name, field.default, docs.get(field.name, field.name), flag_values=fv)


def from_flags(cls, flag_values=None):
    """Builds ``cls`` from the parsed flags of the same names."""
    from absl import flags

    fv = flags.FLAGS if flag_values is None else flag_values
    return cls(**{field.name: fv[field.name].value for field in dataclasses.fields(cls)})


def _field_docs(cls):
    """Reads ``name: help`` lines from the ``Attributes:`` section of a dataclass docstring."""
    docs, current = {}, None
    for line in (cls.__doc__ or "").splitlines():
        match = re.match(r"^\s{6}(\w+): (.*)$", line)
        if match:
            current = match.group(1)
            docs[current] = match.group(2).strip()
        elif current and re.match(r"^\s{8}\S", line):
            docs[current] += " " + line.strip()
    return docs


# ---------------------------------------------------------------------------------------------
# Naming


def as_dict(hparams):
    """``{group: {field: value}}`` for a ``{group: dataclass instance}`` mapping."""
    return {group: dataclasses.asdict(value) for group, value in hparams.items()}


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


# ---------------------------------------------------------------------------------------------
# The directory


def write_json_atomic(path, obj):
    """Writes JSON to ``path`` through a temporary file and a rename, so readers never see half."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=_json_default)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def read_json(path, default=None):
    """Reads JSON from ``path``, or returns ``default`` when it does not exist."""
    if not os.path.exists(path):
        return default
    with open(path) as f:
        return json.load(f)


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
        self.path = os.path.join(root, experiment, name or run_name(hparams))

    def file(self, *parts):
        """The path of a file inside the run directory."""
        return os.path.join(self.path, *parts)

    def check(self):
        """Raises ``RunDirectoryMismatch`` when the directory records other hyper-parameters."""
        recorded = read_json(self.file("hparams.json"))
        wanted = json.loads(json.dumps(as_dict(self.hparams)))
        if recorded is not None and recorded != wanted:
            diffs = []
            for group in sorted(set(recorded) | set(wanted)):
                old, new = recorded.get(group, {}), wanted.get(group, {})
                for key in sorted(set(old) | set(new)):
                    if old.get(key) != new.get(key):
                        diffs.append(f"{group}.{key}: directory has {old.get(key)!r}, command has {new.get(key)!r}")
            raise RunDirectoryMismatch(
                f"{self.path} holds a run with other hyper-parameters ({'; '.join(diffs)}). "
                "Use another --run_root or --run_name, or remove that directory yourself.")

    def prepare(self):
        """Creates the directory and ``hparams.json``, or checks an existing one. Returns self."""
        self.check()
        os.makedirs(self.path, exist_ok=True)
        if not os.path.exists(self.file("hparams.json")):
            write_json_atomic(self.file("hparams.json"), as_dict(self.hparams))
        return self

    def write_json(self, filename, obj):
        write_json_atomic(self.file(filename), obj)

    def read_json(self, filename, default=None):
        return read_json(self.file(filename), default)

    @property
    def finished(self):
        """True when the run wrote its final ``metrics.json``."""
        return os.path.exists(self.file("metrics.json"))
