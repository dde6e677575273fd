"""``MirroredStrategy`` on a CPU split into 2 logical devices (in a fresh process: see mirrored_checks.py)."""

import os

import pytest

from tests.helpers import run_script

# One fresh process splits the CPU and runs every check (about 2 minutes): the module is slow.
pytestmark = pytest.mark.slow

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def checks():
    return run_script(os.path.join(HERE, "mirrored_checks.py"))


def test_two_replicas_imp_level_matches_one_device(checks):
    assert checks["replicas"] == 2
    imp = checks["imp"]
    assert imp["density"][0] == imp["density"][1]
    assert imp["differ"] <= 0.002 * imp["size"], f"{imp['differ']} of {imp['size']} mask entries differ (ties only)"
    assert imp["kinds"] == [[0, "ticket"], [1, "ticket"], [1, "reinit"], [1, "random"]]  # controls ran in the scope
    assert abs(checks["imp_accuracy"]["default"] - checks["imp_accuracy"]["mirrored"]) <= 2 / 64  # 64 test examples


def test_masked_weights_stay_exactly_zero_on_every_replica(checks):
    assert checks["imp_dead_max"] == 0.0
    for name in ("mirrored", "default_xla"):
        assert checks["mixed"][name]["dead_max"] == 0.0


def test_mixed_precision_scales_the_loss_and_computes_in_float16(checks):
    reference = checks["mixed"]["float32"]  # the same masked model and 4 steps, float32 on one device
    assert reference["optimizer"] != "LossScaleOptimizer" and reference["compute_dtype"] == "float32"
    for name in ("mirrored", "default_xla"):
        mixed = checks["mixed"][name]
        assert mixed["optimizer"] == "LossScaleOptimizer"
        assert (mixed["compute_dtype"], mixed["variable_dtype"]) == ("float16", "float32")
        # float16 rounding only: about 5e-4 apart here, while 4 steps move the loss by about 0.2
        assert abs(mixed["test_loss"] - reference["test_loss"]) <= 0.005, (name, mixed["test_loss"], reference)
    assert checks["mixed"]["default_xla"]["jit"] is True
    assert checks["policy_after"] == "float32"  # the policy is scoped, not leaked


def test_jit_compile_with_several_replicas_is_refused_with_the_alternatives(checks):
    assert "--jit_compile" in checks["jit_mirrored_error"] and "--strategy=default" in checks["jit_mirrored_error"]


def test_stability_and_blocks_inside_the_scope(checks):
    assert checks["stability_same_seed"] == [0.0, 0.0]  # equal data seeds: identical copies on two replicas
    blocks = checks["blocks"]
    assert blocks["relative_diff"]["l1"] <= 1e-6
    assert blocks["same_removed"] and blocks["smaller"]
    assert blocks["outputs_max_diff"] <= 1e-5


def test_grasp_scores_inside_the_scope_match_one_device(checks):
    assert checks["blocks"]["relative_diff"]["grasp"] <= 1e-3
