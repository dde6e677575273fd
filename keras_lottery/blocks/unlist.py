"""Remove sublayers of a container layer by shortening its list, in a copy of the model.

A container (:mod:`keras_lottery.blocks.containers`) applies a list attribute of residual sublayers in its
own call: KerasHub's ``SwinTransformerStage`` (its ``blocks``), a user's layer looping over a list. When
the model is no KerasHub backbone with ``num_layers`` to rebuild smaller (:mod:`.resize`), its sublayer
blocks are removed here:

1. the model is copied the way the package copies models: a plain functional model by
   :func:`keras_lottery.compat.clone_graph` (each layer rebuilt from its config), any other (a KerasHub
   backbone or task model, a functional subclass) by ``type(model).from_config(model.get_config())``, so
   it keeps its class; every weight is copied, in order (the same architecture builds them in the same order);
2. in the copy, each container's list loses the removed sublayers (``del``, which also untracks them:
   their weights leave the model);
3. the copy is *verified* on a probe input: its output must equal the original model's output with the
   removed sublayers' calls replaced by the identity (:func:`skipped_outputs`). A container whose call
   does not follow its list (it loops over a stored count, or indexes the list) fails here, and
   :func:`remove_sublayers` raises a one-line ``ValueError`` saying why.

Config: each slimmed container's ``get_config`` is patched so that an integer entry named like a depth
(``depth``, ``num_layers``, ``num_blocks``, ...) equal to the list's old length gets the new length, and a
list entry of the old length (per-block settings: Swin's ``drop_path`` rates) keeps the kept blocks'
items. Whether the slim model's config then rebuilds it is checked the same way (rebuild, copy the
weights, compare on the probe). When it does not (a KerasHub backbone whose own config, not the
container's, sizes the stages: Swin's ``depths``; or a per-block setting derived from the block's index,
such as Swin's shifted windows), the slim model's ``get_config`` raises a one-line error, so
``model.save(".keras")`` refuses rather than writing a file that would load as another model; its
weights save (``save_weights``) and ``kl.export.for_serving`` exports it, since both read no config.
"""

from __future__ import annotations

import re

import keras
import numpy as np

from keras_lottery import compat, tracing
from keras_lottery.blocks.containers import list_attribute
from keras_lottery.blocks.discovery import container_layer, operations
from keras_lottery.layers import paired_in_order

__all__ = ["SlimConfigError", "probe_input", "remove_sublayers", "skipped_outputs"]

# config keys that count a container's blocks (Swin's "depth", a user's "num_blocks")
_COUNT_KEY = re.compile(r"depth|layers|blocks|count", re.IGNORECASE)


class SlimConfigError(ValueError, NotImplementedError):
    """Raised by the ``get_config`` of a slim model whose config would not rebuild it."""


def probe_input(model, batch=2, length=8, seed=0):
    """Inputs for ``model`` in the structure its call expects: ``batch`` examples, ``length`` for any other
    unknown dimension; floats uniform in [0, 1), integers ones (a valid token id), booleans true."""
    rng = np.random.default_rng(seed)
    values = []
    for tensor in model.inputs:
        shape = [batch if i == 0 and d is None else (length if d is None else d) for i, d in enumerate(tensor.shape)]
        dtype = str(tensor.dtype)
        if "int" in dtype:
            values.append(np.ones(shape, dtype))
        elif dtype == "bool":
            values.append(np.ones(shape, bool))
        else:
            values.append(rng.uniform(size=shape).astype(dtype))
    by_id = {id(t): v for t, v in zip(model.inputs, values)}
    return keras.tree.map_structure(lambda t: by_id[id(t)], model.input)


def _outputs(model, x):
    return [np.asarray(keras.ops.convert_to_numpy(o)) for o in keras.tree.flatten(model(x, training=False))]


def skipped_outputs(model, sublayers, x):
    """``model(x)``'s flat outputs (NumPy) with each of ``sublayers`` returning its first input (``y = x``)."""
    undo = [compat.replace_call(layer, lambda *args, _layer=layer, **kwargs:
                                tracing.first_input(_layer, args, kwargs, tracing.is_array)) for layer in sublayers]
    try:
        return _outputs(model, x)
    finally:
        for restore in reversed(undo):
            restore()


def _same(a, b):
    """Whether two lists of output arrays are equal up to float round-off."""
    return len(a) == len(b) and all(x.shape == y.shape and np.allclose(x, y, rtol=1e-4, atol=1e-5)
                                    for x, y in zip(a, b))


def _walk(model):
    return list(model._flatten_layers(include_self=True, recursive=True))  # noqa: SLF001 - Keras' tracking order


def _copy(model, replay=True):
    """A new model of the same architecture (see the module docstring), every weight copied in order.

    A model that :func:`remove_sublayers` made from a KerasHub-style model (not a plain graph) is rebuilt
    from its class's config, then its containers' lists are cut again as recorded (``replay``): its own
    config may not rebuild it, and removing more blocks from it must still work."""
    cuts = getattr(model, "_kl_cuts", ()) if replay else ()
    if compat.is_graph_model(model):
        copy = compat.clone_graph(model, lambda layer: layer.__class__.from_config(layer.get_config()))
        cuts = ()  # the containers' patched configs already have the cut lists
    else:
        copy = type(model).from_config(type(model).get_config(model))  # the class's, past a refusal
    for index, attribute, positions in cuts:
        _shorten(_walk(copy)[index], attribute, positions)
    sources, targets = model.weights, copy.weights
    shapes = [tuple(w.shape) for w in sources]
    if shapes != [tuple(w.shape) for w in targets]:
        raise ValueError(f"the copy of {model.name!r} built from its config has other weights "
                         f"({len(targets)} variables, not {len(sources)})")
    for source, target in zip(sources, targets):
        target.assign(source.value)
    if cuts:
        object.__setattr__(copy, "_kl_cuts", tuple(cuts))
    return copy


def _counterparts(model, copy):
    """``{id(layer of model): the copy's layer at the same place}``, layers paired in tracking order."""
    pairs = paired_in_order(_walk(model), _walk(copy))
    if pairs is None:
        raise ValueError(f"the copy of {model.name!r} built from its config has other layers")
    return {id(a): b for a, b in pairs}


def _cuts(model, blocks):
    """``[(container, attribute, [positions to delete])]`` in ``model``, one entry per container."""
    cuts = {}
    for block in blocks:
        container = container_layer(model, block)
        sublayer = operations(model, block, [block.add_layer])[0]
        attribute = list_attribute(container, [sublayer])
        if attribute is None:
            raise ValueError(f"{block.name!r} is in no public list of {block.container!r}")
        position = next(i for i, v in enumerate(getattr(container, attribute)) if v is sublayer)
        cuts.setdefault((id(container), attribute), (container, attribute, []))[2].append(position)
    return list(cuts.values())


def _shorten(container, attribute, positions):
    """Delete ``positions`` from the container's list in place (the list its call reads) and patch its
    ``get_config`` (see the module docstring)."""
    items = getattr(container, attribute)
    old = len(items)
    kept = [i for i in range(old) if i not in set(positions)]
    for i in sorted(positions, reverse=True):
        del items[i]  # a TrackedList: untracks the layer, so its weights leave the model
    original = container.get_config

    def get_config():
        config = dict(original())
        for key, value in config.items():
            if isinstance(value, int) and not isinstance(value, bool) and value == old and _COUNT_KEY.search(key):
                config[key] = len(kept)
            elif isinstance(value, (list, tuple)) and len(value) == old:
                config[key] = type(value)(value[i] for i in kept)
        return config

    object.__setattr__(container, "get_config", get_config)  # past Layer.__setattr__'s tracking


def _config_rebuilds(slim, x, expected):
    """Whether ``slim``'s config rebuilds a model computing ``expected`` on ``x`` (its weights copied)."""
    try:
        return _same(_outputs(_copy(slim, replay=False), x), expected)
    except Exception:  # noqa: BLE001 - any failure means: it does not
        return False


def _line(error):
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}"


def _refuse_config(slim, removed):
    message = (f"{slim.name!r} is {type(slim).__name__} without {removed}, removed from a container's list; its "
               f"config would rebuild another model (the container's or the model's config fixes the blocks), so "
               f"it cannot be saved with its config: use save_weights, or kl.export.for_serving.")

    def get_config():
        raise SlimConfigError(message)

    object.__setattr__(slim, "get_config", get_config)


def remove_sublayers(model, blocks):
    """A copy of ``model`` whose containers' lists no longer hold the sublayers of ``blocks`` (all of
    ``kind="sublayer"``), verified to compute ``model`` with them skipped (see the module docstring).

    Raises ``ValueError`` (one line, naming the blocks and the reason) when the copy cannot be made or does
    not compute the skipped model.
    """
    names = [b.name for b in blocks]
    sublayers = [operations(model, b, [b.add_layer])[0] for b in blocks]
    try:
        x = probe_input(model)
        expected = skipped_outputs(model, sublayers, x)
        copy = _copy(model)
        pairs = _counterparts(model, copy)
        walk = {id(layer): i for i, layer in enumerate(_walk(copy))}
        cuts = list(getattr(copy, "_kl_cuts", ()))
        for container, attribute, positions in _cuts(model, blocks):
            cuts.append((walk[id(pairs[id(container)])], attribute, tuple(positions)))
            _shorten(pairs[id(container)], attribute, positions)
        object.__setattr__(copy, "_kl_cuts", tuple(cuts))  # how _copy rebuilds it (a second removal)
    except Exception as error:  # noqa: BLE001 - one line naming the blocks and the reason
        raise ValueError(f"{names} of {model.name!r} could not be removed from their container's list: "
                         f"{_line(error)}") from error
    try:
        actual = _outputs(copy, x)
    except Exception as error:  # noqa: BLE001 - e.g. an IndexError of a call looping over a stored count
        raise ValueError(f"{names} of {model.name!r}: the container's call fails once they are out of its list "
                         f"(it does not follow the list: it loops over a stored count or indexes it), so they "
                         f"cannot be removed: {_line(error)}") from error
    if not _same(actual, expected):
        raise ValueError(f"{names} of {model.name!r}: without them in their container's list, the model does not "
                         f"compute the original with them skipped (y = x); the container's call does not follow "
                         f"its list (it loops over a stored count or indexes it), so they cannot be removed.")
    if not _config_rebuilds(copy, x, actual):
        _refuse_config(copy, names)
    return copy
