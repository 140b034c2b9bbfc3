"""`rlpost bench fleet` on local Ray: two robot actors practise in real time, a head is published
through the session's broadcast, and the robots' own stamps say when each acted on it."""

from __future__ import annotations

import math

import pytest

from rlpost.bench.fleet_bench import FleetBenchConfig, run_fleet_bench
from rlpost.policy import ExpertConfig, PolicyConfig, TinyBackboneConfig
from rlpost.sim import SimConfig

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def test_fleet_bench_measures_publish_to_acting_latency_and_ships_less_than_the_model(ray_session):
    cfg = FleetBenchConfig(
        robots=[2],
        robots_per_actor=[1],
        seconds=4.0,
        publishes=1,
        sim=SimConfig(image_size=32, max_steps=20),
        policy=PolicyConfig(
            horizon=8,
            num_steps=2,
            tiny=TinyBackboneConfig(
                image_size=32, width=32, grid=4, keypoints=4, vision_depth=1, fusion_depth=1
            ),
            expert=ExpertConfig(width=32, depth=1),
        ),
    )
    lines: list[str] = []
    r = run_fleet_bench(cfg, on_progress=lines.append)

    assert ray_session.is_initialized(), "the bench must leave a Ray it did not start running"
    assert any("acting on it after" in line for line in lines)
    (point,) = r.points
    assert (point.robots, point.actors) == (2, 2)
    (pub,) = point.publishes
    assert sorted(pub.acting_ms) == ["sim-0", "sim-1"]
    # a robot can only act on a head after it was published, and within the bench's timeout
    assert all(0 < ms < 1e3 * cfg.act_timeout_s for ms in pub.acting_ms.values())
    (w,) = r.weights
    assert math.isfinite(w["all_acting_ms"]) and w["all_acting_ms"] >= w["robot_acting_p50_ms"] > 0
    assert w["ack_ms"] > 0
    (f,) = r.fleet
    assert point.steps > 0 and f["steps/s"] > 0 and 0 <= f["on_time"] <= 1 and f["start_s"] > 0
    (b,) = r.bytes
    assert b["head_kb"] < b["full_kb"] and point.head_bytes == pytest.approx(1024 * b["head_kb"])
