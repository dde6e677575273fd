"""L2 distances to the dense network, and the replicated rewinding-study tables."""

import math
import os
import statistics

import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery import files, runs, spread, training
from keras_lottery.lottery import distance, imp, rewinding_study


@pytest.fixture(scope="module")
def imp_runs(tmp_path_factory, build, make_datasets, adam, pruning_hparams):
    """``{(k label, seed): directory}``: tiny IMP runs at k = 0 and k = 4 for two model seeds."""
    root = tmp_path_factory.mktemp("rewinding")
    out = {}
    for seed in (0, 1):
        for label, rewind in (("0", "0"), ("4", "4it")):
            directory = str(root / f"imp_k{label}_s{seed}")
            imp.run(directory, build, make_datasets(), adam,
                    pruning_hparams(rewind=rewind, controls="random", control_levels="2"), model_seed=seed, log=None)
            out[(label, seed)] = directory
    return out


def test_distance_of_a_model_to_itself_is_zero_and_to_a_shifted_one_exact(build):
    first = kl.mask(build(0))
    second = kl.mask(build(0))
    assert distance.weight_distance(first, second)[0] == 0.0
    layer = kl.masking.masked_layers(second)[0]
    (path, variable), = list(layer.prunable_variables().items())[:1]
    variable.assign(variable.value + 0.5)
    dist, norm = distance.weight_distance(second, first)
    assert dist == pytest.approx(0.5 * math.sqrt(np.prod(variable.shape)), rel=1e-6)
    expected_norm = math.sqrt(sum(float(np.sum(np.square(v.astype(np.float64))))
                                  for v in kl.pruning.weights_of(first).values()))
    assert norm == pytest.approx(expected_norm, rel=1e-9)


def test_distance_counts_pruned_weights_as_zero(build):
    dense = kl.mask(build(0))
    pruned = kl.mask(build(0))
    kl.prune(pruned, kl.GlobalMagnitude(density=0.5, keep_units=False))
    dead = sum(float(np.sum(np.square(w[~m])))
               for (w, m) in ((kl.pruning.weights_of(dense)[p], alive) for p, alive in kl.Mask.from_model(pruned).items()))
    assert distance.weight_distance(pruned, dense)[0] == pytest.approx(math.sqrt(dead), rel=1e-5)


def test_models_of_different_architectures_are_refused(build):
    import keras

    other = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(4, name="only")])
    with pytest.raises(ValueError, match="different prunable weights"):
        distance.weight_distance(kl.mask(build(0)), kl.mask(other))


def test_distances_to_dense_of_an_imp_run(imp_runs):
    directory = imp_runs[("0", 0)]
    rows = distance.distances_to_dense(directory)
    assert [(r["level"], r["kind"]) for r in rows] == [(0, "ticket"), (1, "ticket"), (2, "ticket"), (2, "random")]
    assert rows[0]["l2_to_dense"] == 0.0
    dense = training.load_final_model(runs.level_dir(directory, 0))
    level2 = training.load_final_model(runs.level_dir(directory, 2))
    dist, norm = distance.weight_distance(level2, dense)
    assert rows[2]["l2_to_dense"] == pytest.approx(dist)
    assert rows[2]["relative_l2_to_dense"] == pytest.approx(dist / norm)
    assert all(r["l2_to_dense"] > 0 for r in rows[1:])


def test_distances_need_a_finished_dense_network(tmp_path):
    with pytest.raises(ValueError, match="no finished level 0"):
        distance.distances_to_dense(str(tmp_path))


def _stability_results(path, rows):
    os.makedirs(path)
    files.write_csv(os.path.join(path, runs.RESULTS), rows)
    return str(path)


def test_summary_folds_replicates_into_means_and_paired_differences(imp_runs, tmp_path):
    dense_rows = {0: [{"k": 0, "density": 1.0, "train_instability": 0.10, "test_instability": 0.08,
                       "train_error_end": 0.1, "test_error_end": 0.2},
                      {"k": 4, "density": 1.0, "train_instability": 0.01, "test_instability": 0.02,
                       "train_error_end": 0.1, "test_error_end": 0.2}],
                  1: [{"k": 0, "density": 1.0, "train_instability": 0.20, "test_instability": 0.12,
                       "train_error_end": 0.1, "test_error_end": 0.2}]}
    replicates = [rewinding_study.Replicate(
        seed=seed, dense_stability=_stability_results(tmp_path / f"dense_{seed}", dense_rows[seed]),
        imp={label: imp_runs[(label, seed)] for label in ("0", "4")},
        subnetwork_stability={("4", 2): _stability_results(tmp_path / f"sub_{seed}", [
            {"k": 4, "density": 0.25, "train_instability": 0.03 * (seed + 1), "test_instability": 0.01,
             "train_error_end": 0.1, "test_error_end": 0.2}])}) for seed in (0, 1)]
    replicates.append(rewinding_study.Replicate(seed=2, dense_stability=str(tmp_path / "never_ran")))
    summary = rewinding_study.summarize(replicates)

    assert summary["T"] == 12
    k0, k4 = summary["dense_instability"]
    assert (k0["k"], k0["replicates"], k4["replicates"]) == (0, 2, 1)
    assert k0["train_instability_pp"] == "15.00 ± 7.07" and k0["k_percent_of_T"] == 0.0
    assert k4["test_instability_pp"] == "2.00" and k4["k_percent_of_T"] == pytest.approx(100 * 4 / 12)
    (sub,) = summary["subnetwork_instability"]
    assert (sub["k"], sub["level"], sub["replicates"], sub["train_instability_pp"]) == ("4", 2, 2, "4.50 ± 2.12")

    records = {(label, seed): {(r["level"], r["kind"]): r for r in imp.results(imp_runs[(label, seed)])}
               for (label, seed) in imp_runs}
    level2 = next(r for r in summary["imp_accuracy"] if r["level"] == 2 and r["kind"] == "ticket")
    ticket_minus_random = [100 * (records[("4", s)][(2, "ticket")]["test_accuracy"]
                                  - records[("4", s)][(2, "random")]["test_accuracy"]) for s in (0, 1)]
    assert level2["k=4: ticket minus random (pp)"] == (
        f"{statistics.fmean(ticket_minus_random):+.2f} ± {statistics.stdev(ticket_minus_random):.2f} "
        + spread.interval_text(ticket_minus_random))
    early_minus_zero = [100 * (records[("4", s)][(2, "ticket")]["test_accuracy"]
                               - records[("0", s)][(2, "ticket")]["test_accuracy"]) for s in (0, 1)]
    assert level2["k=4 minus k=0 (pp)"].startswith(f"{statistics.fmean(early_minus_zero):+.2f}")
    assert {(r["k"], r["level"], r["kind"]) for r in summary["distances"]} == {
        (k, level, kind) for k in ("0", "4") for level, kind in ((1, "ticket"), (2, "ticket"), (2, "random"))}
    assert all(r["replicates"] == 2 for r in summary["distances"])
    (closer,) = [r for r in summary["distance_differences"] if (r["level"], r["kind"]) == (2, "ticket")]
    later = {s: distance.distances_to_dense(imp_runs[("4", s)]) for s in (0, 1)}
    first = {s: distance.distances_to_dense(imp_runs[("0", s)]) for s in (0, 1)}
    differences = [next(r for r in later[s] if (r["level"], r["kind"]) == (2, "ticket"))["relative_l2_to_dense"]
                   - next(r for r in first[s] if (r["level"], r["kind"]) == (2, "ticket"))["relative_l2_to_dense"]
                   for s in (0, 1)]
    assert closer["k=4 minus k=0"].startswith(f"{statistics.fmean(differences):+.2f} ± ")
    assert closer["k=4 minus k=0"].endswith(f"{spread.replicates_above(differences)}/2")

    text = rewinding_study.write(summary, str(tmp_path / "out"))
    assert "15.00 ± 7.07" in text
    for name in ("dense_instability.csv", "imp_accuracy.csv", "subnetwork_instability.csv", "distances.csv",
                 "distance_differences.csv", "per_replicate.csv", "summary.md", "instability_vs_k.png", "accuracy_vs_density.png"):
        assert os.path.getsize(tmp_path / "out" / name) > 0


def test_summary_of_nothing_is_empty_tables(tmp_path):
    summary = rewinding_study.summarize([rewinding_study.Replicate(seed=0, dense_stability=str(tmp_path / "x"))])
    assert summary["dense_instability"] == [] and summary["imp_accuracy"] == [] and summary["T"] is None
    assert "no finished runs yet" in rewinding_study.write(summary, str(tmp_path / "out"))
