"""Advantage math against numbers computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from learner.advantages import (
    advantage_weights,
    effective_sample_size,
    gae_advantage,
    mc_advantage,
    nstep_advantage,
    progress_delta_advantage,
    returns_to_go,
    standardize_per_group,
    top_fraction_indicator,
)

# A 4-step successful episode: −1 per step, 0 at the success step; value = minus steps to go.
R = np.array([-1.0, -1.0, -1.0, 0.0], np.float32)
V = np.array([-3.0, -2.0, -1.0, 0.0], np.float32)


def test_returns_to_go_sum_the_future_rewards():
    np.testing.assert_array_equal(returns_to_go(R), [-3, -2, -1, 0])
    np.testing.assert_array_equal(returns_to_go(R, bootstrap=-5.0), [-8, -7, -6, -5])


def test_nstep_advantage_of_a_perfect_value_is_zero_and_cut_at_the_end():
    np.testing.assert_allclose(nstep_advantage(R, V, k=2, terminal=True), [0, 0, 0, 0])
    # a value that is too pessimistic at t=0 by 1: the first chunk looks 1 better than expected
    v = V.copy()
    v[0] = -4.0
    np.testing.assert_allclose(nstep_advantage(R, v, k=2, terminal=True), [1, 0, 0, 0])


def test_nstep_bootstraps_from_the_last_value_when_the_episode_was_cut_not_ended():
    r = np.array([-1.0, -1.0], np.float32)
    v = np.array([-5.0, -4.0], np.float32)
    # terminal: A_1 = r_1 + 0 - V_1 = -1 + 4 = 3 ; cut: A_1 = r_1 + V_1 - V_1 = -1
    np.testing.assert_allclose(nstep_advantage(r, v, k=1, terminal=True), [-1 + -4 + 5, -1 + 0 + 4])
    np.testing.assert_allclose(nstep_advantage(r, v, k=1, terminal=False), [-1 + -4 + 5, -1 - 4 + 4])


def test_monte_carlo_advantage_is_return_minus_value():
    v = np.array([-2.0, -2.0, -2.0, -2.0], np.float32)
    np.testing.assert_allclose(mc_advantage(R, v, terminal=True), [-1, 0, 1, 2])


def test_gae_with_lambda_1_equals_monte_carlo_and_with_0_equals_one_step_td():
    v = np.array([-2.5, -1.0, -1.5, 0.5], np.float32)
    np.testing.assert_allclose(gae_advantage(R, v, True, lam=1.0), mc_advantage(R, v, True), atol=1e-6)
    np.testing.assert_allclose(gae_advantage(R, v, True, lam=0.0), nstep_advantage(R, v, 1, True), atol=1e-6)


def test_progress_delta_looks_k_steps_ahead_and_stops_at_the_last_frame():
    p = np.array([0.0, 0.1, 0.3, 0.6, 1.0], np.float32)
    np.testing.assert_allclose(progress_delta_advantage(p, k=2), [0.3, 0.5, 0.7, 0.4, 0.0], atol=1e-6)


def test_standardize_per_group_keeps_each_task_on_its_own_scale():
    adv = np.array([1.0, 3.0, 100.0, 300.0], np.float32)
    z = standardize_per_group(adv, np.array(["a", "a", "b", "b"]))
    np.testing.assert_allclose(z, [-1, 1, -1, 1], atol=1e-5)


def test_weights_are_exp_adv_over_beta_clipped_and_normalised_to_mean_one():
    adv = np.array([0.0, np.log(2.0), 10.0], np.float32)
    w, mean_raw, clipped = advantage_weights(adv, beta=1.0, w_max=4.0)
    raw = np.array([1.0, 2.0, 4.0])
    np.testing.assert_allclose(w, raw / raw.mean(), rtol=1e-6)
    assert mean_raw == pytest.approx(7 / 3) and clipped == pytest.approx(1 / 3)
    # a person's step gets the top weight whatever its advantage
    w2, _, _ = advantage_weights(np.array([0.0, -50.0]), 1.0, 4.0, top=np.array([False, True]))
    np.testing.assert_allclose(w2, np.array([1.0, 4.0]) / 2.5)


def test_huge_advantages_do_not_overflow():
    w, _, clipped = advantage_weights(np.array([1e6, 0.0]), beta=0.01, w_max=20.0)
    assert np.all(np.isfinite(w)) and clipped == 0.5


def test_effective_sample_size_is_one_for_uniform_weights_and_small_for_one_dominant():
    assert effective_sample_size(np.ones(8)) == pytest.approx(1.0)
    assert effective_sample_size(np.array([100.0, 0.0, 0.0, 0.0])) == pytest.approx(0.25)


def test_top_fraction_indicator_is_per_group():
    adv = np.array([1, 2, 3, 4, 10, 20, 30, 40], np.float32)
    ind = top_fraction_indicator(adv, np.array(["a"] * 4 + ["b"] * 4), fraction=0.25)
    assert ind.tolist() == [False, False, False, True, False, False, False, True]
