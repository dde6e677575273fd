"""``Mask``: which weights of a masked model are alive.

A mask maps a *weight path* to a boolean NumPy array of the weight's shape (``True`` = alive).
A weight path is ``"<layer name>/<weight name>"``, where the layer is the wrapped layer (its name
is also the name of its ``MaskedLayer`` wrapper in the model) and the weight name is the Keras
variable name: ``"fc1/kernel"``, ``"stage2_block3_conv1/kernel"``, ``"sep/depthwise_kernel"``,
``"sep/pointwise_kernel"``, ``"embed/embeddings"``. Paths are stable across saving, loading,
``keras.models.clone_model`` and rebuilding the same architecture.

On disk a mask is an ``.npz`` file (one array per path) with a JSON sparsity report next to it
(same stem, ``.json``), so a level directory can be read without loading TensorFlow.
"""

import collections.abc
import json
import math
import os

import numpy as np

__all__ = ["Mask", "apply_mask", "format_report", "sparsity"]

_ORDER_KEY = "__paths__"


class Mask(collections.abc.MutableMapping):
    """An ordered mapping ``weight path -> bool np.ndarray`` (``True`` = weight alive).

    Build one with ``Mask.from_model(masked_model)``, ``Mask.ones_like(masked_model)`` or from a
    plain dict (``Mask({"fc1/kernel": array, ...})``); install it with ``mask.apply_to(model)``.
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

    # -- model interaction -----------------------------------------------------------------------
    @classmethod
    def from_model(cls, model):
        """The mask currently installed in ``model`` (a model or layer containing ``MaskedLayer``s)."""
        from keras_lottery import wrappers

        layers = wrappers.masked_layers(model)
        if not layers:
            raise ValueError(f"Model {getattr(model, 'name', model)!r} has no MaskedLayer; "
                             "create one with keras_lottery.mask(model) or wrap layers in MaskedLayer.")
        out = cls()
        for layer in layers:
            for path, mask_var in layer.mask_variables().items():
                out[path] = np.asarray(keras_to_numpy(mask_var)) != 0
        return out

    @classmethod
    def ones_like(cls, model):
        """An all-alive mask with the paths and shapes of ``model``'s masked weights."""
        current = cls.from_model(model)
        return cls({p: np.ones_like(a) for p, a in current.items()})

    def apply_to(self, model):
        """Installs this mask in ``model`` and zeroes the dead weights; see ``apply_mask``."""
        return apply_mask(model, self)

    # -- files -----------------------------------------------------------------------------------
    def save(self, path):
        """Writes ``path`` (``.npz``, added if missing) and the JSON report next to it; returns the npz path."""
        path = os.fspath(path)
        if not path.endswith(".npz"):
            path += ".npz"
        arrays = {f"m{i}": a for i, a in enumerate(self._arrays.values())}
        arrays[_ORDER_KEY] = np.array(json.dumps(list(self._arrays)))
        tmp = path[:-4] + ".tmp.npz"
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
        with open(path[:-4] + ".json", "w") as f:
            json.dump(self.report(), f, indent=2)
        return path

    @classmethod
    def load(cls, path):
        """Reads a mask written by ``Mask.save``."""
        path = os.fspath(path)
        if not path.endswith(".npz") and not os.path.exists(path):
            path += ".npz"
        with np.load(path, allow_pickle=False) as data:
            if _ORDER_KEY not in data.files:
                raise ValueError(f"{path!r} is not a keras_lottery mask file (no {_ORDER_KEY!r} entry).")
            paths = json.loads(str(data[_ORDER_KEY]))
            return cls({p: data[f"m{i}"] for i, p in enumerate(paths)})


def keras_to_numpy(variable):
    """NumPy value of a Keras variable (works eagerly under any distribution strategy)."""
    import keras

    return keras.ops.convert_to_numpy(variable.value)


def apply_mask(model, mask, optimizer=None):
    """Installs ``mask`` in the masked ``model``: sets the masks, zeroes dead weights and their optimizer state.

    The optimizer state (momentum, Adam moments, ...) of dead entries is zeroed in ``optimizer``
    (default: ``model.optimizer``, if compiled), so no update can move them away from 0.

    ``mask`` may cover a subset of the model's weight paths (the others keep their masks); a path
    the model does not have, or a shape that differs, raises ``ValueError``. Returns the model.
    """
    from keras_lottery import wrappers

    by_path = {}
    for layer in wrappers.masked_layers(model):
        for path in layer.mask_variables():
            by_path[path] = layer
    unknown = [p for p in mask if p not in by_path]
    if unknown:
        raise ValueError(f"Mask has weight paths the model does not have: {unknown}. "
                         f"Model paths: {list(by_path)}.")
    for path, array in mask.items():
        by_path[path].set_mask(path, array)
    wrappers.zero_optimizer_state(model, optimizer)
    return model


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


def _count(rate, n):
    """ceil(rate * n), robust to binary floating point (0.2 * 1000 is 200, not 201)."""
    return int(math.ceil(round(rate * n, 9)))


def sparsity(model_or_mask, print_fn=print):
    """Prints a table of total / alive / density per weight and overall; returns the report dict.

    Accepts a ``Mask``, a masked model (its installed masks) or a plain model such as the result
    of ``strip`` (then "alive" means non-zero, over the built-in prunable weights). ``print_fn=None``
    prints nothing.
    """
    if isinstance(model_or_mask, Mask):
        current, title = model_or_mask, "mask"
    else:
        from keras_lottery import wrappers

        name = getattr(model_or_mask, "name", type(model_or_mask).__name__)
        if wrappers.masked_layers(model_or_mask):
            current, title = Mask.from_model(model_or_mask), f"{name} (masks)"
        else:
            current, title = _nonzero_mask(model_or_mask), f"{name} (non-zero prunable weights)"
    report = current.report()
    if print_fn is not None:
        print_fn(format_report(report, title=f"Sparsity of {title}"))
    return report


def _nonzero_mask(model):
    from keras_lottery import wrappers

    out = Mask()
    seen = set()

    def walk(layer):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        names = wrappers.prunable_weight_names(layer)
        for v in layer.weights if names else ():
            if v.name in names:
                out[f"{layer.name}/{v.name}"] = keras_to_numpy(v) != 0
        for child in getattr(layer, "layers", None) or ():
            walk(child)

    walk(model)
    return out
