"""Flags from hyper-parameter dataclasses (help from the docstring at any indentation), and the
``keras-lottery`` command: the experiments it lists, each experiment's own grouped help."""

import dataclasses
import subprocess
import sys

import pytest
from absl import flags

from keras_lottery import cli, data, experiments, lottery, training
from tests.helpers import REPO, child_env


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


# -- the keras-lottery command ----------------------------------------------------------------------


def test_help_text_groups_flags_by_dataclass_and_module_with_defaults():
    fv = flags.FlagValues()
    cli.define_flags(TwoSpaces, Tabbed, flag_values=fv)
    flags.DEFINE_integer("own", 7, "an experiment's own flag", flag_values=fv)
    foreign = flags.Flag(flags.ArgumentParser(), flags.ArgumentSerializer(), "foreign", "x", "another module's")
    flags.DEFINE_flag(foreign, flag_values=fv, module_name="absl.logging")
    text = cli.help_text("prog run [flags]", "Runs.\n\n    More.", {__name__: "run flags"}, flag_values=fv)
    assert text.startswith("usage: prog run [flags]\n\nRuns.\n\nMore.")
    settings = text.index("Settings (TwoSpaces):\n  --rate=0.5\n      the rate, continued here.\n  --name=x\n")
    assert text.index("Settings (Tabbed):\n  --depth=3\n      how deep. more words.") > settings
    assert "run flags:\n  --own=7\n      an experiment's own flag" in text
    assert "--foreign" not in text
    assert max(len(line) for line in text.splitlines()) <= 100


def test_command_help_lists_every_experiment_in_100_columns(capsys):
    with pytest.raises(SystemExit) as exit_:
        experiments.main(["keras-lottery", "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    listed = [line.split()[0] for line in out.split("Experiments:\n")[1].split("\n\n")[0].splitlines()]
    assert listed == list(experiments.EXPERIMENTS)
    assert {"train", "imp", "layer_lottery", "stability", "export", "robustness"} <= set(listed)
    assert max(len(line) for line in out.splitlines()) <= 100


def test_command_refuses_an_unknown_experiment_in_one_line():
    with pytest.raises(SystemExit) as exit_:
        experiments.main(["keras-lottery", "trian"])
    assert exit_.value.code.startswith("error: unknown experiment 'trian'; keras-lottery --help lists them: train,")
    assert "\n" not in exit_.value.code


@pytest.mark.parametrize("command", [["-m", "keras_lottery", "layer_lottery"], ["-m", "experiments.layer_lottery"]],
                         ids=["python -m keras_lottery", "clone shim"])
def test_experiment_help_shows_its_own_flags_grouped_with_defaults(command):
    result = subprocess.run([sys.executable, *command, "--help"], cwd=REPO, env=child_env(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert out.startswith("usage: keras-lottery layer_lottery [flags]")
    lottery_group = out.index("(LayerLotteryHparams):\n")
    assert out.index("  --criterion=grasp\n") > lottery_group and out.index("  --blocks=1,2,3\n") > lottery_group
    assert "  --model=resnet20\n" in out and "  --nesterov=true\n" in out  # the experiment's own defaults
    assert "Run directory, distribution and emissions:\n  --run_root=runs\n" in out
    assert "--logtostderr" not in out and "--test_srcdir" not in out  # absl's and TensorFlow's stay in --helpfull
    assert max(len(line) for line in out.splitlines()) <= 100
