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


def test_compact_copy_computes_the_masked_function_and_trains_only_live_weights():
    import numpy as np

    import keras_lottery as kl

    masked = kl.mask(kl.models.get("lenet_300_100", (28, 28, 1), 10, seed=0))
    kl.prune(masked, kl.LayerwiseMagnitude(density=0.2))
    compact = bench_masks.compact_copy(masked)
    x = np.random.default_rng(1).random((4, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(compact.predict(x, verbose=0), masked.predict(x, verbose=0), atol=1e-5)
    alive = sum(int(a.sum()) for a in kl.Mask.from_model(masked).values())
    live = sum(int(np.prod(w.shape)) for w in compact.trainable_weights if w.name == "live")
    assert live == alive


def test_bench_times_the_compact_variant_when_asked():
    per_step, _, zeros_ok = bench_masks.bench("lenet_300_100", rounds=1, steps=2, sparsity=0.8, steps_per_execution=1,
                                              jit_compile=False, with_tfmot=False, with_compact=True)
    assert len(per_step["compact"]) == 1 and zeros_ok
