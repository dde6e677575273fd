"""absl flags generated from hyper-parameter dataclasses, an experiment's own help, and the binaries'
one-line errors.

Each field of a dataclass becomes a flag of the same name, type and default; its help is the
field's entry in the ``Attributes:`` section of the class docstring (Google style). The section is
read with the docstring's own indentation, whatever it is: an entry is a line ``name: text`` at the
section's first indentation level, and more deeply indented lines continue it.

:func:`help_text` is what ``keras-lottery <experiment> --help`` prints: the experiment's flags only
(absl shows only the main module's with ``--helpshort`` and buries them among TensorFlow's with
``--helpfull``), grouped by the dataclass or module that defines them, each with its default.
"""

import dataclasses
import inspect
import re
import sys
import textwrap

from absl import flags

__all__ = ["define_flags", "fail", "field_help", "from_flags", "help_text", "one_line"]

# flag name -> the title of its group (the dataclass that defined it), per FlagValues, in definition order.
_GROUPS = {}

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
            _GROUPS.setdefault(id(fv), {})[field.name] = _group_title(cls)


def _group_title(cls):
    first = inspect.cleandoc(cls.__doc__ or "").split("\n")[0].rstrip(".")
    return f"{first} ({cls.__name__})" if first else cls.__name__


def _flag_entry(flag, width):
    default = flag.default_as_str if flag.default is not None else "(unset)"
    if isinstance(flag.default, bool):
        default = "true" if flag.default else "false"
    elif default.startswith("'") and default.endswith("'"):
        default = default[1:-1] or "''"
    head = f"  --{flag.name}={default}"
    body = textwrap.fill(" ".join((flag.help or "").split()), width=width, initial_indent=" " * 6,
                         subsequent_indent=" " * 6)
    return f"{head}\n{body}" if body.strip() else head


def help_text(usage, description, module_titles, flag_values=None, width=100):
    """An experiment's help: ``usage``, ``description``, then its flags in groups, each with its default.

    Args:
      usage: the first line, e.g. ``"keras-lottery train [flags]"``.
      description: the experiment's docstring (printed dedented).
      module_titles: ``{module name: group title}`` for flags defined directly in modules (the
        experiment's own, the shared ones); flags of dataclasses (:func:`define_flags`) are grouped by
        class. Flags of other modules (absl's, TensorFlow's) are left out; ``--helpfull`` lists them.
      flag_values: the ``FlagValues`` (absl's global ``FLAGS`` by default).
      width: the line width the help texts are wrapped to.
    """
    fv = flags.FLAGS if flag_values is None else flag_values
    groups = {}
    for name, title in _GROUPS.get(id(fv), {}).items():
        if name in fv:
            groups.setdefault(title, []).append(fv[name])
    grouped = {flag.name for members in groups.values() for flag in members}
    for module, members in fv.flags_by_module_dict().items():
        if module not in module_titles:
            continue
        own = [flag for flag in members if flag.name not in grouped]
        if own:
            groups.setdefault(module_titles[module], []).extend(own)
    lines = [f"usage: {usage}", "", inspect.cleandoc(description or "").rstrip(), ""]
    for title, members in groups.items():
        lines.append(f"{title}:")
        lines += [_flag_entry(flag, width) for flag in members]
        lines.append("")
    lines.append("--helpfull lists every flag, TensorFlow's and absl's included.")
    return "\n".join(lines)


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
