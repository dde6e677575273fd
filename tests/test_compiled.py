"""keras_lottery.compiled: functions cached by the variables they close over."""

import gc

import keras

from keras_lottery import compiled


def test_a_function_is_built_once_per_set_of_variables_and_dropped_with_them():
    built = []

    def make(tag):
        def build():
            built.append(tag)
            return lambda: tag
        return build

    a, b = keras.Variable(1.0), keras.Variable(2.0)
    first = compiled.for_variables("t", [a, b], make("ab"))
    assert compiled.for_variables("t", [a, b], make("again")) is first and built == ["ab"]
    assert compiled.for_variables("t", [b, a], make("ba"))() == "ba"  # the order is part of the key
    assert compiled.for_variables("other", [a, b], make("other"))() == "other"  # and so is the tag
    c = keras.Variable(3.0)
    compiled.for_variables("t", [a, c], make("ac"))
    key = ("t", id(a), id(c))
    assert key in compiled._CACHE
    del c
    gc.collect()
    compiled.for_variables("t", [a, b], make("unused"))  # a hit: nothing is purged or built
    compiled.for_variables("t", [b], make("b"))  # a miss purges the entries whose variables are gone
    assert key not in compiled._CACHE and built == ["ab", "ba", "other", "ac", "b"]


def test_with_a_first_version_the_function_is_built_only_for_variables_seen_twice():
    built = []

    def make():
        built.append("compiled")
        return lambda: "compiled"

    a, b = keras.Variable(1.0), keras.Variable(2.0)
    assert compiled.for_variables("once", [a, b], make, first=lambda: "eager")() == "eager" and built == []
    assert compiled.for_variables("once", [a, b], make, first=lambda: "eager")() == "compiled"
    assert compiled.for_variables("once", [a, b], make, first=lambda: "eager")() == "compiled" and built == ["compiled"]
