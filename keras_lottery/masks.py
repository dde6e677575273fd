"""``Mask``: which weights of a masked model are alive.

A mask maps a *weight path* to a boolean NumPy array of the weight's shape (``True`` = alive).
A weight path is ``"<layer name>/<weight name>"``, where the layer is the wrapped layer (its name
is also the name of its ``MaskedLayer`` wrapper in the model) and the weight name is the Keras
variable name: ``"fc1/kernel"``, ``"stage2_block3_conv1/kernel"``, ``"sep/depthwise_kernel"``,
``"sep/pointwise_kernel"``, ``"embed/embeddings"``. Paths are stable across saving, loading,
``keras.models.clone_model`` and rebuilding the same architecture.

On disk a mask is an ``.npz`` file (one array per path) with a JSON sparsity report next to it
(same stem, ``.json``), so a level directory can be read without loading TensorFlow.

This module is pure data: it never touches a model. Reading a mask from a model and installing one
is :mod:`keras_lottery.masking`'s job (``read_mask``, ``apply_mask``); it also provides the
classmethod spellings ``Mask.from_model(model)``, ``Mask.ones_like(model)`` and
``mask.apply_to(model)``.
"""

import collections.abc
import json
import math
import os
import re

import numpy as np

from keras_lottery import files

__all__ = ["Mask", "ceil_count", "format_report", "keyed_for", "keyed_like"]

_ORDER_KEY = "__paths__"


class Mask(collections.abc.MutableMapping):
    """An ordered mapping ``weight path -> bool np.ndarray`` (``True`` = weight alive).

    Build one from a plain dict (``Mask({"fc1/kernel": array, ...})``) or read it from a masked model
    with ``Mask.from_model(model)``; install it with ``mask.apply_to(model)`` (both from
    :mod:`keras_lottery.masking`).
    Values are stored as boolean copies, so changing the source arrays later changes nothing.
    """

    def __init__(self, arrays=None):
        self._arrays = {}
        for path, value in dict(arrays or {}).items():
            self[path] = value

    # -- mapping protocol ------------------------------------------------------------------------
    def __getitem__(self, path):
        try:
            return self._arrays[path]
        except KeyError:
            raise KeyError(f"No weight path {path!r} in this mask. Paths: {', '.join(self._arrays) or '(none)'}.") from None

    def __setitem__(self, path, value):
        if not isinstance(path, str) or "/" not in path:
            raise ValueError(f"Mask keys are weight paths '<layer name>/<weight name>', got {path!r}.")
        array = np.asarray(value)
        if array.dtype != bool:
            if not np.all((array == 0) | (array == 1)):
                raise ValueError(f"Mask values must be boolean (or 0/1); {path!r} has other values.")
            array = array != 0
        self._arrays[path] = np.array(array, dtype=bool, copy=True)

    def __delitem__(self, path):
        del self._arrays[path]

    def __iter__(self):
        return iter(self._arrays)

    def __len__(self):
        return len(self._arrays)

    def __repr__(self):
        return f"Mask({len(self)} weights, density={self.density:.4f})"

    def __eq__(self, other):
        if not isinstance(other, collections.abc.Mapping):
            return NotImplemented
        return list(self) == list(other) and all(np.array_equal(self[k], np.asarray(other[k])) for k in self)

    def copy(self):
        """A deep copy."""
        return Mask(self._arrays)

    # -- counting --------------------------------------------------------------------------------
    @property
    def total(self):
        """Number of maskable entries over all paths."""
        return int(sum(a.size for a in self._arrays.values()))

    @property
    def alive(self):
        """Number of alive (``True``) entries over all paths."""
        return int(sum(np.count_nonzero(a) for a in self._arrays.values()))

    @property
    def density(self):
        """alive / total over all paths (1.0 for an empty mask)."""
        total = self.total
        return self.alive / total if total else 1.0

    @property
    def sparsity(self):
        """1 - density."""
        return 1.0 - self.density

    def report(self):
        """Sparsity report: ``{"layers": {path: {total, alive, density}}, "global": {...}}``."""
        layers = {}
        for path, array in self._arrays.items():
            total, alive = int(array.size), int(np.count_nonzero(array))
            layers[path] = {"total": total, "alive": alive, "density": alive / total if total else 1.0}
        return {"layers": layers, "global": {"total": self.total, "alive": self.alive, "density": self.density}}

    # -- files -----------------------------------------------------------------------------------
    def save(self, path):
        """Writes ``path`` (``.npz``, added if missing) and the JSON report next to it; returns the npz path."""
        path = os.fspath(path)
        if not path.endswith(".npz"):
            path += ".npz"
        arrays = {f"m{i}": a for i, a in enumerate(self._arrays.values())}
        arrays[_ORDER_KEY] = np.array(json.dumps(list(self._arrays)))
        with files.atomic(path) as tmp:
            np.savez_compressed(tmp, **arrays)
        files.write_json(path[:-4] + ".json", self.report(), sort_keys=False)
        return path

    @classmethod
    def load(cls, path):
        """Reads a mask written by ``Mask.save``."""
        path = os.fspath(path)
        if not path.endswith(".npz") and not os.path.exists(path):
            path += ".npz"
        arrays = None
        with files.guard(path), np.load(path, allow_pickle=False) as data:  # a torn file: DamagedFileError
            if _ORDER_KEY in data.files:
                arrays = {p: data[f"m{i}"] for i, p in enumerate(json.loads(str(data[_ORDER_KEY])))}
        if arrays is None:
            raise ValueError(f"{path!r} is not a keras_lottery mask file (no {_ORDER_KEY!r} entry).")
        return cls(arrays)


def _unnumbered(path):
    """``path`` without Keras' automatic numbering: ``net_3/dense_24/kernel`` -> ``net/dense/kernel``."""
    return "/".join(re.sub(r"_\d+$", "", part) for part in path.split("#")[0].split("/"))


def keyed_like(mask, reference):
    """``mask`` keyed by the paths of ``reference`` (``[(path, shape)]``, in model order) when it is the mask
    of another instance of the same architecture: the same weights in the same order and shapes, paths
    differing only in Keras' automatic numbering (a subclassed model's sublayers are named ``dense_24`` in
    one instance, ``dense_36`` in the next). None otherwise."""
    theirs = list(mask.items())
    if len(theirs) != len(reference) or any(
            _unnumbered(path) != _unnumbered(other) or tuple(shape) != np.shape(array)
            for (path, shape), (other, array) in zip(reference, theirs)):
        return None
    return Mask({path: array for (path, _), (_, array) in zip(reference, theirs)})


def keyed_for(mask, reference):
    """``mask`` itself when every path of it is in ``reference`` (``[(path, shape)]``, in model order), else
    :func:`keyed_like`'s renaming when there is one, else ``mask`` (whose unknown paths the caller reports)."""
    known = {path for path, _ in reference}
    if all(path in known for path in mask):
        return mask
    return keyed_like(mask, reference) or mask


def format_report(report, title=None):
    """A fixed-width text table of a ``Mask.report()`` dict."""
    rows = [(p, r["total"], r["alive"], r["density"]) for p, r in report["layers"].items()]
    g = report["global"]
    width = max([len("weight")] + [len(p) for p, *_ in rows])
    lines = []
    if title:
        lines.append(title)
    head = f"{'weight':<{width}}  {'total':>10}  {'alive':>10}  {'density':>8}"
    lines += [head, "-" * len(head)]
    lines += [f"{p:<{width}}  {t:>10d}  {a:>10d}  {d:>8.2%}" for p, t, a, d in rows]
    lines += ["-" * len(head), f"{'global':<{width}}  {g['total']:>10d}  {g['alive']:>10d}  {g['density']:>8.2%}"]
    return "\n".join(lines)


def ceil_count(rate, n):
    """``ceil(rate * n)``, robust to binary floating point (0.2 * 1000 is 200, not 201)."""
    return int(math.ceil(round(rate * n, 9)))
