"""Checkpoints and head files round-trip exactly and refuse what does not fit."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from rlpost.policy import (
    VLA,
    CheckpointError,
    NormStats,
    apply_head,
    load_checkpoint,
    load_head_file,
    save_checkpoint,
    save_head,
)
from rlpost.policy.config import TinyBackboneConfig


def _trained_looking(vla: VLA) -> VLA:
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in vla.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.01)
    vla.set_norm_stats(
        NormStats(np.array([0.5, -1.0], np.float32), np.array([2.0, 0.3], np.float32)),
        NormStats(np.array([0.1, 0.2], np.float32), np.array([0.5, 0.25], np.float32)),
    )
    return vla.eval()


def test_checkpoint_round_trip_is_exact(tmp_path, small_policy_cfg, obs_batch):
    vla = _trained_looking(VLA(small_policy_cfg(cameras=["top", "wrist"])))
    vla.head_version = 12
    save_checkpoint(vla, tmp_path / "ckpt", extra={"step": 345})
    loaded = load_checkpoint(tmp_path / "ckpt").eval()
    assert loaded.head_version == 12
    assert loaded.cfg == vla.cfg
    for k, v in vla.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    batch = obs_batch(cams=("top", "wrist"))
    noise = torch.randn(4, 8, 2)
    torch.testing.assert_close(
        vla.sample(vla.encode(batch), batch.state, noise=noise),
        loaded.sample(loaded.encode(batch), batch.state, noise=noise),
        rtol=0,
        atol=0,
    )
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["extra"] == {"step": 345}


def test_saving_over_an_existing_checkpoint_replaces_it(tmp_path, small_policy_cfg):
    vla = VLA(small_policy_cfg())
    save_checkpoint(vla, tmp_path / "ckpt")
    vla.head_version = 3
    save_checkpoint(vla, tmp_path / "ckpt")
    assert load_checkpoint(tmp_path / "ckpt").head_version == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_head_round_trip_is_exact_and_carries_its_version(tmp_path, small_policy_cfg):
    learner = _trained_looking(VLA(small_policy_cfg()))
    actor = VLA(small_policy_cfg())
    actor.backbone.load_state_dict(learner.backbone.state_dict())  # same frozen backbone
    learner.head_version = 5
    head = load_head_file(save_head(learner, tmp_path / "head-5.safetensors"))
    assert head.version == 5
    apply_head(actor, head)
    assert actor.version == 5
    for k, v in learner.state_dict().items():
        assert torch.equal(v, actor.state_dict()[k]), k
    # what ships is the head only: no backbone weights in the file
    assert not any(k.startswith("backbone.") for k in head.tensors)


def test_head_trained_on_another_backbone_is_refused(tmp_path, small_policy_cfg):
    learner = _trained_looking(VLA(small_policy_cfg()))
    other = VLA(small_policy_cfg())
    head = load_head_file(save_head(learner, tmp_path / "h.safetensors"))
    with pytest.raises(CheckpointError, match="trained on backbone"):
        apply_head(other, head)


def test_head_of_a_different_shape_is_refused_naming_the_weight(small_policy_cfg):
    a = VLA(small_policy_cfg(horizon=8))
    b = VLA(small_policy_cfg(horizon=16))
    with pytest.raises(
        ValueError, match=r"head weight 'expert.pos' has shape \(9, 64\), policy has \(17, 64\)"
    ):
        b.load_head(a.head_state(), 1)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_or_truncated_files_give_an_error_naming_the_file(tmp_path, small_policy_cfg, damage):
    vla = VLA(small_policy_cfg())
    ckpt = save_checkpoint(vla, tmp_path / "ckpt")
    head = save_head(vla, tmp_path / "head.safetensors")
    for f in (ckpt / "model.safetensors", head):
        data = f.read_bytes()
        f.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x00" * 64 + data[64:])
    with pytest.raises(CheckpointError, match=r"model\.safetensors"):
        load_checkpoint(ckpt)
    with pytest.raises(CheckpointError, match=r"head\.safetensors"):
        load_head_file(head)


def test_a_checkpoint_from_a_newer_release_or_not_ours_is_refused(tmp_path, small_policy_cfg):
    ckpt = save_checkpoint(VLA(small_policy_cfg()), tmp_path / "ckpt")
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["config_version"] = 99
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="newer than this rlpost"):
        load_checkpoint(ckpt)
    (ckpt / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"config.json: corrupt JSON"):
        load_checkpoint(ckpt)
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "missing")


def test_unknown_config_keys_of_an_old_release_are_dropped_with_a_warning(tmp_path, small_policy_cfg, caplog):
    ckpt = save_checkpoint(VLA(small_policy_cfg()), tmp_path / "ckpt")
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["policy"]["retired_option"] = 1
    (ckpt / "config.json").write_text(json.dumps(cfg))
    load_checkpoint(ckpt)
    assert "retired_option" in caplog.text


def test_eval_of_a_published_head_matches_the_learner_policy_and_refuses_a_foreign_head(
    tmp_path, small_policy_cfg
):
    from rlpost.evaluation import EvalConfig, evaluate, evaluate_checkpoint, vla_chunk_fn
    from rlpost.sim import SimConfig

    cfg = small_policy_cfg(
        state_dim=6,
        action_dim=3,
        tiny=TinyBackboneConfig(image_size=64, width=64, grid=4, keypoints=8, vision_depth=1, fusion_depth=1),
    )
    base = VLA(cfg)
    save_checkpoint(base, tmp_path / "pre")
    learner = load_checkpoint(tmp_path / "pre")
    with torch.no_grad():  # a head that acts differently: a constant push right
        learner.expert.action_out.bias.copy_(torch.tensor([-3.0, 0.0, 0.0]))
    learner.head_version = 4
    head = save_head(learner, tmp_path / "head-000004.safetensors")
    ev = EvalConfig(checkpoint=str(tmp_path / "pre"), episodes=4, num_envs=2, progress=False)
    with_head = evaluate_checkpoint(dataclasses.replace(ev, head=str(head)))
    plain = evaluate_checkpoint(ev)
    direct = evaluate(
        vla_chunk_fn(learner, torch.Generator().manual_seed(ev.seed)),
        dataclasses.replace(ev, sim=SimConfig()),
    )
    assert with_head.per_episode == direct.per_episode  # the head file is what the learner ran
    assert [e.final_progress for e in with_head.per_episode] != [e.final_progress for e in plain.per_episode]
    foreign = VLA(cfg)  # another backbone
    foreign.head_version = 1
    other = save_head(foreign, tmp_path / "head-foreign.safetensors")
    with pytest.raises(CheckpointError, match="trained on backbone"):
        evaluate_checkpoint(dataclasses.replace(ev, head=str(other)))
