"""A short practice session on local Ray: 2 simulated robots with simulated operators, the
labeler and the learner; heads are published, broadcast and picked up by the robots."""

from __future__ import annotations

import json

import numpy as np
import pytest

from actors.config import ActorConfig, ControlConfig
from learner.config import LearnerConfig, ReplayConfig
from rlpost.data import EpisodeStore
from rlpost.metrics import LoggerConfig
from rlpost.session import BudgetConfig, PracticeConfig, RayConfig, Session, SessionError
from rlpost.sim import SimOperatorConfig
from tests.support.session_assets import SIM

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def practice_cfg(assets, out, **kw) -> PracticeConfig:
    base = dict(
        out=str(out),
        policy_checkpoint=assets["policy"],
        demos=assets["demos"],
        reward_model=assets["rm"],
        robots=2,
        actor=ActorConfig(
            policy=assets["policy"],
            sim=SIM,
            sim_operator=True,
            sim_operator_cfg=SimOperatorConfig(stall_window=4, reaction_delay_steps=1, takeover_steps=5),
            control=ControlConfig(realtime=False, execute=4, lead_steps=2),
        ),
        learner=LearnerConfig(batch_size=16, publish_every=4, replay=ReplayConfig(demo_fraction=0.3)),
        learn_after=2,
        updates_per_cycle=4,
        budget=BudgetConfig(episodes=10),
        ray=RayConfig(actor_num_cpus=0.5),
        status_every_s=2.0,
        logger=LoggerConfig(wandb_mode="disabled"),
    )
    base.update(kw)
    return PracticeConfig(**base)


def test_practice_session_stores_flagged_labelled_episodes_and_robots_pick_up_new_heads(
    ray_session, assets, tmp_path
):
    out = tmp_path / "session"
    tables: list[str] = []
    summary = Session(practice_cfg(assets, out), on_status=tables.append).run()

    assert summary.stopped_by == "budget" and summary.episodes == 10
    assert summary.head_version >= 2, "the learner must publish at least two head versions"
    assert len(summary.broadcast_ms) >= 2 and all(ms > 0 for ms in summary.broadcast_ms)
    assert tables and "success@20" in tables[-1] and "learner:" in tables[-1]

    with EpisodeStore.open(out / "store") as store:
        practice = store.episodes(source="autonomous")
        demos = store.episodes(source="demo")
        assert len(practice) == 10 and len(demos) == 6
        assert {m.robot_id for m in practice} == {"sim-0", "sim-1"}
        versions, flagged = set(), 0
        for m in practice:
            ep = store.read_episode(m.episode_id)
            assert len(ep.action) == m.length > 0
            flagged += int(ep.intervention.sum())
            versions |= set(ep.policy_version[~ep.intervention].tolist())
            assert store.label_versions(m.episode_id) == ["rm-v1"], "every practice episode is labelled"
        assert flagged > 0, "the simulated operators never took over"
        assert all(store.label_versions(m.episode_id) == ["rm-v1"] for m in demos)
        # robots picked up published heads: stored policy steps carry versions after 0
        assert max(versions) >= 1, f"stored steps only carry head versions {sorted(versions)}"

    heads = sorted(p.name for p in (out / "learner" / "heads").iterdir())
    assert len(heads) == summary.head_version
    saved = json.loads((out / "summary.json").read_text())
    assert saved["episodes"] == 10 and saved["rows"][-1]["robot"] == "all"

    # the directory holds a session: a fresh start refuses it, resume continues it to a larger budget
    with pytest.raises(SessionError, match="resume=true"):
        Session(practice_cfg(assets, out)).start()
    more = Session(practice_cfg(assets, out, resume=True, budget=BudgetConfig(episodes=12))).run()
    assert more.episodes == 2 and more.learner_step >= summary.learner_step
    with EpisodeStore.open(out / "store") as store:
        assert len(store.episodes(source="autonomous")) == 12 and len(store.episodes(source="demo")) == 6
    runs = json.loads((out / "session.json").read_text())["runs"]
    assert len(runs) == 2 and all(r["stopped_by"] == "budget" for r in runs)
    # seeds continue on resume: no practice episode repeats another's seed
    with EpisodeStore.open(out / "store") as store:
        seeds = [m.seed for m in store.episodes(source="autonomous")]
    assert len(set(seeds)) == len(seeds)
    assert np.all(np.array(seeds) >= 1_000_000)
