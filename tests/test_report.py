"""The terminal tables: the columns a person reads first, replicates as mean ± SD, within 100 columns."""

import itertools

from keras_lottery import report
from keras_lottery.lottery.layer_lottery import TABLE_COLUMNS


def _lottery_rows():
    rows = []
    for unit, criterion, p, r in itertools.product(("layers", "filters"), ("grasp", "snip"), (1, 2, 3), range(3)):
        diff = {0: 0.5, 1: -0.5, 2: 1.0}[r] + p / 10
        rows.append({"replicate": r, "unit": unit, "criterion": criterion, "p": p, "removed": "stage1_block0,stage2_block1",
                     "accuracy_diff_pp": diff, "ticket_accuracy": 0.85 + diff / 100, "dense_accuracy": 0.85,
                     "flops_down_pct": 11.7 * p, "params_down_pct": 5.0 * p, "memory_down_pct": 3.1 * p,
                     "epoch_time_s": 10.0, "dense_epoch_time_s": 12.9, "speedup": 1.29, "energy_kwh": 1e-4,
                     "energy_down_pct": 20.0, "emissions_kg": 4e-5, "emissions_down_pct": 20.5, "winning": diff >= 0})
    rows.append({"replicate": "mean", "unit": "layers", "criterion": "grasp", "p": 1, "accuracy_diff_pp": 99.0})
    return rows


def test_the_demo_table_fits_in_100_columns_with_mean_and_sd_over_replicates():
    rows = _lottery_rows()
    assert len(report.text_table(rows, [(c, lambda r, c=c: r.get(c, "")) for c in TABLE_COLUMNS], width=10**4)
               .splitlines()[0]) > 150  # every column would not fit
    text = report.layer_lottery_table(rows)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert lines[0].split() == ["ticket", "Δ", "acc", "(pp)", "acc", "%", "FLOPs", "saved", "speed-up", "CO2", "saved",
                                "wins"]
    assert len(lines) == 2 + 12  # header, rule, one line per unit x criterion x p (the "mean" rows are not re-averaged)
    grasp1 = next(line for line in lines if line.startswith("grasp p=1 "))
    # replicates 0.6, -0.4, 1.1: mean +0.43, SD 0.76; two of three win
    assert "+0.43 ± 0.76" in grasp1 and "11.7%" in grasp1 and "1.29x" in grasp1 and "20.5%" in grasp1
    assert grasp1.rstrip().endswith("2/3")
    assert any(line.startswith("snip p=3 filters") for line in lines)


def test_one_replicate_shows_plain_values_and_untracked_co2_is_left_out():
    rows = [dict(row) for row in _lottery_rows()[:9:3]]  # replicate 0 of p = 1, 2, 3
    for row in rows:
        del row["emissions_down_pct"]
    text = report.layer_lottery_table(rows)
    assert "±" not in text and "CO2" not in text


def test_columns_that_do_not_fit_are_left_out_and_counted():
    rows = [{"a": "x" * 30, "b": "y" * 30, "c": "z" * 30}]
    text = report.text_table(rows, [(k, lambda r, k=k: r[k]) for k in "abc"], width=70)
    assert max(len(line) for line in text.splitlines()) <= 70
    assert "c" not in text.splitlines()[0] and text.splitlines()[-1] == "(1 more column(s) in the table files)"


def test_imp_and_robustness_tables_fit():
    imp_rows = [{"level": level, "kind": kind, "density": 0.8 ** level, "test_accuracy": 0.87, "val_accuracy": 0.86,
                 "best_val_accuracy": 0.88, "best_val_iteration": 500, "train_time_s": 12.3456,
                 "emissions_energy_kwh": 1e-5, "emissions_emissions_kg": 3.7e-6}
                for level in range(16) for kind in ("ticket", "reinit", "random")]
    text = report.imp_table(imp_rows)
    assert max(len(line) for line in text.splitlines()) <= 100
    assert text.splitlines()[2].split() == ["0", "ticket", "100.00", "87.00", "88.00", "12.3", "0.0037"]
    summary = [{"group": "dense", "n": 3, "density": 1.0, "clean": 0.8475, "clean_std": 0.0072, "d_clean": 0.0,
                "d_clean_std": 0.0, "mean_corruption": 0.61, "mean_corruption_std": 0.01, "d_mean_corruption": 0.0,
                "mce": 100.0, "fog": -1.0, "contrast": -2.0, "pgd@0.1": 0.1, "d_pgd@0.1": 0.0},
               {"group": "ticket_grasp_p3", "n": 3, "density": 0.65, "clean": 0.85, "clean_std": 0.01, "d_clean": 0.27,
                "d_clean_std": 1.08, "mean_corruption": 0.6, "d_mean_corruption": -1.2, "mce": 101.5}]
    text = report.robustness_table(summary)
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "84.75 ± 0.72" in text and "+0.27 ± 1.08" in text and "101.5" in text
