import numpy as np
import pytest

from dfplanner.errors import DfplannerError
from dfplanner.diffusion.scheduling import build_schedule, pyramid, rolling_ladder, rolling_transition, validate_schedule


@pytest.mark.parametrize("name", ["pyramid", "full_sequence", "autoregressive", "trapezoid"])
def test_named_schedules_are_valid(name):
    matrix = build_schedule(name, horizon=7, steps=5, num_levels=1000)
    assert np.all(matrix[0] == 1000)
    validate_schedule(matrix, 7, 1000)


def test_pyramid_shapes():
    full = build_schedule("full_sequence", 4, 5, 1000)
    assert full.shape == (6, 4) and np.all(full == full[:, :1])
    pyramid = build_schedule("pyramid", 4, 5, 1000)
    assert pyramid.shape == (9, 4)
    # near tokens are never noisier than far ones: causal uncertainty
    assert np.all(np.diff(pyramid, axis=1) >= 0)
    auto = build_schedule("autoregressive", 3, 2, 10)
    # token t+1 starts only once token t is clean
    for t in range(2):
        first_clean = np.argmax(auto[:, t] == 0)
        assert np.all(auto[: first_clean, t + 1] == 10)


def test_trapezoid_cleans_both_ends_first():
    matrix = build_schedule("trapezoid", 5, 3, 30)
    middle_clean = np.argmax(matrix[:, 2] == 0)
    assert matrix[middle_clean - 1, 0] == 0 and matrix[middle_clean - 1, 4] == 0


@pytest.mark.parametrize(
    "matrix, message",
    [
        (np.zeros((3, 4)), "shape"),
        (np.array([[10, 10, 10], [5, 11, 5], [0, 0, 0]]), "lie in"),
        (np.array([[10, 10, 10], [5, 5, 5], [6, 0, 0], [0, 0, 0]]), "column 0 increases from row 1"),
        (np.array([[10, 10, 10], [5, 5, 5], [0, 1, 0]]), "last row"),
        (np.array([[10, 10, 10], [np.nan, 0, 0], [0, 0, 0]]), "finite"),
        (np.array([[10, 10, 10], [2.5, 0, 0], [0, 0, 0]]), "integer"),
    ],
)
def test_invalid_matrices_are_rejected(matrix, message):
    with pytest.raises(DfplannerError, match=message):
        validate_schedule(matrix, 3, 10)


def test_unknown_schedule_name():
    with pytest.raises(DfplannerError, match="unknown schedule"):
        build_schedule("spiral", 3, 3, 10)


@pytest.mark.parametrize("steps,uncertainty", [(10, 1.0), (3, 0.25), (10, 0.5), (4, 3.0)])
@pytest.mark.parametrize("shift", [1, 2])
def test_rolling_transition_brings_a_shifted_plan_back_to_the_ladder(steps, uncertainty, shift):
    levels = 1000
    matrix = pyramid(12, steps, levels, uncertainty)
    warm_up, ladder = rolling_ladder(matrix)
    np.testing.assert_array_equal(warm_up, matrix[: len(warm_up)])
    assert warm_up[-1, 0] == 0 and np.all(warm_up[:-1, 0] > 0)
    rows = rolling_transition(ladder, ladder, shift, steps, levels)
    np.testing.assert_array_equal(rows[0], np.r_[ladder[shift:], [levels] * shift])
    np.testing.assert_array_equal(rows[-1], ladder)
    drops = -np.diff(rows, axis=0)
    assert drops.min() >= 0 and drops.max() <= np.ceil(levels / steps)


def test_rolling_on_a_unit_pyramid_costs_one_row_per_token():
    ladder = rolling_ladder(pyramid(20, 10, 1000, 1.0))[1]
    assert len(rolling_transition(ladder, ladder, 1, 10, 1000)) == 2


def test_rolling_transition_rejects_a_falling_ladder():
    ladder = rolling_ladder(build_schedule("trapezoid", 8, 4, 1000))[1]
    with pytest.raises(DfplannerError, match="ladder"):
        rolling_transition(ladder, ladder, 1, 4, 1000)
