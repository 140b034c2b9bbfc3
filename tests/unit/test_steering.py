"""Noise-space steering: flow inversion, the steering net's update, and shipping it with the head."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learner.config import LearnerConfig
from learner.replay import ReplayBatch
from learner.rules import batch_loss, make_rule
from learner.rules.steer import SteerConfig, with_steering
from rlpost.policy import VLA, save_head
from rlpost.policy.checkpoint import load_head_file


def _vla(small_policy_cfg, **kw) -> VLA:
    torch.manual_seed(0)
    vla = VLA(small_policy_cfg(num_steps=16, **kw))
    vla.eval()
    return vla


def _good_and_bad_chunk(vla: VLA, obs_batch, noise: torch.Tensor):
    """One observation twice, the chunks the policy samples from ``noise`` [2, 8, 2], and a replay
    batch giving the first chunk advantage +1 and the second -1."""
    obs = obs_batch(1)
    two = type(obs)(
        {c: np.repeat(v, 2, 0) for c, v in obs.images.items()},
        np.repeat(obs.state, 2, 0),
        obs.instructions * 2,
    )
    prefix = vla.encode(two)
    with torch.no_grad():
        chunks = vla.sample(prefix, two.state, noise=noise)
    batch = ReplayBatch(
        keys=[("e", 0), ("e", 1)],
        state=two.state,
        actions=chunks.numpy(),
        action_mask=np.ones((2, 8), bool),
        adv=np.array([1.0, -1.0], np.float32),
        human=np.zeros(2, bool),
        task=np.array(["t", "t"]),
        source=np.array(["autonomous", "autonomous"]),
    )
    return two, prefix, chunks, batch


def _train_steering(
    vla: VLA, prefix, batch: ReplayBatch, cfg: LearnerConfig, updates: int
) -> dict[str, float]:
    """``updates`` Adam steps of the steering net on one batch; the last step's metrics."""
    opt = torch.optim.Adam(vla.steer.parameters(), lr=3e-3)
    rng, rule = np.random.default_rng(0), make_rule(cfg)
    for step in range(updates):
        loss, metrics = batch_loss(rule, vla, prefix, batch, rng, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return metrics


def test_inverting_a_sampled_chunk_gives_back_its_noise(small_policy_cfg, obs_batch):
    vla = _vla(small_policy_cfg)
    batch = obs_batch(4)
    prefix = vla.encode(batch)
    noise = torch.randn(4, 8, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        actions = vla.sample(prefix, batch.state, noise=noise)
        back = vla.invert(prefix, batch.state, actions)
    # forward and backward Euler are inverses up to O(1/steps); far closer than another draw
    err = (back - noise).abs().mean().item()
    assert err < 0.05, err
    assert (torch.randn(4, 8, 2) - noise).abs().mean().item() > 0.5


def test_a_fresh_steering_net_leaves_the_policy_unchanged_and_actions_stay_finite(
    small_policy_cfg, obs_batch
):
    vla = _vla(small_policy_cfg)
    steered = with_steering(vla, bound=1.5)
    batch = obs_batch(6)
    a = vla.act_batch(batch, generator=torch.Generator().manual_seed(3))
    b = steered.act_batch(batch, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)
    # with a trained (here: random, large) last layer the mean is bounded and the actions finite
    with torch.no_grad():
        for p in steered.steer.mlp[-1].parameters():
            p.normal_(0, 10.0)
        mu = steered.steer_mean(steered.encode(batch), batch.state)
    assert mu.abs().max().item() <= 1.5 + 1e-6
    assert torch.isfinite(steered.act_batch(batch)).all()


def test_the_steer_update_pulls_the_noise_mean_toward_good_chunks_and_leaves_expert_and_backbone(
    small_policy_cfg, obs_batch
):
    vla = with_steering(_vla(small_policy_cfg), bound=2.0)
    vla.backbone.freeze()
    backbone0 = vla.backbone.fingerprint()
    expert0 = {k: v.clone() for k, v in vla.expert.state_dict().items()}
    good, bad = torch.full((8, 2), 1.0), torch.full((8, 2), -1.0)
    two, prefix, _, batch = _good_and_bad_chunk(vla, obs_batch, torch.stack([good, bad]))
    metrics = _train_steering(vla, prefix, batch, LearnerConfig(mode="steer", beta=0.5), updates=150)
    with torch.no_grad():
        mu = vla.steer_mean(prefix, two.state)[0]
    assert (mu - good).abs().mean() < (mu - bad).abs().mean()
    assert mu.mean().item() > 0.3  # toward the good chunk's noise (+1), away from the bad one (-1)
    assert np.isfinite(metrics["learner/loss"])
    assert vla.backbone.fingerprint() == backbone0
    for k, v in vla.expert.state_dict().items():
        assert torch.equal(v, expert0[k]), k


def test_a_steered_head_ships_and_a_plain_robot_policy_grows_the_net_to_act_the_same(
    small_policy_cfg, obs_batch, tmp_path
):
    learner_vla = with_steering(_vla(small_policy_cfg), bound=1.0)
    with torch.no_grad():
        learner_vla.steer.mlp[-1].bias.fill_(0.7)
    path = save_head(learner_vla, tmp_path / "head-3.safetensors")
    robot = _vla(small_policy_cfg)  # what a robot loaded at start: the plain pretrained policy
    robot.load_head(load_head_file(path).tensors, version=3)
    assert robot.steer is not None and robot.cfg.steer_bound == 1.0 and robot.version == 3
    batch = obs_batch(3)
    torch.testing.assert_close(
        robot.act_batch(batch, generator=torch.Generator().manual_seed(5)),
        learner_vla.act_batch(batch, generator=torch.Generator().manual_seed(5)),
    )


def test_fpo_raises_the_likelihood_of_good_chunks_and_lowers_that_of_bad_ones(small_policy_cfg, obs_batch):
    import copy

    from learner.rules.fpo import FPOConfig, fpo_loss

    vla = _vla(small_policy_cfg)
    vla.backbone.freeze()
    noise = torch.randn(2, 8, 2, generator=torch.Generator().manual_seed(0))
    two, prefix, chunks, batch = _good_and_bad_chunk(vla, obs_batch, noise)
    cfg = FPOConfig(samples=8)
    old = copy.deepcopy(vla.expert).requires_grad_(False)
    rng = np.random.default_rng(0)
    loss, m = fpo_loss(vla, old, prefix, batch, cfg, "positive", rng)
    assert m["learner/fpo_ratio_mean"] == pytest.approx(1.0)  # the same head: ratio 1, loss -mean(A) = 0
    assert loss.item() == pytest.approx(0.0, abs=1e-6)

    def flow_losses() -> np.ndarray:
        g = torch.Generator().manual_seed(9)
        with torch.no_grad():
            return np.array(
                [vla.flow_loss(prefix, two.state, chunks, generator=g).numpy() for _ in range(20)]
            ).mean(0)

    before = flow_losses()
    opt = torch.optim.Adam(vla.expert.parameters(), lr=1e-3)
    for _ in range(30):
        loss, m = fpo_loss(vla, old, prefix, batch, cfg, "positive", rng)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = flow_losses()
    # the good chunk became more likely (lower flow loss), the bad one less, relative to each other
    assert (after[0] - before[0]) < (after[1] - before[1])
    assert m["learner/fpo_clipped_frac"] >= 0.0 and np.isfinite(m["learner/loss"])


def test_an_advantage_conditioned_head_loads_into_a_plain_robot_policy_with_its_guidance(
    small_policy_cfg, obs_batch, tmp_path
):
    from learner.rules.adv_conditioned import with_cond_input

    learner_vla = with_cond_input(_vla(small_policy_cfg), guidance=2.5)
    with torch.no_grad():
        learner_vla.expert.cond_embed.weight.normal_(0, 0.5)  # as if trained
    path = save_head(learner_vla, tmp_path / "head-2.safetensors")
    robot = _vla(small_policy_cfg)
    robot.load_head(load_head_file(path).tensors, version=2)
    assert robot.expert.cond_embed is not None and robot.cfg.act_guidance == 2.5
    batch = obs_batch(3)
    torch.testing.assert_close(
        robot.act_batch(batch, generator=torch.Generator().manual_seed(5)),
        learner_vla.act_batch(batch, generator=torch.Generator().manual_seed(5)),
    )


def test_distillation_moves_the_plain_noise_policy_onto_the_steered_one(small_policy_cfg, obs_batch):
    import copy

    from learner.rules.steer_distill import distill_loss

    student = with_steering(_vla(small_policy_cfg), bound=1.5)
    student.backbone.freeze()
    backbone0 = student.backbone.fingerprint()
    teacher = copy.deepcopy(student)
    with torch.no_grad():
        teacher.steer.mlp[-1].bias.fill_(1.2)  # a steered policy that draws well away from the head's own
    steer0 = {k: v.clone() for k, v in student.steer.state_dict().items()}
    batch = obs_batch(4)
    prefix = student.encode(batch)
    replay = ReplayBatch(
        keys=[("e", i) for i in range(4)],
        state=batch.state,
        actions=np.zeros((4, 8, 2), np.float32),  # not used: the teacher's chunks are the targets
        action_mask=np.ones((4, 8), bool),
        adv=np.zeros(4, np.float32),
        human=np.zeros(4, bool),
        task=np.array(["t"] * 4),
        source=np.array(["autonomous"] * 4),
    )

    def gap() -> float:
        g = torch.Generator().manual_seed(11)
        with torch.no_grad():
            own = torch.stack([student.sample(prefix, batch.state, generator=g) for _ in range(8)]).mean(0)
            want = torch.stack([teacher.sample(prefix, batch.state, generator=g) for _ in range(8)]).mean(0)
        return (own - want).abs().mean().item()

    with torch.no_grad():
        student.steer.mlp[-1].bias.zero_()
    before = gap()
    opt = torch.optim.Adam(student.expert.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    for _ in range(150):
        loss, metrics = distill_loss(student, teacher, prefix, replay, rng)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = gap()
    assert after < 0.5 * before, (before, after)
    assert np.isfinite(metrics["learner/distill_loss"])
    assert student.backbone.fingerprint() == backbone0
    for k, v in student.steer.state_dict().items():  # the distillation phase trains the expert only
        assert torch.equal(v, steer0[k]), k


@pytest.mark.parametrize("target", ["executed", "chunk"])
def test_the_steering_net_learns_only_the_positions_its_target_names(small_policy_cfg, obs_batch, target):
    # a replay chunk's actions past `execute` came from the robot's next chunk: with "executed"
    # the steering net leaves their noise alone (plain N(0, I)), with "chunk" (default) it fits them too
    vla = with_steering(_vla(small_policy_cfg), bound=2.0)
    vla.backbone.freeze()
    good, bad = torch.full((8, 2), 1.0), torch.full((8, 2), -1.0)
    two, prefix, _, batch = _good_and_bad_chunk(vla, obs_batch, torch.stack([good, bad]))
    cfg = LearnerConfig(mode="steer", beta=0.5, execute=4, steer=SteerConfig(target=target))
    _train_steering(vla, prefix, batch, cfg, updates=100)
    with torch.no_grad():
        mu = vla.steer_mean(prefix, two.state)[0]
    assert mu[:4].mean().item() > 0.3  # executed positions: toward the good chunk's noise
    if target == "executed":
        assert torch.equal(mu[4:], torch.zeros_like(mu[4:]))
    else:
        assert mu[4:].mean().item() > 0.3


def test_an_unknown_steer_target_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match=r"learner.steer.target.*executed"):
        SteerConfig(target="first")
