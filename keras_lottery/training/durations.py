"""Training lengths and points in training, written as "500it", "2ep", "0.05" or "0"."""

import math
import re

_DURATION = re.compile(r"^\s*(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>it|ep)?\s*$")


def to_steps(text, steps_per_epoch, total_steps=None):
    """Converts a duration to a number of iterations.

    ``"500it"`` is 500 iterations, ``"2ep"`` two epochs of ``steps_per_epoch``, a bare number below 1
    (``"0.05"``) a fraction of ``total_steps``, a bare integer a count of iterations, and ``"0"`` zero.
    """
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"Cannot read duration {text!r}: use '<N>it' (iterations), '<N>ep' (epochs), "
                         "a fraction of training such as '0.05', or '0'.")
    value, unit = float(match.group("value")), match.group("unit")
    if unit == "ep":
        return int(round(value * steps_per_epoch))
    if unit == "it":
        if value != int(value):
            raise ValueError(f"Iterations must be whole, got {text!r}.")
        return int(value)
    if 0 < value < 1:
        if total_steps is None:
            raise ValueError(f"A fraction ({text!r}) needs the training length; write '<N>it' or '<N>ep'.")
        return int(math.floor(value * total_steps))
    if value != int(value):
        raise ValueError(f"Cannot read duration {text!r}: a bare number is a fraction (< 1) or whole iterations.")
    return int(value)


def to_step_list(text, steps_per_epoch, total_steps=None):
    """Converts a comma-separated list of durations (``"32000it,48000it"``) to sorted iterations."""
    items = [item for item in str(text).split(",") if item.strip()]
    return sorted(to_steps(item, steps_per_epoch, total_steps) for item in items)
