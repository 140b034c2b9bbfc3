"""The console's view helpers and config checks."""

from __future__ import annotations

import math

import pytest

from rlpost.console import ConsoleConfig
from rlpost.console.view import rolling_success, to_json


def test_rolling_success_is_the_mean_over_the_last_window_episodes():
    outcomes = ["success", "failure", "success", "success", "timeout"]
    assert rolling_success(outcomes, 2) == [1.0, 0.5, 0.5, 1.0, 0.5]
    assert rolling_success(outcomes, 10) == [1.0, 0.5, 2 / 3, 0.75, 0.6]
    assert rolling_success([], 3) == []


def test_to_json_turns_nan_and_inf_into_null_at_any_depth():
    assert to_json({"a": math.nan, "b": [1.0, math.inf, {"c": -math.inf}], "d": "x"}) == {
        "a": None,
        "b": [1.0, None, {"c": None}],
        "d": "x",
    }


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"port": 70000}, "console.port=70000"),
        ({"refresh_s": 0}, "refresh_s=0"),
        ({"progress_every_s": -1}, "progress_every_s=-1"),
        ({"token": "short"}, "at least 16"),
    ],
)
def test_bad_console_settings_are_refused_by_name(kw, match):
    with pytest.raises(ValueError, match=match):
        ConsoleConfig(**kw)
