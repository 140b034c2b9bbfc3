"""The update rules as registered modules: the registry, and each rule's known answers on hand-built batches."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from learner.config import LearnerConfig
from learner.replay import ReplayBatch
from learner.rules import RULES, batch_loss, make_rule
from learner.rules.adv_conditioned import AdvConditionedConfig, condition_indicator
from learner.rules.awfm import batch_weights
from learner.rules.fpo import FPOConfig
from learner.rules.imitation import CuratedConfig
from learner.rules.steer_distill import SteerDistillConfig
from rlpost.policy import VLA
from rlpost.policy.action_expert import COND_NEGATIVE, COND_POSITIVE
from rlpost.schema import SchemaError


def _batch(adv, human=None, task=None) -> ReplayBatch:
    b = len(adv)
    return ReplayBatch(
        keys=[("e", i) for i in range(b)],
        state=np.zeros((b, 2), np.float32),
        actions=np.zeros((b, 8, 2), np.float32),
        action_mask=np.ones((b, 8), bool),
        adv=np.asarray(adv, np.float32),
        human=np.zeros(b, bool) if human is None else np.asarray(human, bool),
        task=np.array(["t"] * b) if task is None else np.asarray(task),
        source=np.array(["autonomous"] * b),
    )


def test_every_mode_is_a_registered_rule_whose_settings_groups_exist_in_the_learner_config():
    cfg = LearnerConfig()
    assert set(RULES) == {
        "awfm",
        "adv_conditioned",
        "curated",
        "bc_all",
        "takeovers",
        "steer",
        "steer_distill",
        "fpo",
    }
    for name, rule in RULES.items():
        assert make_rule(dataclasses.replace(cfg, mode=name)).name == name
        for group in rule.uses:
            assert dataclasses.is_dataclass(getattr(cfg, group)), (name, group)


def test_an_unknown_mode_suggests_the_nearest_rule():
    with pytest.raises(ValueError, match="did you mean 'awfm'"):
        LearnerConfig(mode="awmf")


def test_awfm_weights_are_clipped_exponentials_of_standardised_advantages_with_a_persons_steps_on_top():
    # adv [-1, 0, 1, 2] standardises to (a - 0.5) / std; beta 1, w_max 2: exp clips at 2
    adv = np.array([-1.0, 0.0, 1.0, 2.0])
    z = (adv - adv.mean()) / adv.std()
    raw = np.minimum(np.exp(z), 2.0)
    w, stats = batch_weights(_batch(adv), beta=1.0, w_max=2.0, human_credit="positive")
    np.testing.assert_allclose(w, raw / raw.mean(), rtol=1e-5)
    assert stats["learner/clipped_frac"] == 0.25
    w_h, _ = batch_weights(_batch(adv, human=[True, 0, 0, 0]), beta=1.0, w_max=2.0, human_credit="positive")
    assert w_h[0] == pytest.approx(w_h.max())  # the worst advantage, a person's step: the top weight
    w_v, _ = batch_weights(_batch(adv, human=[True, 0, 0, 0]), beta=1.0, w_max=2.0, human_credit="valued")
    np.testing.assert_allclose(w_v, w, rtol=1e-6)


def test_takeovers_weighs_a_persons_steps_w_max_and_everything_else_one(small_policy_cfg, obs_batch):
    torch.manual_seed(0)
    vla = VLA(small_policy_cfg())
    prefix = vla.encode(obs_batch(4))
    rule = make_rule(LearnerConfig(mode="takeovers", w_max=4.0))
    batch = _batch([9.0, -9.0, 0.0, 0.0], human=[True, True, False, False])  # advantages are ignored
    _, metrics = batch_loss(rule, vla, prefix, batch, np.random.default_rng(0), 0)
    w = np.array([4.0, 4.0, 1.0, 1.0]) / 2.5
    assert metrics["learner/ess"] == pytest.approx(w.sum() ** 2 / (np.square(w).sum() * 4), rel=1e-5)


def test_the_imitation_rules_are_plain_flow_matching_and_only_curated_keeps_successes(
    small_policy_cfg, obs_batch
):
    torch.manual_seed(0)
    vla = VLA(small_policy_cfg())
    prefix = vla.encode(obs_batch(4))
    batch = _batch([np.nan] * 4)  # the controls read no advantages: NaN labels are fine
    for name in ("bc_all", "curated"):
        torch.manual_seed(3)
        loss, _ = batch_loss(
            make_rule(LearnerConfig(mode=name)), vla, prefix, batch, np.random.default_rng(0), 0
        )
        torch.manual_seed(3)
        want = vla.flow_loss(
            prefix, batch.state, batch.actions, action_mask=torch.from_numpy(batch.action_mask)
        )
        assert loss.item() == pytest.approx(want.mean().item())
    assert RULES["curated"].successes_only and not RULES["bc_all"].successes_only
    with pytest.raises(ValueError, match=r"learner.curated.fastest=0"):
        CuratedConfig(fastest=0.0)


def test_advantage_based_rules_refuse_a_batch_without_advantages(small_policy_cfg, obs_batch):
    vla = VLA(small_policy_cfg())
    prefix = vla.encode(obs_batch(2))
    with pytest.raises(SchemaError, match=r"advantage is NaN/Inf at \(episode, t\) \[\('e', 1\)\]"):
        batch_loss(
            make_rule(LearnerConfig()), vla, prefix, _batch([0.0, np.nan]), np.random.default_rng(0), 0
        )


def test_adv_conditioned_marks_the_top_fraction_per_task_and_a_persons_steps_positive():
    batch = _batch([1, 2, 3, 4, 10, 20, 30, 40], human=[1, 0, 0, 0, 0, 0, 0, 0], task=["a"] * 4 + ["b"] * 4)
    cfg = AdvConditionedConfig(positive_fraction=0.25, cond_dropout=0.0)
    cond = condition_indicator(batch, cfg, "positive", np.random.default_rng(0))
    pos, neg = COND_POSITIVE, COND_NEGATIVE
    assert cond.tolist() == [pos, neg, neg, pos, neg, neg, neg, pos]
    with pytest.raises(ValueError, match=r"learner\.adv_conditioned\.positive_fraction=1"):
        AdvConditionedConfig(positive_fraction=1.0)


def test_steer_distill_distils_the_last_fraction_of_each_publish_period():
    cfg = LearnerConfig(
        mode="steer_distill", publish_every=10, steer_distill=SteerDistillConfig(fraction=0.3)
    )
    rule = make_rule(cfg)
    assert [s for s in range(20) if rule.distilling(s)] == [7, 8, 9, 17, 18, 19]
    with pytest.raises(ValueError, match="publish_every >= 2"):
        LearnerConfig(mode="steer_distill", publish_every=1)


def test_fpo_starts_from_the_shipped_head_so_its_first_ratio_is_one(small_policy_cfg, obs_batch):
    torch.manual_seed(0)
    vla = VLA(small_policy_cfg())
    prefix = vla.encode(obs_batch(4))
    rule = make_rule(LearnerConfig(mode="fpo", fpo=FPOConfig(samples=2)))
    with pytest.raises(ValueError, match="reference"):
        rule.loss(vla, prefix, _batch([1.0, -1.0, 0.5, 0.0]), np.random.default_rng(0), 0)
    rule.start(vla, vla)
    loss, metrics = batch_loss(rule, vla, prefix, _batch([1.0, -1.0, 0.5, 0.0]), np.random.default_rng(0), 0)
    assert metrics["learner/fpo_ratio_mean"] == pytest.approx(1.0) and loss.item() == pytest.approx(
        0.0, abs=1e-6
    )


@pytest.mark.parametrize("mode", ["adv_conditioned", "steer"])
def test_what_a_rule_adds_to_the_policy_changes_nothing_until_trained(mode, small_policy_cfg, obs_batch):
    torch.manual_seed(0)
    vla = VLA(small_policy_cfg())
    with torch.no_grad():  # as if pretrained (a fresh head's output layer is zero: no velocity at all)
        vla.expert.action_out.weight.normal_(0.0, 0.1)
    prepared = make_rule(LearnerConfig(mode=mode)).prepare(vla)
    assert prepared is not vla
    batch = obs_batch(3)
    torch.testing.assert_close(
        prepared.act_batch(batch, generator=torch.Generator().manual_seed(2)),
        vla.act_batch(batch, generator=torch.Generator().manual_seed(2)),
    )
    if mode == "adv_conditioned":  # the indicator's embedding starts at zero: no effect with it given
        prefix, actions = vla.encode(batch), np.zeros((3, 8, 2), np.float32)
        with_cond = prepared.flow_loss(
            prefix,
            batch.state,
            actions,
            cond=torch.full((3,), COND_POSITIVE),
            generator=torch.Generator().manual_seed(4),
        )
        plain = vla.flow_loss(prefix, batch.state, actions, generator=torch.Generator().manual_seed(4))
        torch.testing.assert_close(with_cond, plain)
