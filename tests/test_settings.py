import dataclasses

import numpy as np
import pytest

from doodle_engine import DoodleError, decode_settings
from doodle_engine.settings import decide_layout7, encode_settings


@pytest.mark.parametrize("values, era", [
    ([3, 2, 1, 1, 1, 3, 0.9, 0.5, 16], "rf-2021-05"),
    ([3, 4, 8, 1, 1, 3, 0.9], "rf-2021-06"),
    ([5, 2, 2, 1, 73, 0.9], "mlp-2021-06"),
    ([3, 2, 1, 1, 1, 0.9, 2], "mlp-2021-10"),
    ([3, 2, 1, 1, 1, 1.0, 3], "engine-2022-06"),
])
def test_layouts_detect_their_era(values, era):
    s = decode_settings(values)
    assert s.era == era
    np.testing.assert_array_equal(encode_settings(s), np.array(values, float))


def test_seven_value_layouts_are_told_apart_by_values():
    assert decide_layout7([3, 2, 1, 1, 1, 3, 0.9]) == "rf"
    assert decide_layout7([3, 2, 1, 1, 1, 0.9, 2]) == "mlp"
    s = decode_settings([3, 2, 1, 1, 1, 3, 0.9])
    assert (s.n_estimators, s.gt_prob, s.n_sigmas) == (3, 0.9, None)
    s = decode_settings([3, 2, 1, 1, 1, 0.9, 2])
    assert (s.n_estimators, s.gt_prob, s.n_sigmas) == (None, 0.9, 2)


def test_results_date_separates_the_2021_and_2022_apps():
    v = [3, 2, 1, 1, 1, 0.9, 2]
    assert decode_settings(v, path="x/results2021-10-16-14-20/a.npz").era == "mlp-2021-10"
    assert decode_settings(v, path="x/results2022-05-04-14-20/a.npz").era == "mlp-2022-05"
    assert decode_settings(v, date="2022-07-01").era == "engine-2022-06"
    assert decode_settings(v).era_source.startswith("layout (no date")


def test_user_override_wins():
    s = decode_settings([3, 2, 1, 1, 1, 0.9, 2], era="mlp-2022-05")
    assert (s.era, s.era_source) == ("mlp-2022-05", "user")


@pytest.mark.parametrize("values, words", [
    ([3, 2, 1, 1, 1, 0.5, 0.5], "cannot tell"),
    ([3, 2, 1, 1, 1, 2, 3], "cannot tell"),
    ([1, 2, 3], "3 values"),
    ([], "0 values"),
    ([3, 0, 1, 1, 1, 0.9], "crf_downsample"),
    ([3, 2, 1.5, 1, 1, 0.9], "classifier_downsample"),
    ([3, 2, 1, 0, 1, 0.9], "crf_theta"),
    ([3, 2, 1, 1, 1, float("nan")], "NaN"),
    ([3, 2, 1, 1, 1, 1.5], "gt_prob"),
])
def test_bad_settings_are_clear_errors(values, words):
    with pytest.raises(DoodleError, match=words):
        decode_settings(values, path="f.npz")


def test_unknown_era_override():
    with pytest.raises(DoodleError, match="unknown era"):
        decode_settings([3, 2, 1, 1, 1, 0.9, 2], era="mlp-1999")


def test_settings_are_immutable():
    s = decode_settings([3, 2, 1, 1, 1, 0.9, 2])
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.crf_mu = 5
