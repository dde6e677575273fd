"""absl flags generated from hyper-parameter dataclasses, and the binaries' one-line errors.

Each field of a dataclass becomes a flag of the same name, type and default; its help is the
field's entry in the ``Attributes:`` section of the class docstring (Google style). The section is
read with the docstring's own indentation, whatever it is: an entry is a line ``name: text`` at the
section's first indentation level, and more deeply indented lines continue it.
"""

import dataclasses
import inspect
import re
import sys

from absl import flags

__all__ = ["define_flags", "fail", "field_help", "from_flags", "one_line"]

_ENTRY = re.compile(r"^(?P<name>\w+)(?:\s*\([^)]*\))?\s*:\s*(?P<text>.*)$")


def field_help(cls):
    """``{field name: help text}`` from the ``Attributes:`` section of ``cls``'s docstring."""
    lines = inspect.cleandoc(cls.__doc__ or "").splitlines()
    docs, current, entry_indent, in_section = {}, None, None, False
    for line in lines:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if line.strip() == "Attributes:":
            in_section, entry_indent, current = True, None, None
            continue
        if not in_section:
            continue
        if entry_indent is None:
            entry_indent = indent
        if indent < entry_indent or (indent == 0 and entry_indent > 0):
            break  # the section ended (another header at a lower indentation)
        match = _ENTRY.match(line.strip())
        if indent == entry_indent and match:
            current = match.group("name")
            docs[current] = match.group("text").strip()
        elif current and indent > entry_indent:
            docs[current] += " " + line.strip()
    return docs


def define_flags(*hparam_classes, flag_values=None):
    """Declares one absl flag per field of each dataclass, with its default and docstring help.

    Raises ValueError when a field has no ``Attributes:`` entry (its flag would have no help) or a
    flag of that name exists already.
    """
    fv = flags.FLAGS if flag_values is None else flag_values
    for cls in hparam_classes:
        docs = field_help(cls)
        for field in dataclasses.fields(cls):
            if field.name in fv:
                raise ValueError(f"Flag --{field.name} of {cls.__name__} is already defined.")
            if field.name not in docs:
                raise ValueError(f"{cls.__name__}.{field.name} has no entry in the class docstring's Attributes: "
                                 "section, so its flag would have no help.")
            define = {bool: flags.DEFINE_boolean, int: flags.DEFINE_integer, float: flags.DEFINE_float,
                      str: flags.DEFINE_string}[type(field.default)]
            define(field.name, field.default, docs[field.name], flag_values=fv)


def from_flags(cls, flag_values=None):
    """Builds ``cls`` from the parsed flags of the same names."""
    fv = flags.FLAGS if flag_values is None else flag_values
    return cls(**{field.name: fv[field.name].value for field in dataclasses.fields(cls)})


def one_line(error):
    """``error: <message>`` on one line (line breaks of the message become spaces)."""
    text = " ".join(part.strip() for part in str(error).splitlines() if part.strip())
    return f"error: {text or type(error).__name__}"


def fail(error):
    """Exits with :func:`one_line` of ``error`` on stderr and exit status 1."""
    sys.exit(one_line(error))
