"""The mask benchmark's measuring code runs and checks what it claims (timings are not asserted)."""

from experiments import bench_masks


def test_bench_times_every_variant_on_a_correctly_pruned_model():
    per_step, density, zeros_ok = bench_masks.bench("lenet_300_100", rounds=2, steps=2, sparsity=0.8,
                                                    steps_per_execution=1, jit_compile=False, with_tfmot=False)
    assert set(per_step) == {"dense", "dense_copy", "masked", "masked_forward"}
    assert all(len(times) == 2 and all(t > 0 for t in times) for times in per_step.values())
    assert abs(density - 0.2) < 1e-3 and zeros_ok


def test_paired_ratio_is_the_median_of_round_ratios():
    assert bench_masks.paired_ratio([2.0, 3.0, 10.0], [1.0, 3.0, 4.0]) == 2.0
