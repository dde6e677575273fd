"""Layer tickets against filter tickets, paired by replicate."""

import pytest

from keras_lottery.lottery.unit_comparison import unit_differences


def _row(r, unit, criterion, p, diff):
    return {"replicate": r, "unit": unit, "criterion": criterion, "p": p, "accuracy_diff_pp": diff}


def test_differences_are_paired_by_replicate_and_pooled_over_p():
    rows = [_row(r, "layers", "snip", p, 1.0 + r + p) for r in range(3) for p in (1, 2)]
    rows += [_row(r, "filters", "snip", p, 2.0 * r) for r in range(3) for p in (1, 2)]
    rows += [_row(r, "layers", "grasp", 1, 0.5) for r in range(2)]  # no filter ticket: no pair
    rows.append({**_row("mean", "layers", "snip", 1, 99.0)})  # replicate means are skipped
    out = {(r["criterion"], r["p"]): r for r in unit_differences(rows)}
    assert set(out) == {("snip", 1), ("snip", 2), ("snip", "all")}
    one = out[("snip", 1)]  # differences 1 + 1 - 0, 1 + 2 - 2, 1 + 3 - 4 = 2, 1, 0
    assert one["pairs"] == 3 and one["layers_minus_filters_pp"] == pytest.approx(1.0)
    assert one["sd_pp"] == pytest.approx(1.0) and one["se_pp"] == pytest.approx(0.58)
    assert one["layers_ahead"] == "2/3"
    assert one["layers_vs_dense_pp"] == pytest.approx(3.0) and one["filters_vs_dense_pp"] == pytest.approx(2.0)
    pooled = out[("snip", "all")]  # p = 2 adds 3, 2, 1
    assert pooled["pairs"] == 6 and pooled["layers_minus_filters_pp"] == pytest.approx(1.5)
    assert pooled["layers_ahead"] == "5/6"


def test_a_single_pair_has_no_spread_and_no_pair_is_an_error():
    (single, pooled) = unit_differences([_row(0, "layers", "snip", 1, 0.4), _row(0, "filters", "snip", 1, -0.1)])
    assert single["layers_minus_filters_pp"] == pytest.approx(0.5) and single["sd_pp"] is None
    with pytest.raises(ValueError, match="needs rows of both units"):
        unit_differences([_row(0, "layers", "snip", 1, 0.4)])
