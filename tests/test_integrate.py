import numpy as np
import pytest

from edgelaw.measure.integrate import counter_delta, integral


def test_integral_of_a_line_over_a_window_between_samples():
    t = np.arange(0, 10.0, 0.1)
    y = 2 * t
    assert integral(t, y, 1.05, 3.05) == pytest.approx(3.05**2 - 1.05**2)


def test_integral_ignores_missing_samples_and_empty_windows():
    t = np.array([0, 1, 2, 3.0])
    y = np.array([1, np.nan, 1, 1.0])
    assert integral(t, y, 0, 3) == pytest.approx(3.0)
    assert integral(t, y, 2, 2) == 0.0


def test_counter_delta_interpolates_between_samples():
    t = np.array([0, 1, 2.0])
    c = np.array([10, 20, 40.0])
    assert counter_delta(t, c, 0.5, 1.5) == pytest.approx(30 - 15)
