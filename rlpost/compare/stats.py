"""Paired comparisons of methods evaluated on the same episodes (same env seeds, same initial states).

Episode i of method A and episode i of method B start from the same state, so their difference
is what the method changed, not what the draw of states did. Two paired bootstraps give a
difference its interval; both apply the same resampled indices to both methods:

    stratified    resample episodes within each stratum (task x training seed [x round]): the
                  interval of these trained heads, with the training seeds held fixed
    hierarchical  resample the training runs (seeds) within each task, then episodes within each
                  drawn run: the interval of the method, since training seeds vary more than
                  evaluation episodes (a margin that vanishes on new seeds was noise)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EpisodeOutcomes:
    """Per evaluation episode, aligned across methods (index i = the same env seed and stratum)."""

    success: np.ndarray  # bool [N]
    duration_s: np.ndarray  # float [N], robot time of the episode
    stratum: np.ndarray  # int [N], e.g. task x training seed; resampling stays within a stratum
    # int [N]: the training run whose head played the episode (task x seed; a run's rounds share it);
    # None: each stratum is its own run
    run: np.ndarray | None = None
    block: np.ndarray | None = None  # int [N]: runs are resampled within a block (the task); None: one

    def __post_init__(self) -> None:
        n = len(self.success)
        sizes = [len(x) for x in (self.duration_s, self.stratum, self.run, self.block) if x is not None]
        if any(k != n for k in sizes):
            raise ValueError(
                f"EpisodeOutcomes: success ({n}), duration_s, stratum, run and block must have one entry "
                f"per episode (got {sizes})"
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
    interval: str = "stratified"  # stratified | hierarchical (see the module docstring)
    seeds: int = 0  # training runs behind the episodes

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


def _runs(o: EpisodeOutcomes) -> np.ndarray:
    return o.stratum if o.run is None else o.run


def _stratified(o: EpisodeOutcomes, rng: np.random.Generator) -> Callable[[], np.ndarray]:
    groups = [np.flatnonzero(o.stratum == s) for s in np.unique(o.stratum)]
    return lambda: np.concatenate([rng.choice(g, size=len(g), replace=True) for g in groups])


def _hierarchical(o: EpisodeOutcomes, rng: np.random.Generator) -> Callable[[], np.ndarray]:
    runs = _runs(o)
    block = np.zeros(len(runs), np.int64) if o.block is None else o.block
    # per block, its runs; per run, its strata's episode indices (a run's rounds stay apart)
    blocks = [np.unique(runs[block == b]) for b in np.unique(block)]
    strata = {r: [np.flatnonzero((runs == r) & (o.stratum == s)) for s in np.unique(o.stratum[runs == r])]
              for r in np.unique(runs)}  # fmt: skip

    def draw() -> np.ndarray:
        picked = [r for rs in blocks for r in rng.choice(rs, size=len(rs), replace=True)]
        return np.concatenate([rng.choice(g, size=len(g), replace=True) for r in picked for g in strata[r]])

    return draw


def paired_bootstrap(
    a: EpisodeOutcomes,
    b: EpisodeOutcomes,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    interval: str = "stratified",
) -> dict[str, PairedDiff]:
    """A − B for every statistic in :data:`STATISTICS`, with percentile intervals (``interval``:
    stratified or hierarchical, see the module docstring)."""
    _check_paired(a, b)
    if interval not in SAMPLERS:
        raise ValueError(f"paired_bootstrap: interval={interval!r} is not one of {sorted(SAMPLERS)}")
    draw = SAMPLERS[interval](a, np.random.default_rng(seed))
    boots = {m: np.empty(n_boot) for m in STATISTICS}
    for k in range(n_boot):
        idx = draw()
        for m, f in STATISTICS.items():
            boots[m][k] = f(a, idx) - f(b, idx)
    q = (1 - confidence) / 2
    seeds = len(np.unique(_runs(a)))
    out = {}
    for m, f in STATISTICS.items():
        lo, hi = np.quantile(boots[m], [q, 1 - q])
        out[m] = PairedDiff(m, f(a) - f(b), float(lo), float(hi), len(a.success), interval, seeds)
    return out


SAMPLERS = {"stratified": _stratified, "hierarchical": _hierarchical}
