"""The main job's before/after line: a paired test over the same evaluation seeds."""

from __future__ import annotations

import pytest

from rlpost.demo import paired_change, paired_text


def _eval(successes: list[bool], seeds: list[int] | None = None) -> dict:
    n = len(successes)
    return {
        "episode_seeds": seeds if seeds is not None else list(range(100, 100 + n)),
        "episode_success": successes,
        "episode_duration_s": [4.0 if s else 8.0 for s in successes],
    }


def test_a_consistent_gain_on_the_same_seeds_is_significant_and_its_size_is_exact():
    before = _eval([False] * 80 + [True] * 20)
    after = _eval([True] * 30 + [False] * 50 + [True] * 20)  # 30 more successes, none lost
    p = paired_change(before, after)
    assert p["success"]["diff"] == pytest.approx(0.30)
    assert 0 < p["success"]["lo"] < 0.30 < p["success"]["hi"] and p["success"]["n"] == 100
    # successes per hour: 20 / (80·8 + 20·4 s) → 50 / (50·8 + 50·4 s)
    assert p["succ_per_hour"]["diff"] == pytest.approx(50 / (600 / 3600) - 20 / (720 / 3600))
    assert "(n.s.)" not in paired_text(p).split("successes/hour")[0]


def test_no_change_is_reported_not_significant():
    before = _eval([True, False] * 50)
    p = paired_change(before, _eval([False, True] * 50))  # same rate, every episode flipped
    assert p["success"]["diff"] == 0.0
    assert "success +0.000" in paired_text(p) and "(n.s.)" in paired_text(p)


def test_unpaired_or_old_results_are_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="different seeds"):
        paired_change(_eval([True] * 4), _eval([True] * 4, seeds=[1, 2, 3, 4]))
    old = {"success_rate": 0.2}
    with pytest.raises(ValueError, match=r"eval_before entry from stages\.json"):
        paired_change(old, _eval([True]))
