"""The reward model's shapes, its blindness to the clock, HL-Gauss targets, and its checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from reward_models.checkpoint import (
    RewardCheckpoint,
    load_reward_checkpoint,
    next_version,
    save_reward_checkpoint,
)
from reward_models.config import RewardDef, RewardModelConfig
from reward_models.features import predict_clip
from reward_models.model import Calibration, RewardModel, bin_centers, hl_gauss_targets
from rlpost.policy import CheckpointError

CFG = RewardModelConfig(width=32, pool_tokens=2, heads=2, depth=1, window=4, stride=2, bins=11, dropout=0.0)


def _model(seed: int = 0) -> RewardModel:
    torch.manual_seed(seed)
    return RewardModel(CFG, feature_dim=16, state_dim=3).eval()


def test_heads_have_the_documented_shapes_and_ranges():
    m = _model()
    out = m(torch.randn(5, 5, 7, 16), torch.ones(5, 5, 7, dtype=torch.bool), torch.randn(5, 5, 3))
    assert out.progress_logits.shape == (5, 11) and out.value_logits.shape == (5, 11)
    assert out.success_logit.shape == (5,)
    assert ((out.progress() >= 0) & (out.progress() <= 1)).all()
    assert ((out.value() >= -1) & (out.value() <= 0)).all()
    with pytest.raises(ValueError, match="width 16"):
        m.embed_frames(torch.randn(2, 7, 8), torch.ones(2, 7, dtype=torch.bool), torch.randn(2, 3))


def test_no_time_index_a_still_scene_gets_the_same_prediction_at_every_step():
    # Identical frames at steps 0..11: a model that saw the step number would drift.
    m = _model()
    tokens = np.repeat(np.random.default_rng(0).normal(size=(1, 7, 16)).astype(np.float32), 12, axis=0)
    pred = predict_clip(m, tokens, np.ones((12, 7), bool), np.zeros((12, 3), np.float32), Calibration())
    np.testing.assert_allclose(pred.progress, pred.progress[0], atol=1e-5)
    np.testing.assert_allclose(pred.success_logit, pred.success_logit[0], atol=1e-5)


def test_padding_tokens_are_ignored():
    m = _model()
    tok = torch.randn(3, 7, 16)
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[:, 5:] = False
    other = tok.clone()
    other[:, 5:] = 100.0
    s = torch.randn(3, 3)
    torch.testing.assert_close(m.embed_frames(tok, mask, s), m.embed_frames(other, mask, s))


def test_hl_gauss_targets_are_distributions_whose_mean_is_the_label():
    y = torch.tensor([0.0, 0.33, 0.5, 1.0])
    t = hl_gauss_targets(y, 0.0, 1.0, 51, 0.75)
    torch.testing.assert_close(t.sum(-1), torch.ones(4))
    mean = t @ bin_centers(0.0, 1.0, 51)
    torch.testing.assert_close(mean[1:3], y[1:3], atol=2e-3, rtol=0)
    assert mean[0] < 0.02 and mean[3] > 0.98  # the edges are pulled in by at most a bin


def _ckpt(model: RewardModel, version: int = 1) -> RewardCheckpoint:
    return RewardCheckpoint(
        model=model,
        version=version,
        reward=RewardDef(t_max=80, c_fail=80.0),
        calibration=Calibration(a=1.5, b=-2.0, threshold=0.7),
        backbone_fingerprint="abc123",
        train_episodes=["e1"],
    )


def test_checkpoint_round_trip_is_exact_and_versions_are_never_overwritten(tmp_path):
    m = _model(1)
    path = save_reward_checkpoint(_ckpt(m), tmp_path)
    assert path.name == "rm-v1" and next_version(tmp_path) == 2
    back = load_reward_checkpoint(path)
    assert back.label_version == "rm-v1" and back.calibration.threshold == 0.7
    assert back.reward.t_max == 80 and back.train_episodes == ["e1"]
    for (k, a), (_, b) in zip(m.state_dict().items(), back.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    with pytest.raises(CheckpointError, match="never overwritten"):
        save_reward_checkpoint(_ckpt(m), tmp_path)


def test_a_checkpoint_refuses_features_of_another_backbone(tmp_path):
    back = load_reward_checkpoint(save_reward_checkpoint(_ckpt(_model()), tmp_path))
    back.check_backbone("abc123")
    with pytest.raises(CheckpointError, match="trained on backbone abc123"):
        back.check_backbone("fff000")


@pytest.mark.parametrize("damage", ["truncate_weights", "garbage_json", "no_weights", "wrong_format"])
def test_a_corrupt_checkpoint_gives_a_clear_error_naming_the_file(tmp_path, damage):
    path = save_reward_checkpoint(_ckpt(_model()), tmp_path)
    weights, cfg = path / "model.safetensors", path / "config.json"
    if damage == "truncate_weights":
        weights.write_bytes(weights.read_bytes()[:100])
        bad = weights
    elif damage == "garbage_json":
        cfg.write_text("{not json")
        bad = cfg
    elif damage == "no_weights":
        weights.unlink()
        bad = weights
    else:
        cfg.write_text(json.dumps({"format": "something-else"}))
        bad = cfg
    with pytest.raises(CheckpointError, match=str(bad)):
        load_reward_checkpoint(path)
