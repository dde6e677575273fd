"""Pruning rules: global magnitude, layerwise magnitude (per-layer rates), random (the control).

A rule is a small object that is also a pure function::

    new_mask = rule(weights, mask, layers_info=None)

``weights`` maps weight path -> NumPy array, ``mask`` is the current ``Mask`` (its paths are the
prunable weights), ``layers_info`` maps path -> ``LayerInfo`` (layer name, class, whether it
produces a model output; needed only for exclusions by type and ``output_rate``). The magnitude
rules never revive a weight: the new mask is the old mask minus the newly pruned entries.
``RandomPruning`` (the control) replaces the mask of each path of ``like`` with a random one.

``prune(masked_model, rule)`` reads the model's current weights and mask, applies the rule,
installs the result (dead weights become exactly 0) and returns it.

How many weights go: ``ceil(rate x alive)``, counted over the surviving weights (of all candidate
tensors for the global rule, of each tensor for the layerwise rule). Which: the smallest absolute
values; ties are broken deterministically, earlier tensor (model order) first, then lower flat
(C-order) index first.

Layer collapse: a rule never empties a tensor silently. The magnitude rules take ``min_alive``, the
number of weights every candidate tensor keeps whatever its magnitudes (an integer, or a fraction of
the tensor's size in (0, 1), rounded up): those are the tensor's largest. It is 1 by default for
``GlobalMagnitude`` (one threshold over all tensors can otherwise empty a small tensor of small
weights, e.g. a depthwise kernel, and make the network's output constant) and 0 (off) for
``LayerwiseMagnitude``, whose per-tensor counts are the papers'. Whenever a rule leaves a tensor
that had live weights with none, it names it in a ``UserWarning``.

Selecting tensors (``exclude`` and ``layer_rates`` keys) accepts: an exact layer name
(``"predictions"``), an exact weight path (``"sep/pointwise_kernel"``), a glob pattern on layer
names (``"stage3_*"``, ``"*shortcut*"``) or a layer class (``keras.layers.Dense``). A name that
is not in the model, or a pattern or class that matches nothing, is an error.
"""

import dataclasses
import fnmatch
import math
import warnings

import keras
import numpy as np

from keras_lottery import collapse
from keras_lottery.masking import apply_mask, masked_layers, read_mask
from keras_lottery.masks import Mask, ceil_count, keyed_for

__all__ = ["GlobalMagnitude", "LayerInfo", "LayerwiseMagnitude", "RandomPruning", "check_density",
           "check_min_alive", "check_rate", "layers_info", "prune",
           "weights_of"]


@dataclasses.dataclass(frozen=True)
class LayerInfo:
    """What a rule may know about the layer that owns a prunable weight."""

    layer_name: str
    layer_type: type = None
    weight_name: str = ""
    is_output: bool = False


def layers_info(model):
    """``{path: LayerInfo}`` for the masked weights of ``model`` (output layers flagged)."""
    try:
        output_names = set(model.output_names or ())
    except (AttributeError, ValueError):  # a bare layer or an unbuilt subclassed model
        output_names = set()
    info = {}
    for layer in masked_layers(model):
        for path in layer.weight_paths():
            info[path] = LayerInfo(layer.layer.name, type(layer.layer), path.split("/", 1)[1],
                                   layer.name in output_names)
    return info


def weights_of(model):
    """``{path: NumPy array}``: current values of the masked weights of ``model``."""
    out = {}
    for layer in masked_layers(model):
        for path, variable in layer.prunable_variables().items():
            out[path] = keras.ops.convert_to_numpy(variable.value)
    return out


def prune(model, rule, optimizer=None):
    """Prunes the masked ``model`` in place with ``rule``; returns the new ``Mask``.

    The rule sees the current weights and the current mask; the new mask is installed, the newly
    dead weights are set to exactly 0 and so is their state in ``optimizer`` (default:
    ``model.optimizer``; pass a custom training loop's optimizer). When the pruned network's output no
    longer depends on its input, a ``CollapseWarning`` names the layer where the signal dies
    (:mod:`keras_lottery.collapse`).
    """
    if not callable(rule):
        raise TypeError(f"prune() needs a rule such as GlobalMagnitude(0.2); got {rule!r}.")
    current = read_mask(model)
    new = rule(weights_of(model), current, layers_info(model))
    apply_mask(model, new, optimizer)
    if isinstance(model, keras.Model):
        collapse.warn_if_collapsed(model)
    return new


# -- helpers ----------------------------------------------------------------------------------------
def check_rate(rate, what="rate"):
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating)) or not 0.0 <= float(rate) < 1.0:
        raise ValueError(f"{what} must be a number in [0, 1) (the fraction of surviving weights to prune); "
                         f"got {rate!r}.")
    return float(rate)


def check_density(density):
    if isinstance(density, bool) or not isinstance(density, (int, float, np.floating)) or not 0.0 < density <= 1.0:
        raise ValueError(f"density must be a number in (0, 1] (the fraction of weights kept); got {density!r}.")
    return float(density)


def check_min_alive(min_alive):
    """``min_alive`` as given: an integer >= 0 (a count) or a number in (0, 1) (a fraction of each tensor)."""
    if isinstance(min_alive, bool) or not isinstance(min_alive, (int, float, np.integer, np.floating)) or (
            min_alive < 0 or (not float(min_alive).is_integer() and min_alive >= 1)):
        raise ValueError(f"min_alive must be an integer >= 0 (weights kept per tensor) or a fraction in (0, 1) of "
                         f"each tensor; got {min_alive!r}.")
    return int(min_alive) if float(min_alive).is_integer() else float(min_alive)


def _kept(min_alive, size):
    """How many weights of a tensor of ``size`` entries the collapse guard keeps."""
    return math.ceil(min_alive * size) if isinstance(min_alive, float) else min(int(min_alive), size)


def _warn_emptied(rule, old, new):
    emptied = [p for p in new if np.any(old[p]) and not np.any(new[p])]
    if emptied:
        warnings.warn(f"{rule!r} leaves {len(emptied)} tensor(s) with no live weight (density 0, layer collapse): "
                      f"{emptied}. Keep some with min_alive=1 (or more), or exclude them.", UserWarning, stacklevel=3)


def _protected(scores, alive, m):
    """Boolean array of the ``m`` alive entries pruning would take last (the largest, ties as pruning breaks them)."""
    flat_alive = alive.reshape(-1)
    idx = np.flatnonzero(flat_alive)
    out = np.zeros_like(flat_alive)
    if m > 0:
        order = np.argsort(scores.reshape(-1)[idx], kind="stable")
        out[idx[order[len(idx) - min(m, len(idx)):]]] = True
    return out.reshape(alive.shape)


def _is_depthwise(path, info):
    """Whether the weight at ``path`` is a depthwise kernel (its output units are its last two axes)."""
    layer_type = getattr(info, "layer_type", None)
    return path.endswith("depthwise_kernel") or (
        isinstance(layer_type, type) and issubclass(layer_type, (keras.layers.DepthwiseConv1D,
                                                                 keras.layers.DepthwiseConv2D)))


def _unit_guard(magnitude, alive, depthwise):
    """Boolean array: the largest alive entry of each output unit of a kernel of rank >= 2 (units: the last
    axis, the last two for a depthwise kernel: channel x multiplier); none for vectors."""
    if magnitude.ndim < 2:
        return np.zeros(alive.shape, bool)
    units = int(np.prod(magnitude.shape[-2:] if depthwise else magnitude.shape[-1:]))
    alive_units = alive.reshape(-1, units)
    scores = np.where(alive_units, magnitude.reshape(-1, units), -1.0)
    best = scores.argmax(axis=0)
    has = alive_units.any(axis=0)
    out = np.zeros(alive_units.shape, bool)
    out[best[has], np.arange(units)[has]] = True
    return out.reshape(alive.shape)


def _info_for(paths, info):
    info = dict(info or {})
    return {p: info.get(p) or LayerInfo(p.split("/", 1)[0], None, p.split("/", 1)[1], False) for p in paths}


def _matches(selector, path, info):
    if isinstance(selector, type):
        if info.layer_type is None:
            raise ValueError(f"Selecting by layer class {selector.__name__} needs layers_info (prune(model, rule) "
                             "provides it).")
        return issubclass(info.layer_type, selector)
    if not isinstance(selector, str):
        raise TypeError(f"Layer selectors are names, weight paths, glob patterns or layer classes; got {selector!r}.")
    if selector in (info.layer_name, path):
        return True
    return any(c in selector for c in "*?[") and fnmatch.fnmatchcase(info.layer_name, selector)


def _select(selectors, infos, what):
    """Paths matched by any selector; every selector must match something."""
    if selectors is None:
        return set()
    if isinstance(selectors, (str, type)):
        selectors = [selectors]
    chosen = set()
    for selector in selectors:
        hits = {p for p, i in infos.items() if _matches(selector, p, i)}
        if not hits:
            kind = "pattern" if isinstance(selector, str) and any(c in selector for c in "*?[") else (
                "layer class" if isinstance(selector, type) else "layer name")
            names = sorted({i.layer_name for i in infos.values()})
            shown = selector.__name__ if isinstance(selector, type) else repr(selector)
            raise ValueError(f"{what}: {kind} {shown} matches no prunable weight. Prunable layers: {names}.")
        chosen |= hits
    return chosen


def _check_inputs(weights, mask):
    if not isinstance(mask, Mask):
        mask = Mask(mask)
    missing = [p for p in mask if p not in weights]
    if missing:
        raise ValueError(f"No weights given for masked paths {missing}.")
    for p in mask:
        if tuple(np.shape(weights[p])) != mask[p].shape:
            raise ValueError(f"Weight {p!r} has shape {np.shape(weights[p])}, its mask {mask[p].shape}.")
    return mask


def _prune_lowest(scores, alive, n):
    """Boolean array: ``alive`` minus the ``n`` alive entries with the lowest score (stable ties)."""
    flat_alive = alive.reshape(-1)
    idx = np.flatnonzero(flat_alive)
    order = np.argsort(scores.reshape(-1)[idx], kind="stable")
    out = flat_alive.copy()
    out[idx[order[:n]]] = False
    return out.reshape(alive.shape)


class _Rule:
    def __call__(self, weights, mask, layers_info=None):
        raise NotImplementedError

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if v not in (None, (), {}))
        return f"{type(self).__name__}({fields})"


class GlobalMagnitude(_Rule):
    """One magnitude threshold over the surviving weights of all candidate tensors.

    Prunes ``ceil(rate x alive)`` weights, alive counted over the candidates (every masked weight
    not in ``exclude``). With ``density`` instead of ``rate``, prunes until ``round(density x total)``
    weights of the whole mask stay alive (excluded tensors count in the total but are not pruned);
    nothing happens if the mask is already that sparse.

    The collapse guard keeps the ``min_alive`` largest surviving weights of every candidate tensor
    and, with ``keep_units`` (the default), the largest surviving weight of every output unit of a
    kernel (a column of a dense kernel, an output channel of a convolution, each channel of a
    depthwise kernel): every unit still receives some input, so a path from the input to every unit
    survives (counting weights per tensor does not ensure that: one weight kept in a depthwise kernel
    of 16 channels cuts 15 of them). When the count to prune cannot be reached without breaking the
    guard, the rule raises.

    Args:
        rate: fraction of surviving candidate weights to prune, in [0, 1).
        exclude: names, weight paths, glob patterns or layer classes never pruned.
        density: alternative to ``rate``: the target density of the whole mask, in (0, 1].
        min_alive: weights each candidate tensor keeps (an integer, or a fraction of its size);
            1 by default, 0 turns the guard off (a tensor emptied is then named in a warning).
        keep_units: keep the largest surviving weight of every output unit of each candidate kernel of
            rank >= 2 (default True; False gives the plain global threshold).
    """

    def __init__(self, rate=None, exclude=(), density=None, min_alive=1, keep_units=True):
        if (rate is None) == (density is None):
            raise ValueError(f"GlobalMagnitude takes exactly one of rate or density; got rate={rate!r}, "
                             f"density={density!r}.")
        self.rate = None if rate is None else check_rate(rate)
        self.density = None if density is None else check_density(density)
        self.exclude = tuple([exclude] if isinstance(exclude, (str, type)) else exclude or ())
        self.min_alive = check_min_alive(min_alive)
        self.keep_units = bool(keep_units)

    def __call__(self, weights, mask, layers_info=None):
        mask = _check_inputs(weights, mask)
        new = self._prune(weights, mask, layers_info)
        _warn_emptied(self, mask, new)
        return new

    def _prune(self, weights, mask, layers_info):
        infos = _info_for(mask, layers_info)
        excluded = _select(self.exclude, infos, "GlobalMagnitude exclude")
        candidates = [p for p in mask if p not in excluded]
        alive = sum(int(np.count_nonzero(mask[p])) for p in candidates)
        if self.rate is not None:
            n = ceil_count(self.rate, alive)
        else:
            n = mask.alive - int(round(self.density * mask.total))
            if n > alive:
                raise ValueError(f"GlobalMagnitude(density={self.density}) asks for more sparsity than exists: it "
                                 f"must prune {n} weights but only {alive} candidate weights are alive "
                                 f"(excluded: {sorted(excluded)}).")
            n = max(n, 0)
        new = mask.copy()
        if n == 0 or not candidates:
            return new
        magnitudes = {p: np.abs(np.asarray(weights[p], dtype=np.float64)) for p in candidates}
        scores = np.concatenate([magnitudes[p].reshape(-1) for p in candidates])
        alive_all = np.concatenate([mask[p].reshape(-1) for p in candidates])
        guard = np.concatenate([(_protected(magnitudes[p], mask[p], _kept(self.min_alive, mask[p].size))
                                 | (_unit_guard(magnitudes[p], mask[p], _is_depthwise(p, infos[p]))
                                    if self.keep_units else False)).reshape(-1)
                                for p in candidates])
        if n > int(np.count_nonzero(alive_all & ~guard)):
            units = " and one weight per output unit (keep_units=True)" if self.keep_units else ""
            raise ValueError(f"{self!r} must prune {n} weights, but the collapse guard (min_alive={self.min_alive} "
                             f"per tensor{units}) leaves only {int(np.count_nonzero(alive_all & ~guard))} prunable. "
                             "Lower min_alive, pass keep_units=False, or ask for less sparsity.")
        kept = _prune_lowest(scores, alive_all & ~guard, n) | guard
        start = 0
        for p in candidates:
            size = mask[p].size
            new[p] = kept[start:start + size].reshape(mask[p].shape)
            start += size
        return new


class LayerwiseMagnitude(_Rule):
    """Each candidate tensor loses ``ceil(r x its alive weights)``, its smallest magnitudes first.

    ``r`` is ``rate`` unless ``layer_rates`` gives another for the tensor (key: a layer name, a
    weight path, a glob pattern or a layer class; an exact name or path wins over patterns and
    classes, which apply in the order given), or else ``output_rate`` for layers that produce a
    model output (the LTH prunes the output layer at half the rate). LTH examples::

        LayerwiseMagnitude(0.2, output_rate=0.1)                      # LeNet-300-100
        LayerwiseMagnitude(0.2, layer_rates={keras.layers.Conv2D: 0.1}, output_rate=0.1)  # Conv-2/4

    With ``density`` instead of rates, every candidate tensor is pruned to keep
    ``round(density x size)`` weights (tensors already sparser are left alone).

    Args:
        rate: default fraction of each tensor's surviving weights to prune, in [0, 1).
        layer_rates: ``{selector: rate}`` overrides.
        exclude: selectors of tensors never pruned.
        output_rate: rate for the output layer(s) (needs ``layers_info``; ``prune`` supplies it).
        density: alternative to the rates: the target density of each candidate tensor.
        min_alive: weights each candidate tensor keeps whatever the rate (an integer, or a fraction
            of its size); 0 (off) by default. A tensor emptied is named in a warning.
    """

    def __init__(self, rate=None, layer_rates=None, exclude=(), output_rate=None, density=None, min_alive=0):
        if (rate is None) == (density is None):
            raise ValueError(f"LayerwiseMagnitude takes exactly one of rate or density; got rate={rate!r}, "
                             f"density={density!r}.")
        if density is not None and (layer_rates or output_rate is not None):
            raise ValueError("LayerwiseMagnitude: layer_rates and output_rate go with rate, not with density.")
        self.rate = None if rate is None else check_rate(rate)
        self.density = None if density is None else check_density(density)
        self.layer_rates = {k: check_rate(v, f"layer_rates[{k!r}]") for k, v in dict(layer_rates or {}).items()}
        self.output_rate = None if output_rate is None else check_rate(output_rate, "output_rate")
        self.exclude = tuple([exclude] if isinstance(exclude, (str, type)) else exclude or ())
        self.min_alive = check_min_alive(min_alive)

    def rates(self, mask, layers_info=None):
        """``{path: rate}`` for the candidate tensors (excluded ones are absent)."""
        infos = _info_for(mask, layers_info)
        excluded = _select(self.exclude, infos, "LayerwiseMagnitude exclude")
        rates = {p: self.rate for p in infos if p not in excluded}
        if self.output_rate is not None:
            outputs = [p for p, i in infos.items() if i.is_output]
            if not outputs:
                raise ValueError("LayerwiseMagnitude(output_rate=...) found no output layer; pass layers_info "
                                 "(prune(model, rule) does) or name the layer in layer_rates.")
            for p in outputs:
                if p in rates:
                    rates[p] = self.output_rate
        exact, general = {}, []
        for selector, rate in self.layer_rates.items():
            hits = _select([selector], infos, "LayerwiseMagnitude layer_rates")
            is_exact = isinstance(selector, str) and not any(c in selector for c in "*?[")
            if is_exact:
                exact.update({p: rate for p in hits})
            else:
                general.append((hits, rate))
        assigned = set()
        for hits, rate in general:
            for p in hits:
                if p in rates and p not in assigned:
                    rates[p] = rate
                    assigned.add(p)
        for p, rate in exact.items():
            if p in rates:
                rates[p] = rate
        return rates

    def __call__(self, weights, mask, layers_info=None):
        mask = _check_inputs(weights, mask)
        new = mask.copy()
        if self.density is not None:
            infos = _info_for(mask, layers_info)
            excluded = _select(self.exclude, infos, "LayerwiseMagnitude exclude")
            counts = {p: int(np.count_nonzero(mask[p])) - int(round(self.density * mask[p].size))
                      for p in mask if p not in excluded}
        else:
            counts = {p: ceil_count(r, int(np.count_nonzero(mask[p]))) for p, r in self.rates(mask, layers_info).items()}
        for p, n in counts.items():
            n = min(n, int(np.count_nonzero(mask[p])) - _kept(self.min_alive, mask[p].size))
            if n > 0:
                new[p] = _prune_lowest(np.abs(np.asarray(weights[p], dtype=np.float64)), mask[p], n)
        _warn_emptied(self, mask, new)
        return new


class RandomPruning(_Rule):
    """The random-pruning control: a random mask with the per-tensor densities of ``like``.

    For each path of ``like``, exactly as many entries stay alive as in ``like[path]``, drawn
    uniformly over the whole tensor (the current mask and weights are ignored for those paths;
    other paths keep their current mask). Same ``seed``, same mask.

    Args:
        like: the ``Mask`` whose per-tensor densities to copy (typically the winning ticket's).
        seed: integer seed.
    """

    def __init__(self, like, seed=None):
        if not isinstance(like, Mask):
            if not hasattr(like, "items"):
                raise TypeError(f"RandomPruning(like=...) takes a Mask; got {type(like).__name__}.")
            like = Mask(like)
        self.like = like
        self.seed = seed

    def __repr__(self):
        return f"RandomPruning(like={self.like!r}, seed={self.seed!r})"

    def __call__(self, weights, mask, layers_info=None):
        mask = mask if isinstance(mask, Mask) else Mask(mask)
        like = keyed_for(self.like, [(p, a.shape) for p, a in mask.items()])  # or another instance's ticket
        unknown = [p for p in like if p not in mask]
        if unknown:
            raise ValueError(f"RandomPruning: paths {unknown} of `like` are not in the model's mask ({list(mask)}).")
        rng = np.random.default_rng(self.seed)
        new = mask.copy()
        for p, reference in like.items():
            if reference.shape != mask[p].shape:
                raise ValueError(f"RandomPruning: `like[{p!r}]` has shape {reference.shape}, the weight "
                                 f"{mask[p].shape}.")
            keep = int(np.count_nonzero(reference))
            flat = np.zeros(reference.size, dtype=bool)
            flat[rng.permutation(reference.size)[:keep]] = True
            new[p] = flat.reshape(reference.shape)
        _warn_emptied(self, mask, new)
        return new
