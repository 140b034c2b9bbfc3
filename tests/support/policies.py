"""A tiny untrained VLA saved to disk, for tests that need a real checkpoint directory."""

from __future__ import annotations

from pathlib import Path

import torch


def tiny_vla():
    """An untrained tiny VLA for the 32 px tabletop sim (state 6, action 3), seeded."""
    from rlpost.policy import VLA, ExpertConfig, PolicyConfig, TinyBackboneConfig

    torch.manual_seed(0)
    return VLA(
        PolicyConfig(
            state_dim=6,
            action_dim=3,
            horizon=8,
            num_steps=2,
            cameras=["top"],
            tiny=TinyBackboneConfig(
                image_size=32, width=32, grid=4, keypoints=4, vision_depth=1, fusion_depth=1
            ),
            expert=ExpertConfig(width=32, depth=1),
        )
    )


def save_tiny_policy(path: Path) -> Path:
    """:func:`tiny_vla`, saved at ``path``."""
    from rlpost.policy import save_checkpoint

    return save_checkpoint(tiny_vla(), path)
