"""Flags from hyper-parameter dataclasses: help from the docstring at any indentation."""

import dataclasses

import pytest
from absl import flags

from keras_lottery import cli, data, lottery, training


@dataclasses.dataclass(frozen=True)
class TwoSpaces:
    """Settings.

  Attributes:
    rate: the rate,
      continued here.
    name (str): a name.

  Raises:
    nothing: not a field.
    """

    rate: float = 0.5
    name: str = "x"


@dataclasses.dataclass(frozen=True)
class Tabbed:
    """Settings.

    Attributes:
            depth: how deep.
                more words.
    """

    depth: int = 3


@dataclasses.dataclass(frozen=True)
class Undocumented:
    """Settings without an Attributes section."""

    count: int = 1


def test_help_is_read_at_any_indentation_and_stops_at_the_next_section():
    assert cli.field_help(TwoSpaces) == {"rate": "the rate, continued here.", "name": "a name."}
    assert cli.field_help(Tabbed) == {"depth": "how deep. more words."}


def test_flags_get_defaults_types_and_help():
    fv = flags.FlagValues()
    cli.define_flags(TwoSpaces, flag_values=fv)
    fv(["prog", "--rate=0.25"])
    assert cli.from_flags(TwoSpaces, fv) == TwoSpaces(rate=0.25, name="x")
    assert fv["rate"].help == "the rate, continued here."


def test_a_field_without_help_is_refused():
    with pytest.raises(ValueError, match="Undocumented.count has no entry"):
        cli.define_flags(Undocumented, flag_values=flags.FlagValues())


@pytest.mark.parametrize("cls", [data.DatasetHparams, training.ModelHparams, training.TrainingHparams,
                                 lottery.PruningHparams])
def test_every_hyper_parameter_of_the_package_has_flag_help(cls):
    docs = cli.field_help(cls)
    assert sorted(docs) == sorted(f.name for f in dataclasses.fields(cls))
    assert all(len(text) > 5 for text in docs.values())
