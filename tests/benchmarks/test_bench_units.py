"""The units benchmark: layer and filter tickets at matched FLOPs, timed in training and as SavedModels."""

import pytest

import keras_lottery as kl
from keras_lottery.benchmarks import units


def test_matched_models_remove_blocks_and_channels_to_the_same_flops():
    batches = [units._synthetic(4, 1, (16, 16, 3))]
    models = units.matched_models(14, [1], batches, criterion="random", shape=(16, 16, 3), min_fraction=0.25)
    assert list(models) == ["dense", "layers p=1", "filters p=1"]
    dense, layers, slim = models.values()
    assert len(kl.blocks.find_blocks(layers)) == len(kl.blocks.find_blocks(dense)) - 1
    assert len(kl.blocks.find_blocks(slim)) == len(kl.blocks.find_blocks(dense))  # filters keep every block
    saved = {name: kl.metrics.flops(dense) - kl.metrics.flops(m) for name, m in models.items()}
    # first-order channel costs: neighbouring removals interact, so the match is close, not exact
    assert saved["filters p=1"] == pytest.approx(saved["layers p=1"], rel=0.15)
    groups = {g.name: g.size for g in kl.filters.find_groups(dense).prunable}
    slim_groups = {g.name: g.size for g in kl.filters.find_groups(slim).prunable}
    assert all(slim_groups[n] >= max(1, -(-groups[n] // 4)) for n in groups)  # min_fraction kept per group


def test_matched_models_give_one_filter_ticket_per_channel_multiple():
    batches = [units._synthetic(4, 1, (16, 16, 3))]
    models = units.matched_models(14, [1], batches, criterion="random", shape=(16, 16, 3), min_fraction=0.25,
                                  channel_multiples=(1, 4))
    assert list(models) == ["dense", "layers p=1", "filters p=1", "filters/4 p=1"]
    assert all(g.size % 4 == 0 for g in kl.filters.find_groups(models["filters/4 p=1"]).prunable)


@pytest.mark.slow  # exports three SavedModels and trains three models
def test_run_prints_one_row_per_model():
    printed = []
    rows = units.run(depth=8, ps=(1,), criterion="random", batch_size=4, latency_batches=(1,), score_batches=1,
                     rounds=1, steps_per_round=1, warmup=1, print_fn=printed.append)
    assert [r["model"] for r in rows] == ["dense", "layers p=1", "filters p=1"]
    assert rows[0]["flops_ratio"] == 1.0 and all(r["serving_b1_s"] > 0 for r in rows)
    assert rows[1]["train_speedup"] == pytest.approx(rows[0]["train_step_s"] / rows[1]["train_step_s"])
    assert printed[0].startswith("# bench_units on ") and len(printed) == 5
