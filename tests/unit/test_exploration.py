"""Exploration while practising: the sampling noise's scale, applied where robots act and recorded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from actors.config import ActorConfig, ControlConfig
from actors.runner import RobotRunner
from rlpost.compare.practice import practice
from rlpost.data.episode_store import EpisodeStore
from rlpost.evaluation import vla_chunk_fn
from rlpost.policy import VLA, PolicyConfig, load_checkpoint
from rlpost.sim import SimConfig
from tests.support.policies import save_tiny_policy


def test_the_noise_scale_multiplies_the_drawn_noise_and_bad_scales_are_refused(small_policy_cfg, obs_batch):
    torch.manual_seed(0)
    vla = VLA(small_policy_cfg()).eval()
    batch = obs_batch(4)
    shape = (4, vla.cfg.horizon, vla.cfg.action_dim)
    eps = torch.randn(shape, generator=torch.Generator().manual_seed(5))
    scaled = vla.act_batch(batch, generator=torch.Generator().manual_seed(5), noise_scale=2.0)
    torch.testing.assert_close(scaled, vla.act_batch(batch, noise=2.0 * eps))
    assert not torch.allclose(scaled, vla.act_batch(batch, noise=eps))
    # the policy's own setting is the default; an explicit noise is used as given
    vla.cfg = PolicyConfig(**{**vla.cfg.__dict__, "act_noise_scale": 2.0})
    torch.testing.assert_close(vla.act_batch(batch, generator=torch.Generator().manual_seed(5)), scaled)
    torch.testing.assert_close(
        vla.act_batch(batch, noise=eps), vla.act_batch(batch, noise=eps, noise_scale=1.0)
    )
    for bad in (0.0, -1.0, 6.0):
        with pytest.raises(ValueError, match="noise_scale"):
            vla.act_batch(batch, noise_scale=bad)
        with pytest.raises(ValueError, match="act_noise_scale"):
            small_policy_cfg(act_noise_scale=bad)


def test_a_robot_practising_with_more_noise_acts_with_it_and_records_it_per_episode(tmp_path):
    policy = save_tiny_policy(tmp_path / "policy")
    cfg = ActorConfig(
        robot_id="sim-0",
        task="tabletop",
        sim=SimConfig(image_size=32, max_steps=10),
        policy=str(policy),
        store=str(tmp_path / "store"),
        noise_scale=1.5,
        control=ControlConfig(hz=50.0, realtime=False, execute=4, lead_steps=1),
    )
    runner = RobotRunner.from_config(cfg)
    try:
        assert runner.loop.worker.policy.cfg.act_noise_scale == 1.5
        reports = runner.run(2)
    finally:
        runner.close()
    with EpisodeStore.open(tmp_path / "store", create=False) as store:
        assert [store.meta(r.meta.episode_id).extra["noise_scale"] for r in reports] == ["1.5", "1.5"]
    assert load_checkpoint(policy).cfg.act_noise_scale == 1.0  # the checkpoint is not changed
    with pytest.raises(ValueError, match="noise_scale"):
        ActorConfig(policy=str(policy), noise_scale=0.0)


def test_compare_practice_samples_at_its_noise_scale_and_tags_the_episodes(tmp_path):
    vla = load_checkpoint(save_tiny_policy(tmp_path / "policy"))
    sim = SimConfig(image_size=32, max_steps=10)
    with EpisodeStore.open(tmp_path / "store") as store:
        runs = {}
        for scale in (1.0, 3.0):
            st = practice(
                vla_chunk_fn(vla, torch.Generator().manual_seed(1), noise_scale=scale),
                "tabletop",
                sim,
                [11, 12],
                store,
                operator=None,
                policy_version=0,
                execute=4,
                session_id=f"s{scale:g}",
                extra={"noise_scale": f"{scale:g}"},
            )
            runs[scale] = [store.read_episode(e).action for e in st.episode_ids]
            assert {store.meta(e).extra["noise_scale"] for e in st.episode_ids} == {f"{scale:g}"}
    # same env seeds and noise stream: only the scale differs, and the actions with it
    assert not np.allclose(runs[1.0][0], runs[3.0][0])
