"""Reward-model metrics on hand-built cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from reward_models.metrics import (
    auroc,
    bootstrap_ci,
    expected_calibration_error,
    f1_at,
    rates_at,
    spearman,
    threshold_for_fpr,
    value_order_correlation,
)


def test_spearman_of_monotone_reversed_and_constant_sequences():
    assert spearman(np.array([1.0, 5, 9, 20]), np.arange(4)) == pytest.approx(1.0)
    assert spearman(np.array([3.0, 2, 1]), np.arange(3)) == pytest.approx(-1.0)
    # ranks [1, 3, 2] vs [1, 2, 3]: 1 - 6 * 2 / (3 * 8) = 0.5
    assert spearman(np.array([0.1, 0.9, 0.5]), np.arange(3)) == pytest.approx(0.5)
    assert np.isnan(spearman(np.ones(4), np.arange(4)))
    with pytest.raises(ValueError):
        spearman(np.ones(3), np.ones(4))


def test_voc_averages_over_episodes_and_the_shuffled_control_uses_true_times():
    assert value_order_correlation([np.array([0.0, 0.5, 1.0]), np.array([1.0, 0.5, 0.0])]) == pytest.approx(
        0.0
    )
    # a model reading images predicts each frame's own progress whatever order it is fed in
    perm = np.array([2, 0, 3, 1])
    assert value_order_correlation([perm / 3.0], [perm]) == pytest.approx(1.0)
    # a model that counts steps predicts the position, uncorrelated with the true times here
    assert value_order_correlation([np.arange(4) / 3.0], [np.array([1, 3, 0, 2])]) == pytest.approx(0.0)


def test_auroc_by_hand_with_ties_and_a_missing_class():
    # positives 0.35, 0.8; negatives 0.1, 0.4: pairs won 1+1, 0+1 -> 3/4
    assert auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)
    assert auroc(np.array([0.5, 0.5]), np.array([0, 1])) == pytest.approx(0.5)
    assert auroc(np.array([0.0, 1.0]), np.array([0, 1])) == 1.0
    assert np.isnan(auroc(np.array([0.1, 0.2]), np.array([1, 1])))


def test_f1_rates_and_the_low_fpr_threshold():
    s, y = np.array([0.9, 0.8, 0.7, 0.3, 0.2]), np.array([1, 0, 1, 0, 1])
    # >= 0.5: tp 2, fp 1, fn 1 -> F1 = 4 / 6
    assert f1_at(s, y, 0.5) == pytest.approx(2 / 3)
    assert rates_at(s, y, 0.5) == (pytest.approx(2 / 3), pytest.approx(0.5))
    thr = threshold_for_fpr(s, y, max_fpr=0.0)
    assert 0.8 < thr < 0.9 and rates_at(s, y, thr)[1] == 0.0
    negs = np.linspace(0, 1, 100)
    thr = threshold_for_fpr(np.r_[negs, 2.0], np.r_[np.zeros(100), 1], max_fpr=0.02)
    assert rates_at(np.r_[negs, 2.0], np.r_[np.zeros(100), 1], thr)[1] == pytest.approx(0.02)
    with pytest.raises(ValueError, match="no negative"):
        threshold_for_fpr(np.ones(2), np.ones(2), 0.02)


def test_ece_is_zero_when_calibrated_and_the_gap_when_not():
    p = np.array([0.2] * 5 + [0.8] * 5)
    y = np.array([1, 0, 0, 0, 0, 1, 1, 1, 1, 0])
    assert expected_calibration_error(p, y) == pytest.approx(0.0)
    assert expected_calibration_error(np.full(4, 0.9), np.array([1, 0, 1, 0])) == pytest.approx(0.4)


def test_bootstrap_interval_brackets_the_statistic():
    vals = np.arange(50, dtype=float)
    lo, hi = bootstrap_ci(lambda idx: float(vals[idx].mean()), 50, 200, seed=1)
    assert lo < vals.mean() < hi and hi - lo < 20
    assert all(np.isnan(bootstrap_ci(lambda idx: 0.0, 5, 0)))
