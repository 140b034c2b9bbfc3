"""Paired comparisons of methods evaluated on the same episodes (same env seeds, same initial states).

Episode i of method A and episode i of method B start from the same state, so their difference
is what the method changed, not what the draw of states did. The confidence interval of a
difference comes from a paired bootstrap: resample episode indices (within each stratum, e.g.
task x training seed), apply the same indices to both methods, recompute the statistic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EpisodeOutcomes:
    """Per evaluation episode, aligned across methods (index i = the same env seed and stratum)."""

    success: np.ndarray  # bool [N]
    duration_s: np.ndarray  # float [N], robot time of the episode
    stratum: np.ndarray  # int [N], e.g. task x training seed; resampling stays within a stratum

    def __post_init__(self) -> None:
        n = len(self.success)
        if len(self.duration_s) != n or len(self.stratum) != n:
            raise ValueError(
                f"EpisodeOutcomes: success ({n}), duration_s ({len(self.duration_s)}) and stratum "
                f"({len(self.stratum)}) must have one entry per episode"
            )
        if np.any(np.asarray(self.duration_s) <= 0):
            raise ValueError("EpisodeOutcomes: every episode takes robot time > 0")


@dataclass(frozen=True)
class PairedDiff:
    """A − B of one statistic with its paired-bootstrap interval."""

    metric: str  # "success" (rate) or "succ_per_hour"
    diff: float
    lo: float
    hi: float
    n: int  # paired episodes

    @property
    def significant(self) -> bool:
        """The interval excludes zero."""
        return not (self.lo <= 0.0 <= self.hi)

    def text(self, digits: int = 3) -> str:
        """'+0.120 [+0.050, +0.190]', or with ' (n.s.)' when the interval covers zero."""
        s = f"{self.diff:+.{digits}f} [{self.lo:+.{digits}f}, {self.hi:+.{digits}f}]"
        return s if self.significant else s + " (n.s.)"


def success_rate(o: EpisodeOutcomes, idx: np.ndarray | None = None) -> float:
    s = o.success if idx is None else o.success[idx]
    return float(np.mean(s))


def successes_per_hour(o: EpisodeOutcomes, idx: np.ndarray | None = None) -> float:
    s = o.success if idx is None else o.success[idx]
    d = o.duration_s if idx is None else o.duration_s[idx]
    return float(np.sum(s) / (np.sum(d) / 3600.0))


STATISTICS = {"success": success_rate, "succ_per_hour": successes_per_hour}


def _check_paired(a: EpisodeOutcomes, b: EpisodeOutcomes) -> None:
    if len(a.success) != len(b.success) or not np.array_equal(a.stratum, b.stratum):
        raise ValueError(
            f"paired comparison needs the same episodes in the same order: {len(a.success)} vs "
            f"{len(b.success)} episodes, strata equal: {np.array_equal(a.stratum, b.stratum)}"
        )


def paired_bootstrap(
    a: EpisodeOutcomes,
    b: EpisodeOutcomes,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, PairedDiff]:
    """A − B for every statistic in :data:`STATISTICS`, with percentile intervals."""
    _check_paired(a, b)
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(a.stratum == s) for s in np.unique(a.stratum)]
    boots = {m: np.empty(n_boot) for m in STATISTICS}
    for k in range(n_boot):
        idx = np.concatenate([rng.choice(g, size=len(g), replace=True) for g in groups])
        for m, f in STATISTICS.items():
            boots[m][k] = f(a, idx) - f(b, idx)
    q = (1 - confidence) / 2
    out = {}
    for m, f in STATISTICS.items():
        lo, hi = np.quantile(boots[m], [q, 1 - q])
        out[m] = PairedDiff(m, f(a) - f(b), float(lo), float(hi), len(a.success))
    return out
