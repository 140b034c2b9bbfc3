"""Practice/demo configs compose from the CLI's YAML; contradictions are errors; the fleet table counts."""

from __future__ import annotations

import math

import pytest

from rlpost.cli_schemas import register_role_schemas
from rlpost.config import ConfigError, compose
from rlpost.fleet_status import EpisodeOutcome, FleetTracker
from rlpost.session import PracticeConfig, RayConfig


def test_practice_and_demo_configs_compose_with_overrides():
    register_role_schemas()
    p = compose("practice", ["robots=3", "ray.address=auto", "ray.robot_resources=true", "budget.updates=9"])
    assert isinstance(p, PracticeConfig) and p.robots == 3 and p.ray.robot_resources and p.budget.updates == 9
    assert p.actor.sim_operator and not p.actor.control.realtime
    d = compose("demo", ["practice_episodes=7"])
    q = compose("demo_quick", [])
    assert d.practice_episodes == 7 and d.pretrain.policy.horizon == 8
    assert q.pretrain.steps < d.pretrain.steps and q.out != d.out
    with pytest.raises(ConfigError, match="robts"):
        compose("practice", ["robts=2"])


def test_contradictions_fail_with_a_sentence():
    with pytest.raises(ValueError, match="robot_ids names 2 robots"):
        PracticeConfig(robots=3, robot_ids=["a", "b"])
    with pytest.raises(ValueError, match="cannot be combined"):
        RayConfig(robot_resources=True, robots_per_actor=2)
    with pytest.raises(ValueError, match="needs reward labels"):
        PracticeConfig().check_learning()
    assert PracticeConfig(robot_ids=["a", "b"]).robot_names() == ["a", "b"]
    assert RayConfig(learner_gpus=1).learner_actor


def test_fleet_tracker_counts_success_and_takeovers_over_the_window():
    t = FleetTracker(["a", "b"], window=2)
    for outcome, takeovers in (("failure", 3), ("success", 1), ("success", 0)):
        t.add(
            EpisodeOutcome(
                "a", outcome, steps=10, intervention_steps=takeovers, takeovers=takeovers, duration_s=1.0
            )
        )
    row = t.robot_row("a")
    assert row["episodes"] == 3 and row["success@2"] == 1.0 and row["takeovers/ep"] == 0.5
    assert math.isnan(t.robot_row("b")["success@2"])
    rows = {r["robot"]: r for r in t.summary_rows()}
    assert rows["all"]["episodes"] == 3 and rows["all"]["success"] == pytest.approx(2 / 3)
    assert rows["all"]["succ/hour"] == pytest.approx(2 / (3 / 3600))
    assert "learner: step 5" in t.status_table({"step": 5})
