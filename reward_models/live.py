"""The reward model's progress estimate of episodes in flight (for the operator console).

Labelling reads finished episodes from the store; a console wants "how far along is this
robot now". :class:`LiveProgress` takes the frames the model's window needs at the current
step (the first frame and K strided recent ones, :meth:`LiveProgress.window_steps`), runs
the frozen backbone on them and returns the expected progress, several robots per call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from reward_models.checkpoint import RewardCheckpoint, load_reward_checkpoint
from reward_models.features import load_frozen_backbone
from reward_models.targets import window_index
from rlpost.policy import Backbone


@dataclass(frozen=True)
class WindowFrames:
    """One robot's frames at :meth:`LiveProgress.window_steps` (K + 1 rows, oldest first)."""

    images: dict[str, np.ndarray]  # camera -> uint8 [K+1, h, w, 3]
    state: np.ndarray  # float32 [K+1, S]
    instruction: str


class LiveProgress:
    """Progress in [0, 1] of episodes in flight, from the reward model and the policy's frozen backbone."""

    def __init__(self, ckpt: RewardCheckpoint, backbone: Backbone) -> None:
        """Raises CheckpointError: ``backbone`` is not the one the model was trained on."""
        ckpt.check_backbone(backbone.fingerprint())
        self.ckpt, self.backbone = ckpt, backbone
        self.ckpt.model.eval()

    @classmethod
    def load(cls, reward_model: str, policy_checkpoint: str) -> LiveProgress:
        """Load the reward model and the frozen backbone of ``policy_checkpoint``."""
        return cls(load_reward_checkpoint(reward_model), load_frozen_backbone(policy_checkpoint))

    @property
    def name(self) -> str:
        return self.ckpt.label_version

    def window_steps(self, t: int) -> list[int]:
        """Steps of the frames the model sees at step ``t``: the first, then K strided up to t."""
        m = self.ckpt.model.cfg
        return window_index(np.arange(t + 1), np.array([t]), m.window, m.stride)[0].tolist()

    @torch.no_grad()
    def estimate(self, windows: list[WindowFrames]) -> np.ndarray:
        """Expected progress of each window, float32 [R].

        Raises:
            ValueError: a window without K + 1 frames, or cameras that differ between windows.
        """
        if not windows:
            return np.zeros(0, np.float32)
        k1 = self.ckpt.model.cfg.window + 1
        cams = sorted(windows[0].images)
        for i, w in enumerate(windows):
            if sorted(w.images) != cams or len(w.state) != k1:
                raise ValueError(
                    f"progress window {i}: cameras {sorted(w.images)} and {len(w.state)} frames; "
                    f"expected cameras {cams} and {k1} frames (the model's window + the first frame)"
                )
        images = {c: torch.from_numpy(np.concatenate([w.images[c] for w in windows])) for c in cams}
        instructions = [w.instruction for w in windows for _ in range(k1)]
        prefix = self.backbone(images, instructions)
        state = torch.from_numpy(np.concatenate([w.state for w in windows]).astype(np.float32))
        emb = self.ckpt.model.embed_frames(prefix.tokens, prefix.mask, state)
        out = self.ckpt.model.forward_windows(emb.view(len(windows), k1, -1))
        return out.progress().numpy().astype(np.float32)
