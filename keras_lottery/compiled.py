"""``tf.function``s that read and write given variables, built once per set of variables and reused.

Some bookkeeping runs between training steps (a pruning turn's mask check, the end-of-epoch
re-zeroing of dead weights). Run eagerly, each of its handful of ops per weight costs more in Python
dispatch than in arithmetic; one compiled call does them all. A function closes over its variables, so
it is cached by their identities and dropped once any of them is gone.
"""

import weakref

__all__ = ["for_variables"]

_CACHE = {}  # (tag, variable ids) -> (weak references to the variables, function)


def for_variables(tag, variables, make):
    """The function ``make()`` returns for ``tag`` and ``variables``, built on the first call for them.

    ``variables``: the variables the function closes over, in a fixed order; ``make``: a callable
    building the ``tf.function``. A later call with the same tag and the same variable objects returns
    the cached function.
    """
    variables = list(variables)
    key = (tag,) + tuple(id(v) for v in variables)
    cached = _CACHE.get(key)
    if cached is not None and all(ref() is v for ref, v in zip(cached[0], variables)):
        return cached[1]
    for stale in [k for k, (refs, _) in _CACHE.items() if any(ref() is None for ref in refs)]:
        del _CACHE[stale]
    function = make()
    _CACHE[key] = ([weakref.ref(v) for v in variables], function)
    return function
