"""The mask benchmark's measuring code runs and checks what it claims (timings are not asserted)."""

import sys

import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.benchmarks import masks


def test_bench_times_every_variant_on_a_correctly_pruned_model():
    per_step, density, zeros_ok = masks.bench("lenet_300_100", rounds=2, steps=2, sparsity=0.8,
                                              steps_per_execution=1, jit_compile=False, with_tfmot=False)
    assert set(per_step) == {"dense", "dense_copy", "masked", "masked_forward", "gradient_unmasked", "sparsity_api",
                             "m_by_n", "api_no_callback"}
    assert all(len(times) == 2 and all(t > 0 for t in times) for times in per_step.values())
    assert abs(density - 0.2) < 1e-3 and zeros_ok


def test_bench_times_only_the_variants_asked_for_and_their_dense_models():
    per_step, _, zeros_ok = masks.bench("lenet_300_100", rounds=1, steps=2, sparsity=0.8, steps_per_execution=1,
                                        jit_compile=False, with_tfmot=False, variants=["m_by_n"])
    assert set(per_step) == {"dense", "m_by_n"} and zeros_ok
    assert masks.selected(["tfmot", "masked"]) == ["dense", "masked", "tfk_dense", "tfmot"]
    assert masks.selected(["keras3_fused"]) == ["keras3_fused", "tfk_dense"]
    assert masks.selected(["keras3_lean", "keras3"]) == ["keras3", "keras3_lean", "tfk_dense"]
    assert "keras3" not in masks.selected(None, with_tfmot=False)
    assert "compact" not in masks.selected(None) and "compact" in masks.selected(None, with_compact=True)


def test_the_gradient_unmasked_diagnostic_lacks_only_the_multiply_that_keeps_dead_weights_zero(mlp, mlp_data):
    x, y = mlp_data
    masked, unmasked = kl.mask(mlp), kl.mask(mlp)
    for model in (masked, unmasked):
        kl.prune(model, kl.LayerwiseMagnitude(density=0.5))
    for layer in kl.masking.masked_layers(unmasked):
        layer.mask_gradient = masks._value_only
    np.testing.assert_array_equal(unmasked.predict(x, verbose=0), masked.predict(x, verbose=0))  # same function
    for model in (masked, unmasked):
        model.compile("adam", "sparse_categorical_crossentropy")
        model.fit(x, y, epochs=2, verbose=0)
    dead_values = [kl.pruning.weights_of(model)["fc1/kernel"][~kl.Mask.from_model(model)["fc1/kernel"]]
                   for model in (masked, unmasked)]
    assert np.all(dead_values[0] == 0) and np.any(dead_values[1] != 0)


def test_paired_ratio_is_the_median_of_round_ratios():
    assert masks.paired_ratio([2.0, 3.0, 10.0], [1.0, 3.0, 4.0]) == 2.0


def test_compact_copy_computes_the_masked_function_and_trains_only_live_weights():
    masked = kl.mask(kl.models.get("lenet_300_100", (28, 28, 1), 10, seed=0))
    kl.prune(masked, kl.LayerwiseMagnitude(density=0.2))
    compact = masks.compact_copy(masked)
    x = np.random.default_rng(1).random((4, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(compact.predict(x, verbose=0), masked.predict(x, verbose=0), atol=1e-5)
    alive = sum(int(a.sum()) for a in kl.Mask.from_model(masked).values())
    live = sum(int(np.prod(w.shape)) for w in compact.trainable_weights if w.name == "live")
    assert live == alive


def test_bench_times_the_compact_variant_when_asked():
    per_step, _, zeros_ok = masks.bench("lenet_300_100", rounds=1, steps=2, sparsity=0.8, steps_per_execution=1,
                                        jit_compile=False, with_tfmot=False, with_compact=True)
    assert len(per_step["compact"]) == 1 and zeros_ok


@pytest.mark.parametrize("arguments, message", [
    (dict(models=["lenet"]), "models accepts"),
    (dict(models=["resnet20"], compact=True), "compact needs"),
    (dict(models=["resnet20"], processes=0), "processes must be >= 1"),
    (dict(models=["resnet20"], input_kind="arrays"), "input_kind accepts"),
    (dict(models=["resnet20"], variants=["api"]), "variants accepts"),
    (dict(models=["resnet20"], variants=[]), "variants accepts"),
    (dict(models=["resnet20"], variants=["compact"]), "pass compact=True"),
    (dict(models=["resnet20"], variants=["tfmot"], tfmot=False), "tfmot=False"),
])
def test_run_rejects_bad_arguments_before_measuring(arguments, message):
    with pytest.raises(ValueError, match=message):
        masks.run(**arguments)


def test_table_pairs_rounds_within_each_process_and_takes_the_median_over_processes():
    def row(dense, masked):
        return dict(model="lenet_300_100", per_step={"dense": dense, "masked": masked}, density=0.2, zeros_ok=True,
                    rounds=2, steps=3)

    # Process 1: masked/dense 2.0 and 1.0 in its rounds (median 1.5); process 2: 1.0 and 1.0.
    lines = masks.table([[row([0.001, 0.002], [0.002, 0.002])], [row([0.004, 0.004], [0.004, 0.004])]],
                        input_kind="numpy", steps_per_execution=5, jit_compile=True)
    assert lines[:3] == [
        "", "| model | batch | processes x rounds x steps | variant | fastest ms/step | median ms/step "
        "| ratio to its dense: median of paired rounds (median of processes; each process) "
        "| mean of processes ± 95% CI |",
        "|---|---|---|---|---|---|---|---|"]
    assert lines[3] == "| lenet_300_100 | 60 | 2 x 2 x 3 | dense | 1.00 | 3.00 | 1 |  |"
    # mean 1.25; half-width t(0.975, 1 dof) 12.706 x stdev 0.354 / sqrt(2) = 3.177
    assert lines[4] == ("| lenet_300_100 | 60 | 2 x 2 x 3 | masked | 2.00 | 3.00 | 1.250 to dense (1.500, 1.000) "
                        "| 1.250 ± 3.177 |")
    assert lines[5:] == ["", "masked density lenet_300_100=0.200; dead weights exactly 0 after training: True; "
                         f"input=numpy, steps_per_execution=5, jit_compile=True, python {sys.version.split()[0]}"]


def test_table_of_one_process_has_no_interval_column():
    row = dict(model="resnet20", per_step={"dense": [0.002], "masked": [0.003]}, density=0.2, zeros_ok=True,
               rounds=1, steps=1)
    lines = masks.table([[row]])
    assert lines[2] == "|---|---|---|---|---|---|---|"
    assert lines[4] == "| resnet20 | 128 | 1 x 1 x 1 | masked | 3.00 | 3.00 | 1.500 to dense |"


def test_measure_in_a_fresh_process_returns_its_rows(capfd):
    (rows,) = masks.measure_in_subprocesses(1, models=["lenet_300_100"], rounds=1, steps=1, tfmot=False)
    assert [(r["model"], sorted(r["per_step"]), r["rounds"], r["steps"], r["zeros_ok"]) for r in rows] == [
        ("lenet_300_100", ["api_no_callback", "dense", "dense_copy", "gradient_unmasked", "m_by_n", "masked",
                           "masked_forward", "sparsity_api"], 1, 1, True)]
    assert "lenet_300_100: dense " in capfd.readouterr().out  # the child's progress line reaches our stdout
