"""``tf.function``s that read and write given variables, built once per set of variables and reused.

Some bookkeeping runs between training steps (a pruning turn's mask check, the end-of-epoch
re-zeroing of dead weights). Run eagerly, each of its handful of ops per weight costs more in Python
dispatch than in arithmetic; one compiled call does them all. A function closes over its variables, so
it is cached by their identities and dropped once any of them is gone. Tracing (and XLA compiling)
costs more than a one-off call saves, so a caller can give an uncompiled version to run the first
time a set of variables is seen: a function is compiled only for a set used a second time.
"""

import weakref

__all__ = ["for_variables"]

_CACHE = {}  # (tag, variable ids) -> (weak references to the variables, function or None: seen once)


def for_variables(tag, variables, make, first=None):
    """The function ``make()`` returns for ``tag`` and ``variables``, built once and reused.

    ``variables``: the variables the function closes over, in a fixed order; ``make``: a callable
    building the ``tf.function``. A later call with the same tag and the same variable objects returns
    the cached function. ``first``: if given, returned instead the first time these variables are
    seen (the same computation, uncompiled), and ``make()`` is called on the second.
    """
    variables = list(variables)
    key = (tag,) + tuple(id(v) for v in variables)
    cached = _CACHE.get(key)
    if cached is not None and all(ref() is v for ref, v in zip(cached[0], variables)):
        if cached[1] is not None:
            return cached[1]
    else:
        for stale in [k for k, (refs, _) in _CACHE.items() if any(ref() is None for ref in refs)]:
            del _CACHE[stale]
        if first is not None:
            _CACHE[key] = ([weakref.ref(v) for v in variables], None)
            return first
    function = make()
    _CACHE[key] = ([weakref.ref(v) for v in variables], function)
    return function
