"""What a short practice session in the tests starts from: a tiny policy, demos and a reward model."""

from __future__ import annotations

from pathlib import Path

from reward_models.config import RewardModelConfig, RewardTrainConfig
from reward_models.practice_data import MixedConfig, collect_mixed
from rlpost.collect import CollectConfig, collect
from rlpost.metrics import LoggerConfig
from rlpost.session import train_reward
from rlpost.sim import SimConfig
from tests.support.policies import save_tiny_policy

SIM = SimConfig(image_size=32, max_steps=30)


def session_assets(root: Path) -> dict[str, str]:
    """A tiny policy, a few demos, and a tiny reward model trained on demos + scripted failures, under ``root``."""
    policy = save_tiny_policy(root / "policy")
    demos = root / "demos"
    collect(CollectConfig(episodes=6, out=str(demos), sim=SIM, progress=False))
    mixed = root / "rm-data"
    collect(CollectConfig(episodes=6, out=str(mixed), sim=SIM, progress=False))
    collect_mixed(
        MixedConfig(episodes=8, out=str(mixed), sim=SIM, mix={"stall": 1.0, "wander": 1.0}, progress=False)
    )
    rm = train_reward(
        RewardTrainConfig(
            store=str(mixed),
            policy_checkpoint=str(policy),
            out=str(root / "rm"),
            model=RewardModelConfig(width=32, heads=2, depth=1, window=4),
            steps=20,
            batch_size=16,
            val_every=20,
            val_fraction=0.3,
            threads=1,
            progress=False,
            logger=LoggerConfig(wandb_mode="disabled"),
        )
    )
    return {"policy": str(policy), "demos": str(demos), "mixed": str(mixed), "rm": str(rm.checkpoint)}
