"""The criterion registry: criterion names to functions, and the check that a criterion got data.

A criterion is called as ``fn(model, blocks, data, *, loss, seed, **options)`` (see the package docstring).
"""

from __future__ import annotations

_REGISTRY = {}


def register(name, fn=None, *, overwrite=False):
    """Register ``fn`` as criterion ``name``; usable as ``@register("name")`` too. Returns ``fn``.

    Raises ``ValueError`` if ``name`` is taken (unless ``overwrite``), ``TypeError`` if ``fn`` is not callable.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"A criterion name must be a non-empty str, got {name!r}.")

    def decorator(func):
        if not callable(func):
            raise TypeError(f"Criterion {name!r} must be callable, got {type(func).__name__!r}.")
        if name in _REGISTRY and not overwrite:
            raise ValueError(f"Criterion {name!r} is already registered; pass overwrite=True to replace it.")
        _REGISTRY[name] = func
        return func

    return decorator if fn is None else decorator(fn)


def unregister(name):
    """Remove criterion ``name`` from the registry."""
    get(name)
    del _REGISTRY[name]


def get(name):
    """The criterion function registered as ``name``."""
    if name not in _REGISTRY:
        raise ValueError(f"Unknown block criterion {name!r}; registered: {names()}.")
    return _REGISTRY[name]


def names():
    """Sorted names of the registered criteria."""
    return sorted(_REGISTRY)


def require_data(data, name):
    if data is None:
        raise ValueError(f"Criterion {name!r} needs data: a tf.data.Dataset of (x, y) batches or an (x, y) tuple.")
    return data
