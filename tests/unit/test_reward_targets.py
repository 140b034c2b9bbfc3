"""Reward-model targets from outcomes, marks and interventions (REWARD.md's table), on hand-built episodes."""

from __future__ import annotations

import numpy as np
import pytest

from reward_models.config import RewardDef
from reward_models.labeler import shaped_rewards
from reward_models.targets import (
    ROLE_FAILURE,
    ROLE_SUCCESS,
    ROLE_UNKNOWN,
    episode_targets,
    mismatched_instruction,
    rewound_clip,
    segment_returns,
    step_rewards,
    window_index,
)
from rlpost.schema import EpisodeMeta

T_MAX, C = 10, 10.0
NORM = T_MAX + C


def _meta(outcome: str, length: int, **extra: str) -> EpisodeMeta:
    return EpisodeMeta(
        episode_id="e",
        task="tabletop",
        instruction="put the red block in the ring",
        robot_id="r",
        session_id="s",
        source="autonomous",
        outcome=outcome,
        marked_by="env",
        length=length,
        extra=extra,
    )


def test_success_gets_time_progress_success_on_its_last_frame_and_minus_steps_to_go():
    tg = episode_targets(_meta("success", 5), np.zeros(5, bool), T_MAX, C)
    assert tg.role == ROLE_SUCCESS and tg.progress_mask.all()
    np.testing.assert_allclose(tg.progress, [0, 0.25, 0.5, 0.75, 1.0])
    assert tg.success.tolist() == [0, 0, 0, 0, 1] and tg.success_mask.all()
    np.testing.assert_allclose(tg.value, np.array([-4, -3, -2, -1, 0]) / NORM, rtol=1e-6)
    assert (tg.value >= -0.5).all()  # successes lie in [-0.5, 0]


def test_failure_and_timeout_have_no_progress_target_and_pay_the_failure_penalty():
    for outcome in ("failure", "timeout"):
        tg = episode_targets(_meta(outcome, 4), np.zeros(4, bool), T_MAX, C)
        assert tg.role == ROLE_FAILURE and not tg.progress_mask.any()
        assert tg.success.sum() == 0 and tg.success_mask.all()
        np.testing.assert_allclose(tg.value, (np.array([-4, -3, -2, -1]) - C) / NORM, rtol=1e-6)
        assert (tg.value < -0.5).all()


def test_takeover_cuts_the_autonomous_return_with_a_failure_terminal_and_masks_progress():
    interv = np.array([False, False, True, True, False, False])
    tg = episode_targets(_meta("success", 6), interv, T_MAX, C)
    assert not tg.progress_mask.any() and tg.success.tolist() == [0, 0, 0, 0, 0, 1]
    # steps 0-1 autonomous, cut before the takeover at 2: -1, then -1 - C_fail
    np.testing.assert_allclose(tg.value[:2], np.array([-2 - C, -1 - C]) / NORM, rtol=1e-6)
    # human steps 2-3 and the handed-back 4-5 follow the real episode to its success
    np.testing.assert_allclose(tg.value[2:], np.array([-3, -2, -1, 0]) / NORM, rtol=1e-6)


def test_running_and_disconnected_episodes_are_masked_but_an_operator_abort_is_a_failure():
    for meta in (_meta("running", 3), _meta("aborted", 3, recovered="true")):
        tg = episode_targets(meta, np.zeros(3, bool), T_MAX, C)
        assert tg.role == ROLE_UNKNOWN
        assert not (tg.progress_mask.any() or tg.success_mask.any() or tg.value_mask.any())
    assert episode_targets(_meta("aborted", 3), np.zeros(3, bool), T_MAX, C).role == ROLE_FAILURE
    assert (
        episode_targets(_meta("aborted", 3), np.zeros(3, bool), T_MAX, C, aborted_is_failure=False).role
        == ROLE_UNKNOWN
    )


def test_step_rewards_and_returns_by_hand():
    r, ends = step_rewards(3, True, np.zeros(3, bool), T_MAX, C)
    np.testing.assert_allclose(r * NORM, [-1, -1, 0])
    assert ends.tolist() == [False, False, True]
    np.testing.assert_allclose(
        segment_returns(np.array([1.0, 2.0, 3.0]), np.array([False, True, True])), [3, 2, 3]
    )
    with pytest.raises(ValueError, match="intervention"):
        episode_targets(_meta("success", 3), np.zeros(4, bool), T_MAX, C)


def test_window_repeats_the_first_frame_instead_of_revealing_how_early_it_is():
    idx = window_index(np.arange(10), np.array([0, 1, 9]), window=4, stride=2)
    assert idx.tolist() == [[0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 3, 5, 7, 9]]
    perm = np.array([4, 2, 0, 3, 1])  # a clip: frame indices in another order
    assert window_index(perm, np.array([3]), 2, 1).tolist() == [[4, 0, 3]]


def test_rewound_clip_goes_forward_then_back_and_mismatch_picks_another_instruction():
    rng = np.random.default_rng(0)
    for _ in range(20):
        seq, start = rewound_clip(12, rng)
        assert (np.diff(seq[:start]) == 1).all() and (np.diff(seq[start - 1 :]) == -1).all()
        assert start < len(seq) and seq.min() >= 0
    assert mismatched_instruction("a", ["a", "b", "a"], rng) == "b"
    with pytest.raises(ValueError, match="mismatch_fraction=0"):
        mismatched_instruction("a", ["a"], rng)


def test_progress_delta_shaping_telescopes_so_a_failure_at_high_progress_is_not_paid():
    rd = RewardDef(kind="progress_delta", success_bonus=1.0, failure_penalty=1.0)
    progress = np.array([0.1, 0.5, 0.9, 0.95], np.float32)
    fail = shaped_rewards(progress, 3, False, rd)
    assert fail.sum() == pytest.approx(-0.1 - 1.0)  # -phi(o_0) - penalty, whatever progress it reached
    succ = shaped_rewards(progress, 3, True, rd)
    assert succ.sum() == pytest.approx(-0.1 + 1.0)
    np.testing.assert_allclose(succ[:3], [0.4, 0.4, 0.05], atol=1e-6)
    early = shaped_rewards(progress, 1, True, rd)  # success detected at step 1: nothing after it
    assert early[2:].tolist() == [0, 0] and early.sum() == pytest.approx(-0.1 + 1.0)
