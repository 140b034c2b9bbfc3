"""The VLA does what the learner and the actors rely on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlpost.policy import VLA, ObsBatch, PolicyConfig, Prefix, TinyBackboneConfig
from rlpost.policy.action_expert import COND_NEGATIVE, COND_POSITIVE
from rlpost.schema import Observation, SchemaError


def test_encode_gives_prefix_with_padding_masked_and_sample_gives_a_chunk(small_policy_cfg, obs_batch):
    vla = VLA(small_policy_cfg(cameras=["top", "wrist"]))
    batch = obs_batch(b=3, cams=("top", "wrist"), size=(40, 48))
    batch.instructions[1] = "x"  # shortest: most padding
    prefix = vla.encode(batch)
    cfg = vla.cfg.tiny
    image_tokens = 2 * (cfg.grid**2 + cfg.keypoints)
    assert prefix.tokens.shape == (3, image_tokens + cfg.max_text_len, cfg.width)
    assert prefix.tokens.dtype == torch.float32
    assert prefix.mask[:, :image_tokens].all()
    # BOS + 1 byte + EOS are real, the rest of the text slots are padding
    assert prefix.mask[1, image_tokens:].sum() == 3
    assert prefix.mask[0, image_tokens:].sum() == len(batch.instructions[0].encode()) + 2
    chunk = vla.sample(prefix, batch.state)
    assert chunk.shape == (3, vla.cfg.horizon, vla.cfg.action_dim)
    assert torch.isfinite(chunk).all()


def test_padding_does_not_change_the_prefix_of_real_tokens(small_policy_cfg, obs_batch):
    vla = VLA(small_policy_cfg()).eval()
    batch = obs_batch(b=2)
    alone = vla.encode(ObsBatch({"top": batch.images["top"][:1]}, batch.state[:1], batch.instructions[:1]))
    together = vla.encode(batch)
    m = alone.mask[0]
    torch.testing.assert_close(alone.tokens[0][m], together.tokens[0][m], atol=1e-5, rtol=1e-5)


def test_sample_reuses_the_prefix_and_matches_reencoding_at_every_step(small_policy_cfg, obs_batch):
    vla = VLA(small_policy_cfg()).eval()
    batch = obs_batch()
    prefix = vla.encode(batch)
    noise = torch.randn(4, vla.cfg.horizon, vla.cfg.action_dim)
    calls = 0
    original = vla.expert.prefix_kv

    def counting(p: Prefix):
        nonlocal calls
        calls += 1
        return original(p)

    vla.expert.prefix_kv = counting
    fast = vla.sample(prefix, batch.state, noise=noise, num_steps=10)
    assert calls == 1  # keys/values of the prefix computed once per chunk
    slow = vla.sample(prefix, batch.state, noise=noise, num_steps=10, reuse_prefix=False)
    assert calls == 11
    torch.testing.assert_close(fast, slow)


def test_overfitting_a_tiny_dataset_lowers_the_loss_and_sample_reproduces_the_chunks(
    small_policy_cfg, obs_batch
):
    torch.manual_seed(0)
    vla = VLA(small_policy_cfg())
    batch = obs_batch(b=4)
    target = torch.tensor(np.random.default_rng(1).uniform(-1, 1, (4, 8, 2)), dtype=torch.float32)
    vla.backbone.freeze()
    prefix = vla.encode(batch)
    rep = 16  # many noise draws per memorised chunk in each step
    big = Prefix(prefix.tokens.repeat(rep, 1, 1), prefix.mask.repeat(rep, 1))
    state, actions = np.tile(batch.state, (rep, 1)), target.repeat(rep, 1, 1)
    opt = torch.optim.AdamW(vla.head_parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 500)
    losses = []
    for _ in range(500):
        loss = vla.flow_loss(big, state, actions).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    assert np.mean(losses[-20:]) < 0.2 * np.mean(losses[:20])
    vla.eval()
    sampled = vla.sample(vla.encode(batch), batch.state)
    assert (sampled - target).abs().mean() < 0.08
    assert (sampled - target).abs().max() < 0.3


def test_frozen_backbone_is_bit_identical_after_20_head_updates(small_policy_cfg, obs_batch):
    vla = VLA(small_policy_cfg())
    vla.backbone.freeze()
    before = {k: v.clone() for k, v in vla.backbone.state_dict().items()}
    head_before = {k: v.clone() for k, v in vla.expert.state_dict().items()}
    # The optimiser sees every parameter, with weight decay: a frozen backbone must still not move.
    opt = torch.optim.AdamW(vla.parameters(), lr=1e-2, weight_decay=0.1)
    vla.train()
    batch = obs_batch()
    for _ in range(20):
        loss = vla.flow_loss(vla.encode(batch), batch.state, torch.randn(4, 8, 2)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert not vla.backbone.training
    assert all(not p.requires_grad for p in vla.backbone.parameters())
    for k, v in vla.backbone.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert any(not torch.equal(v, head_before[k]) for k, v in vla.expert.state_dict().items())


def test_weights_scale_the_per_sample_loss_and_action_mask_ignores_padded_steps(small_policy_cfg, obs_batch):
    vla = VLA(small_policy_cfg())
    batch = obs_batch()
    prefix = vla.encode(batch)
    actions = torch.randn(4, 8, 2)
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731 - same noise and tau for each call
    plain = vla.flow_loss(prefix, batch.state, actions, generator=g())
    w = torch.tensor([0.0, 1.0, 2.0, 0.5])
    torch.testing.assert_close(
        vla.flow_loss(prefix, batch.state, actions, weights=w, generator=g()), plain * w
    )
    mask = torch.ones(4, 8, dtype=torch.bool)
    mask[:, 4:] = False
    garbage = actions.clone()
    garbage[:, 4:] = 1e3  # past the episode's end: must not matter
    masked_a = vla.flow_loss(prefix, batch.state, actions, action_mask=mask, generator=g())
    masked_b = vla.flow_loss(prefix, batch.state, garbage, action_mask=mask, generator=g())
    torch.testing.assert_close(masked_a, masked_b)


def test_advantage_indicator_changes_the_velocity_and_needs_use_cond(small_policy_cfg, obs_batch):
    from rlpost.policy import ExpertConfig

    plain = VLA(small_policy_cfg())
    batch = obs_batch()
    with pytest.raises(ValueError, match="use_cond"):
        plain.flow_loss(
            plain.encode(batch), batch.state, torch.randn(4, 8, 2), cond=torch.ones(4, dtype=torch.long)
        )
    vla = VLA(small_policy_cfg(expert=ExpertConfig(width=64, depth=2, use_cond=True))).eval()
    torch.nn.init.normal_(vla.expert.action_out.weight)  # a trained-looking head so outputs differ
    prefix = vla.encode(batch)
    noise = torch.randn(4, 8, 2)
    pos = vla.sample(prefix, batch.state, noise=noise, cond=torch.full((4,), COND_POSITIVE))
    neg = vla.sample(prefix, batch.state, noise=noise, cond=torch.full((4,), COND_NEGATIVE))
    guided = vla.sample(prefix, batch.state, noise=noise, cond=torch.full((4,), COND_POSITIVE), guidance=3.0)
    assert not torch.allclose(pos, neg)
    assert not torch.allclose(pos, guided)


def test_act_on_one_observation_returns_a_chunk_in_robot_units(small_policy_cfg):
    from rlpost.policy import NormStats

    vla = VLA(small_policy_cfg()).eval()
    vla.set_norm_stats(
        NormStats.identity(2), NormStats(np.array([5.0, -5.0], np.float32), np.full(2, 1e-6, np.float32))
    )
    obs = Observation({"top": np.zeros((32, 32, 3), np.uint8)}, np.zeros(2, np.float32), "touch red")
    chunk = vla.act(obs)
    assert chunk.shape == (8, 2) and chunk.dtype == np.float32
    # zero-initialised output layer: the velocity is 0, so the chunk is noise*std + mean; std is floored
    assert np.all(np.abs(chunk - np.array([5.0, -5.0])) < 0.1)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (
            lambda b: b.images.__setitem__("top", b.images["top"][..., :2]),
            r"images\['top'\] has shape \(4, 32, 32, 2\)",
        ),
        (
            lambda b: b.images.__setitem__("top", b.images["top"].astype(np.float32)),
            r"images\['top'\].*dtype",
        ),
        (
            lambda b: b.images.__setitem__("side", b.images.pop("top")),
            r"cameras \['side'\].*expects \['top'\]",
        ),
        (lambda b: b.state.__setitem__((1, 0), np.nan), r"state contains NaN"),
        (
            lambda b: setattr(b, "state", b.state[:, :1]),
            r"state has shape \(4, 1\), expected \[B, S\] = \(4, 2\)",
        ),
    ],
)
def test_bad_observations_raise_errors_naming_the_field_and_shapes(
    small_policy_cfg, obs_batch, mutate, match
):
    vla = VLA(small_policy_cfg())
    batch = obs_batch()
    mutate(batch)
    with pytest.raises(SchemaError, match=match):
        vla.encode(batch)


def test_wrong_action_dimension_or_nan_actions_are_refused_naming_the_shapes(small_policy_cfg, obs_batch):
    vla = VLA(small_policy_cfg())
    batch = obs_batch()
    prefix = vla.encode(batch)
    with pytest.raises(
        SchemaError, match=r"actions has shape \(4, 8, 3\), expected \[B, H, A\] = \(4, 8, 2\)"
    ):
        vla.flow_loss(prefix, batch.state, torch.zeros(4, 8, 3))
    bad = torch.zeros(4, 8, 2)
    bad[2, 3, 1] = float("inf")
    with pytest.raises(SchemaError, match="actions contain NaN/Inf"):
        vla.flow_loss(prefix, batch.state, bad)


def test_an_instruction_longer_than_the_tokenizer_takes_is_an_error_not_a_cut(small_policy_cfg, obs_batch):
    vla = VLA(small_policy_cfg())
    batch = obs_batch(b=1)
    batch.instructions[0] = "pick " * 40
    with pytest.raises(
        ValueError,
        match=r"instruction 0 is 200 bytes; the tiny backbone takes at most 62 .*pretrain\.policy\.tiny\.max_text_len",
    ):
        vla.encode(batch)


def test_config_typos_suggest_the_nearest_name():
    with pytest.raises(ValueError, match="did you mean 'tiny'"):
        PolicyConfig(backbone="tyni", action_dim=2)


def test_film_lets_the_instruction_steer_the_image_keypoints(small_policy_cfg, obs_batch):
    from rlpost.policy import TinyBackboneConfig

    tiny = TinyBackboneConfig(
        image_size=32, width=64, grid=4, keypoints=8, vision_depth=1, fusion_depth=0, film=True
    )
    vla = VLA(small_policy_cfg(tiny=tiny)).eval()
    batch = obs_batch(b=2)
    batch.images["top"][1] = batch.images["top"][0]  # same image, different instructions
    image_tokens = tiny.grid**2 + tiny.keypoints
    # FiLM starts as the identity: the image tokens ignore the text ...
    p = vla.encode(batch)
    torch.testing.assert_close(p.tokens[0, :image_tokens], p.tokens[1, :image_tokens])
    # ... and once trained they can depend on it
    torch.nn.init.normal_(vla.backbone.camera_encoders["top"].film.weight, std=0.5)
    p = vla.encode(batch)
    assert not torch.allclose(p.tokens[0, :image_tokens], p.tokens[1, :image_tokens])


def test_state_keep_feeds_only_the_chosen_state_dims_to_the_expert(small_policy_cfg, obs_batch):
    vla = VLA(small_policy_cfg(state_dim=3, state_keep=[0, 2])).eval()
    batch = obs_batch(state_dim=3)
    prefix = vla.encode(batch)
    noise = torch.randn(4, 8, 2)
    a = vla.sample(prefix, batch.state, noise=noise)
    batch.state[:, 1] += 100.0  # a left-out dim (e.g. a velocity) cannot change the actions
    torch.testing.assert_close(vla.sample(prefix, batch.state, noise=noise), a)
    assert vla.expert.state_proj.in_features == 2
    with pytest.raises(ValueError, match="state_keep"):
        small_policy_cfg(state_dim=3, state_keep=[0, 3])


def test_a_later_backbone_option_at_its_neutral_value_keeps_the_fingerprint():
    # Reward models and feature caches are keyed by the fingerprint: adding an option (film)
    # must not orphan those of backbones that do not use it.
    import hashlib
    import json

    from rlpost.policy.tiny_backbone import TinyBackbone

    torch.manual_seed(0)
    bb = TinyBackbone(
        TinyBackboneConfig(image_size=32, width=32, grid=4, keypoints=4, vision_depth=1, fusion_depth=1),
        ("top",),
    )
    old_style = bb.config_dict()
    del old_style["cfg"]["film"]
    h = hashlib.sha256(json.dumps(old_style, sort_keys=True).encode())
    for name, t in sorted(bb.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to(torch.float32).contiguous().numpy().tobytes())
    assert bb.fingerprint() == h.hexdigest()[:16]
    with_film = TinyBackbone(
        TinyBackboneConfig(
            image_size=32, width=32, grid=4, keypoints=4, vision_depth=1, fusion_depth=1, film=True
        ),
        ("top",),
    )
    assert with_film.fingerprint() != bb.fingerprint()
