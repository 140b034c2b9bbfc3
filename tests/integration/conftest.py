"""One local Ray for the whole test session (auth and usage stats off)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def ray_session():
    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    import ray

    ray.init(num_cpus=8, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """A tiny policy, a few demos and a tiny reward model (tests.support.session_assets), per test module."""
    from tests.support.session_assets import session_assets

    return session_assets(tmp_path_factory.mktemp("session-assets"))
