"""The console's live progress estimate equals what the labeler computes for the same frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reward_models.checkpoint import RewardCheckpoint
from reward_models.config import RewardDef, RewardModelConfig
from reward_models.features import predict_clip
from reward_models.live import LiveProgress, WindowFrames
from reward_models.model import Calibration, RewardModel
from rlpost.policy import VLA

MODEL_CFG = RewardModelConfig(width=32, pool_tokens=2, heads=2, depth=1, window=3, stride=2, bins=11)
INSTRUCTION = "put the red block in the ring"


@pytest.fixture
def live(small_policy_cfg):
    torch.manual_seed(0)
    backbone = VLA(small_policy_cfg()).backbone.freeze()
    model = RewardModel(MODEL_CFG, backbone.width, 2).eval()
    ckpt = RewardCheckpoint(model, 1, RewardDef(t_max=10, c_fail=10.0), Calibration(), backbone.fingerprint())
    return LiveProgress(ckpt, backbone)


def test_window_steps_are_the_first_frame_then_k_strided_up_to_now(live):
    assert live.window_steps(7) == [0, 3, 5, 7]
    assert live.window_steps(1) == [0, 0, 0, 1], "steps before the start repeat the first frame"


@torch.no_grad()
def test_live_progress_matches_the_labelers_prediction_at_each_step(live):
    rng = np.random.default_rng(0)
    n = 9
    images = rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8)
    state = rng.normal(size=(n, 2)).astype(np.float32)
    prefix = live.backbone({"top": torch.from_numpy(images)}, [INSTRUCTION] * n)
    want = predict_clip(
        live.ckpt.model, prefix.tokens.numpy(), prefix.mask.numpy(), state, live.ckpt.calibration
    ).progress
    windows = []
    for t in (2, 5, 8):
        idx = live.window_steps(t)
        windows.append(WindowFrames({"top": images[idx]}, state[idx], INSTRUCTION))
    got = live.estimate(windows)
    assert got.shape == (3,) and np.all((got >= 0) & (got <= 1))
    np.testing.assert_allclose(got, want[[2, 5, 8]], rtol=1e-4, atol=1e-5)


def test_a_window_of_the_wrong_length_is_refused(live):
    w = WindowFrames({"top": np.zeros((2, 32, 32, 3), np.uint8)}, np.zeros((2, 2), np.float32), INSTRUCTION)
    with pytest.raises(ValueError, match="expected cameras \\['top'\\] and 4 frames"):
        live.estimate([w])
