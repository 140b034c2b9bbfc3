"""Training samples cut from episodes, and the evaluation statistics, on hand-built cases."""

from __future__ import annotations

import numpy as np
import pytest

from rlpost.data.chunk_dataset import ChunkDataset, split_by_episode
from rlpost.evaluation import EpisodeSummary, summarize, wilson_interval
from rlpost.schema import SchemaError
from tests.support.episodes import hand_built_episode as _episode


def test_a_chunk_near_the_episode_end_is_padded_with_the_last_action_and_masked():
    data = ChunkDataset([_episode("a", 3), _episode("b", 5)], horizon=4)
    assert len(data) == 8
    batch = data.get(np.array([1, 3 + 4]))  # a at t=1, b at t=4 (its last step)
    np.testing.assert_array_equal(batch.actions[0], [[2, 3], [4, 5], [4, 5], [4, 5]])
    np.testing.assert_array_equal(batch.action_mask[0], [True, True, False, False])
    np.testing.assert_array_equal(batch.action_mask[1], [True, False, False, False])
    np.testing.assert_array_equal(batch.state[:, 0], [1, 4])
    assert batch.instructions == ["do a", "do b"]
    assert batch.intervention.tolist() == [False, True]


def test_episodes_with_different_dimensions_are_refused_naming_the_episode():
    with pytest.raises(SchemaError, match=r"episode b has state/action dims"):
        ChunkDataset([_episode("a", 3), _episode("b", 3, a_dim=4)], horizon=2)
    with pytest.raises(SchemaError, match=r"episode b has cameras"):
        ChunkDataset([_episode("a", 3), _episode("b", 3, cams=("top", "wrist"))], horizon=2)


def test_split_is_by_whole_episode_and_keeps_every_episode_once():
    eps = [_episode(f"e{i}", 3) for i in range(10)]
    train, val = split_by_episode(eps, 0.2, seed=0)
    ids = sorted(e.meta.episode_id for e in train + val)
    assert ids == sorted(e.meta.episode_id for e in eps) and len(val) == 2


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [(0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (50, 100, 0.4038, 0.5962), (1, 4, 0.0456, 0.6994)],
)
def test_wilson_interval_matches_published_values(k, n, lo, hi):
    got = wilson_interval(k, n)
    assert got == pytest.approx((lo, hi), abs=1e-3)


def test_summary_counts_successes_per_hour_of_robot_time_and_cycle_time_of_successes():
    eps = [
        EpisodeSummary(0, "x", "success", 30, 3.0, 1.0),
        EpisodeSummary(1, "x", "success", 50, 5.0, 1.0),
        EpisodeSummary(2, "x", "timeout", 100, 10.0, 0.4),
        EpisodeSummary(3, "x", "failure", 20, 2.0, 0.2),
    ]
    r = summarize("tabletop", eps)
    assert r.success_rate == 0.5
    assert r.successes_per_hour == pytest.approx(2 / (20.0 / 3600))
    assert r.mean_cycle_time_s == pytest.approx(4.0)
    assert r.mean_progress == pytest.approx(0.65)
    assert r.outcomes == {"success": 2, "timeout": 1, "failure": 1}


def test_summary_counts_outcomes_per_route_and_the_row_shows_each_routes_success():
    eps = [
        EpisodeSummary(0, "x", "success", 30, 3.0, 1.0, route="bottom"),
        EpisodeSummary(1, "x", "failure", 20, 2.0, 0.5, "hazard", route="top"),
        EpisodeSummary(2, "x", "success", 40, 4.0, 1.0, route="top"),
        EpisodeSummary(3, "x", "timeout", 100, 10.0, 0.4, route="top"),
        EpisodeSummary(4, "x", "timeout", 100, 10.0, 0.1),  # never reached the wall
    ]
    r = summarize("tabletop", eps)
    assert r.routes == {"bottom": {"success": 1}, "top": {"failure": 1, "success": 1, "timeout": 1}}
    assert r.row()["routes (success)"] == "bottom 1 (1.00), top 3 (0.33)"
