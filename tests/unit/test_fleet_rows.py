"""`rlpost bench fleet`'s pure parts: on-time steps, the points run, the rows, what a head ships; its config."""

from __future__ import annotations

import math

import numpy as np
import pytest

from actors.config import ControlConfig
from rlpost.bench.fleet_bench import FleetBenchConfig
from rlpost.bench.fleet_rows import (
    FleetPoint,
    Publish,
    StepTiming,
    bench_points,
    bytes_row,
    fleet_row,
    head_and_full_bytes,
    step_timing,
    weights_row,
)
from rlpost.cli import main
from tests.support.policies import tiny_vla


def _ms(*values: float) -> np.ndarray:
    return (np.asarray(values) * 1e6).astype(np.int64)


def test_on_time_steps_are_those_within_tolerance_of_a_period_and_first_intervals_are_left_out():
    episodes = [
        _ms(0, 500, 600, 700, 815, 900),  # 500 ms first chunk; then 100, 100, 115 (late), 85
        _ms(0, 300, 400),  # first chunk, then 100
        _ms(0, 250),  # only the first-chunk interval: nothing to judge
    ]
    t = step_timing(episodes, hz=10.0, tolerance=0.1)
    assert (t.steps, t.on_time) == (5, 4)
    assert t.on_time_share == pytest.approx(0.8)
    assert t.interval_p50_ms == pytest.approx(100.0)
    assert 100.0 < t.interval_p99_ms <= 115.0
    # a wider tolerance lets the 115 ms step count
    assert step_timing(episodes, hz=10.0, tolerance=0.2).on_time == 5


def test_no_judged_steps_give_nan_not_a_perfect_score():
    t = step_timing([_ms(0, 400)], hz=10.0, tolerance=0.1)
    assert t.steps == 0 and math.isnan(t.on_time_share) and math.isnan(t.interval_p50_ms)


def test_every_fleet_size_runs_with_each_packing_capped_at_its_size_without_repeats():
    assert bench_points([16, 1, 4], [4, 1]) == [(1, 1), (4, 1), (4, 4), (16, 1), (16, 4)]
    assert bench_points([2], [4]) == [(2, 2)]


def _point(publishes: list[Publish]) -> FleetPoint:
    return FleetPoint(
        robots=4,
        robots_per_actor=2,
        actors=2,
        start_s=3.0,
        practice_s=10.0,
        episodes=8,
        steps=360,
        steps_per_s=36.0,
        target_steps_per_s=40.0,
        timing=StepTiming(steps=340, on_time=323, interval_p50_ms=100.0, interval_p99_ms=130.0),
        publishes=publishes,
        head_bytes=2048,
    )


def test_weights_row_reports_ack_and_time_until_the_last_robot_acts_per_publish():
    p = _point(
        [
            Publish(1, ack_ms=10.0, acting_ms={"a": 100.0, "b": 300.0, "c": 200.0, "d": 50.0}),
            Publish(2, ack_ms=30.0, acting_ms={"a": 400.0, "b": 120.0, "c": 80.0, "d": 60.0}),
            Publish(3, ack_ms=20.0, acting_ms={"a": 90.0, "b": 350.0, "c": 70.0, "d": 110.0}),
        ]
    )
    row = weights_row(p)
    assert row["ack_ms"] == 20.0
    assert row["all_acting_ms"] == 350.0  # median of the per-publish maxima 300, 400, 350
    assert row["all_acting_max_ms"] == 400.0
    assert row["robot_acting_p50_ms"] == 105.0  # median of all twelve robot latencies
    assert (row["robots"], row["actors"], row["robots/actor"], row["head_kb"]) == (4, 2, 2, 2.0)


def test_fleet_row_compares_steps_per_second_with_the_target_and_reports_the_on_time_share():
    row = fleet_row(_point([Publish(1, 1.0, {"a": 1.0})]))
    assert row["vs_target"] == pytest.approx(0.9)
    assert row["on_time"] == pytest.approx(0.95)
    assert (row["robots"], row["actors"], row["start_s"]) == (4, 2, 3.0)


def test_a_published_head_is_the_model_minus_its_backbone():
    vla = tiny_vla()
    head, full = head_and_full_bytes(vla)
    backbone = sum(t.numel() * t.element_size() for t in vla.backbone.state_dict().values())
    assert head == sum(a.nbytes for a in vla.head_state().values())
    assert full == backbone + head
    row = bytes_row("tiny", vla)
    assert 0 < row["head/full"] < 1 and row["head_kb"] == head / 1024


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"control": ControlConfig(realtime=False)}, "realtime"),
        ({"publishes": 0}, "publishes"),
        ({"robots": [0, 2]}, "robots"),
        ({"robots_per_actor": []}, "robots_per_actor"),
        ({"late_tolerance": 1.5}, "late_tolerance"),
    ],
)
def test_settings_that_cannot_be_measured_are_refused_by_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FleetBenchConfig(**kwargs)


def test_bench_fleet_is_a_cli_command_whose_mistyped_override_is_an_error(capsys):
    assert main(["bench", "fleet", "robotz=[2]"]) == 2
    assert "robotz" in capsys.readouterr().err
