"""The layer-ticket benchmark parses its plan, checks model names and prints its tables."""

import pytest

import keras_lottery as kl
from keras_lottery.benchmarks import blocks


def test_parse_plan():
    assert blocks.parse_plan("32:1,3,4;56:3,5,12") == [(32, [1, 3, 4]), (56, [3, 5, 12])]
    assert blocks.parse_plan("") == [] and blocks.parse_plan("8:1;") == [(8, [1])]
    for bad in ("32", "32:a", "32:1:2"):
        with pytest.raises(ValueError, match="plan must look like"):
            blocks.parse_plan(bad)


def test_unknown_overhead_model_is_rejected_before_anything_runs():
    printed = []
    with pytest.raises(ValueError, match="Unknown model 'vgg16'"):
        blocks.run(plan="8:1", overhead_models=["resnet110", "vgg16"], print_fn=printed.append)
    assert printed == []


def test_run_prints_a_row_per_ticket_and_returns_it():
    printed = []
    results = blocks.run(plan="8:1", overhead_models=[], batch_size=4, score_batches=1, rounds=1, steps_per_round=1,
                         warmup=1, print_fn=printed.append)
    (row,) = results["speed"]
    assert results["overhead"] == [] and row["model"] == "ResNet-8" and row["p"] == 1 and len(row["removed"]) == 1
    dense = kl.models.resnet_cifar(8, seed=0)
    ticket = kl.blocks.remove(dense, row["removed"])
    assert row["flops_ratio"] == pytest.approx(kl.metrics.flops(dense) / kl.metrics.flops(ticket))
    assert row["speedup"] == pytest.approx(row["dense_step_s"] / row["ticket_step_s"])
    assert printed[0].startswith("# bench_blocks on ") and printed[2] == "|---|---|---|---|---|---|---|---|---|"
    assert len(printed) == 4 and printed[3].startswith("| ResNet-8 | 1 | ")


def test_application_cost_times_each_step_and_removes_three_blocks():
    with pytest.raises(ValueError, match="Unknown keras.applications model 'ResNet9'"):
        blocks.validate_applications(["MobileNetV3Small", "ResNet9"])
    row = blocks.application_cost("MobileNetV3Small", size=32, batch_size=2, criterion="l1")
    assert row["model"] == "MobileNetV3Small" and (row["blocks"], row["removable"]) == (6, 6)
    assert row["total_s"] == pytest.approx(row["find_s"] + row["score_s"] + row["remove_s"])
    assert all(row[k] > 0 for k in ("build_s", "find_s", "score_s", "remove_s"))
    assert 0 < row["ticket_gflops"] < row["gflops"]
