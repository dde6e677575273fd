import pytest

from keras_lottery import spread


def test_mean_interval_is_the_student_t_interval_of_the_mean():
    mean, half = spread.mean_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and abs(half - 4.302653 * 1.0 / 3 ** 0.5) < 1e-5  # t(0.975, 2 dof) = 4.3027


def test_mean_interval_widens_with_confidence_and_needs_two_values():
    _, half95 = spread.mean_interval([0.5, 1.5, 1.0, 2.0])
    _, half99 = spread.mean_interval([0.5, 1.5, 1.0, 2.0], confidence=0.99)
    assert half99 > half95 > 0
    with pytest.raises(ValueError, match="at least 2 values"):
        spread.mean_interval([1.0])


def test_replicates_above_counts_strictly_greater_values():
    assert spread.replicates_above([0.3, 0.0, -1.2, 2.0]) == 2
    assert spread.replicates_above([0.3, 0.0, -1.2, 2.0], threshold=-2.0) == 4


def test_interval_text_gives_the_interval_and_the_count_above_zero():
    values = [0.01, 0.02, -0.005]
    mean, half = spread.mean_interval([100 * v for v in values])
    assert spread.interval_text(values, scale=100) == f"[{mean - half:+.2f}, {mean + half:+.2f}] 2/3"
    assert spread.interval_text([0.3, None]) == "" and spread.interval_text([]) == ""
