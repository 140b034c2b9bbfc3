"""A VLA on a transformers backbone: trains its head with the backbone frozen, checkpoints exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlpost.policy import (
    VLA,
    ExpertConfig,
    HFBackboneConfig,
    ObsBatch,
    PolicyConfig,
    load_checkpoint,
    save_checkpoint,
)
from rlpost.policy.hf_tiny import build_tiny_vlm


@pytest.fixture(scope="module", params=["paligemma", "smolvlm"])
def hf_model_dir(request, tmp_path_factory):
    return build_tiny_vlm(request.param, tmp_path_factory.mktemp(request.param))


def _cfg(model_dir) -> PolicyConfig:
    return PolicyConfig(
        backbone="hf",
        hf=HFBackboneConfig(model=str(model_dir)),
        state_dim=3,
        action_dim=2,
        horizon=4,
        cameras=["top", "wrist"],
        expert=ExpertConfig(width=32, depth=1),
    )


def _batch() -> ObsBatch:
    rng = np.random.default_rng(0)
    cams = ("top", "wrist")
    return ObsBatch(
        {c: rng.integers(0, 255, (2, 48, 40, 3), dtype=np.uint8) for c in cams},
        rng.normal(size=(2, 3)).astype(np.float32),
        ["pick up the red block", "press the button"],
    )


def test_hf_vla_checkpoint_round_trip_is_exact(tmp_path, hf_model_dir):
    vla = VLA(_cfg(hf_model_dir)).eval()
    batch, noise = _batch(), torch.randn(2, 4, 2)
    before = vla.sample(vla.encode(batch), batch.state, noise=noise)
    loaded = load_checkpoint(save_checkpoint(vla, tmp_path / "ckpt")).eval()
    after = loaded.sample(loaded.encode(batch), batch.state, noise=noise)
    assert torch.equal(before, after)
    assert loaded.backbone.fingerprint() == vla.backbone.fingerprint()


def test_hf_backbone_frozen_is_bit_identical_after_20_head_updates(hf_model_dir):
    vla = VLA(_cfg(hf_model_dir))
    vla.backbone.freeze()
    before = {k: v.clone() for k, v in vla.backbone.state_dict().items()}
    opt = torch.optim.AdamW(vla.parameters(), lr=1e-2, weight_decay=0.1)
    batch = _batch()
    vla.train()
    for _ in range(20):
        loss = vla.flow_loss(vla.encode(batch), batch.state, torch.randn(2, 4, 2)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.equal(v, before[k]) for k, v in vla.backbone.state_dict().items())
