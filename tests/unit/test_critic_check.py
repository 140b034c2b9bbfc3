"""critic-check: replayed states are the states the policy reached; every candidate gets its rollouts."""

from __future__ import annotations

import numpy as np
import torch

from rlpost.cli import main
from rlpost.compare.critic_check import ReplayThenAct
from rlpost.data import EpisodeStore
from rlpost.evaluation import vla_chunk_fn
from rlpost.policy import load_checkpoint
from rlpost.policy.chunk_critic import ChunkCritic, ChunkQ, CriticSpec, save_critic
from rlpost.rollout import ChunkActor, EpisodePlan, EpisodeRecorder, run_and_close
from rlpost.sim import SimConfig, make_robot
from tests.support.policies import save_tiny_policy

SIM = SimConfig(image_size=32, max_steps=14)


def test_a_replayed_prefix_reaches_the_same_state_and_the_policy_acts_after_it(tmp_path):
    vla = load_checkpoint(save_tiny_policy(tmp_path / "policy"))
    with EpisodeStore.open(tmp_path / "store") as store:
        first = run_and_close(
            [make_robot("tabletop", SIM)], ChunkActor(vla_chunk_fn(vla, torch.Generator().manual_seed(0)), 4),
            [EpisodePlan(3)], total=1, recorder=EpisodeRecorder(store, "tabletop", "a"),
        )  # fmt: skip
        original = store.read_episode(first[0].meta.episode_id)
        script = np.concatenate([original.action[:6], np.zeros((4, 3), np.float32)])
        actor = ReplayThenAct({"j": script}, vla_chunk_fn(vla, torch.Generator().manual_seed(1)), 4)
        again = run_and_close(
            [make_robot("tabletop", SIM)], actor, [EpisodePlan(3, extra={"job": "j"})], total=1,
            recorder=EpisodeRecorder(store, "tabletop", "b"),
        )  # fmt: skip
        replay = store.read_episode(again[0].meta.episode_id)
    np.testing.assert_array_equal(replay.state[:7], original.state[:7])  # the same state at t = 6
    np.testing.assert_array_equal(replay.action[:10], script)  # the candidate ran, then the policy
    assert np.all(replay.chunk_start[:10] == -1) and np.all(replay.chunk_start[10:] >= 10)


def test_critic_check_scores_and_rolls_out_every_candidate(tmp_path, capsys):
    policy = save_tiny_policy(tmp_path / "policy")
    vla = load_checkpoint(policy)
    torch.manual_seed(0)
    spec = CriticSpec(vla.backbone.width, vla.cfg.policy_state_dim, 3, 4, heads=2, width=16)
    save_critic(ChunkCritic(spec, ChunkQ(spec)), tmp_path / "critic.safetensors")
    args = [
        "states=2",
        "times=[2]",
        "candidates=3",
        "repeats=2",
        "num_envs=4",
        "sim.image_size=32",
        "sim.max_steps=14",
    ]
    out = tmp_path / "check.json"
    assert (
        main(
            [
                "critic-check",
                f"policy={policy}",
                f"critic={tmp_path / 'critic.safetensors'}",
                *args,
                f"out={out}",
                "progress=false",
            ]
        )
        == 0
    )
    import json

    r = json.loads(out.read_text())
    assert r["states"] == 2 and r["rollouts"] == 2 * 3 * 2
    assert 0.0 <= r["mean"] <= r["best"] <= 1.0 and 0.0 <= r["chosen"] <= r["best"]
