"""Faults of a practice session on a local Ray, with real processes: a robot actor killed
mid-episode, and a whole session's driver killed then resumed. Robots are simulated robots
behind real robot-server processes, which count the steps they executed."""

from __future__ import annotations

import pytest

from rlpost.fault_scenarios import actor_kill, make_assets, session_resume

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return make_assets(tmp_path_factory.mktemp("fault-assets"))


def test_killed_robot_actor_restarts_its_episode_is_stored_aborted_and_the_session_goes_on(
    ray_session, assets, tmp_path
):
    run = actor_kill(assets, tmp_path)
    assert run.survived, run.detail
    assert run.recorded == run.stored > 0


def test_session_killed_mid_practice_resumes_where_it_stopped(ray_session, assets, tmp_path):
    run = session_resume(assets, tmp_path)
    assert run.survived, run.detail
    assert run.recorded == run.stored > 0
