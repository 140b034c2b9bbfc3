"""Paired-difference statistics of the comparison harness on cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from rlpost.compare.stats import EpisodeOutcomes, paired_bootstrap


def _o(success, duration=10.0, stratum=None) -> EpisodeOutcomes:
    s = np.asarray(success, bool)
    return EpisodeOutcomes(
        s,
        np.broadcast_to(np.asarray(duration, float), s.shape).copy(),
        np.zeros(len(s), int) if stratum is None else np.asarray(stratum),
    )


def test_identical_methods_differ_by_exactly_zero_and_are_not_significant():
    a = _o(np.arange(40) % 3 == 0)
    d = paired_bootstrap(a, a, n_boot=200)
    assert d["success"].diff == d["success"].lo == d["success"].hi == 0.0
    assert not d["success"].significant and d["success"].text().endswith("(n.s.)")


def test_always_against_never_is_a_difference_of_one_with_no_spread():
    d = paired_bootstrap(_o([True] * 30), _o([False] * 30), n_boot=200)
    assert (d["success"].diff, d["success"].lo, d["success"].hi) == (1.0, 1.0, 1.0)
    # 30 successes in 300 s of robot time = 360 per hour, against 0
    assert d["succ_per_hour"].diff == pytest.approx(360.0)
    assert d["success"].significant


def test_a_difference_on_two_of_two_hundred_paired_episodes_is_not_significant():
    base = np.arange(200) % 2 == 0
    better = base.copy()
    better[[1, 3]] = True
    d = paired_bootstrap(_o(better), _o(base), n_boot=1000)
    assert d["success"].diff == pytest.approx(0.01)
    assert d["success"].lo <= 0.0 <= d["success"].hi


def test_pairing_removes_the_spread_of_the_states_drawn():
    # A wins every episode B wins plus 20% more: the paired interval is tight around +0.2 and
    # excludes zero, although the two success rates alone (0.5 vs 0.7) would overlap at n=50.
    rng = np.random.default_rng(0)
    b = rng.random(50) < 0.5
    a = b.copy()
    a[np.flatnonzero(~b)[:10]] = True
    d = paired_bootstrap(_o(a), _o(b), n_boot=2000)
    assert d["success"].diff == pytest.approx(10 / 50)
    assert d["success"].significant and d["success"].lo > 0.05


def test_faster_successes_raise_successes_per_hour_at_the_same_success_rate():
    s = [True, False] * 20
    fast = _o(s, duration=np.where(s, 5.0, 10.0))
    slow = _o(s, duration=10.0)
    d = paired_bootstrap(fast, slow, n_boot=500)
    assert d["success"].diff == 0.0
    # 20 successes: 300 s vs 400 s of robot time -> 240 vs 180 per hour
    assert d["succ_per_hour"].diff == pytest.approx(60.0) and d["succ_per_hour"].significant


def test_resampling_stays_within_strata_and_unpaired_inputs_are_refused():
    strata = np.repeat([0, 1], 20)
    a = _o(strata == 0, stratum=strata)  # wins every episode of stratum 0, none of stratum 1
    b = _o(np.zeros(40, bool), stratum=strata)
    d = paired_bootstrap(a, b, n_boot=300)
    # each stratum keeps its 20 episodes, so the rate is exactly 0.5 in every resample
    assert d["success"].lo == d["success"].hi == 0.5
    with pytest.raises(ValueError, match="same episodes"):
        paired_bootstrap(_o([True] * 5), _o([True] * 6))


def _seeded(effects: list[float], n: int = 400, base: float = 0.4) -> tuple[EpisodeOutcomes, EpisodeOutcomes]:
    """Control at ``base`` and a method at ``base + effect`` per training seed, ``n`` paired episodes each
    (successes spread evenly, so the episodes add no noise of their own)."""

    def spread(p: float) -> np.ndarray:
        return (np.arange(n) * p) % 1.0 > 1.0 - p - 1e-9

    seeds = np.repeat(np.arange(len(effects)), n)
    method = np.concatenate([spread(base + e) for e in effects])
    control = np.concatenate([spread(base)] * len(effects))
    dur = np.ones(len(seeds))
    return EpisodeOutcomes(method, dur, seeds, seeds), EpisodeOutcomes(control, dur, seeds, seeds)


def test_a_margin_one_seed_carries_is_significant_with_seeds_fixed_and_not_once_seeds_are_resampled():
    a, b = _seeded([0.4, 0.0, 0.0, 0.0, 0.0])
    fixed = paired_bootstrap(a, b, n_boot=500)["success"]
    resampled = paired_bootstrap(a, b, n_boot=500, interval="hierarchical")["success"]
    assert fixed.diff == resampled.diff == pytest.approx(0.08)
    assert fixed.significant and not resampled.significant
    assert (fixed.interval, resampled.interval, resampled.seeds, resampled.n) == (
        "stratified",
        "hierarchical",
        5,
        2000,
    )


def test_a_margin_every_seed_shows_stays_significant_when_seeds_are_resampled():
    a, b = _seeded([0.1, 0.12, 0.08, 0.1, 0.1])
    assert paired_bootstrap(a, b, n_boot=500, interval="hierarchical")["success"].significant


def test_an_unknown_interval_is_refused_naming_the_choices():
    a, b = _seeded([0.1])
    with pytest.raises(ValueError, match=r"interval='bayes' is not one of \['hierarchical', 'stratified'\]"):
        paired_bootstrap(a, b, interval="bayes")
