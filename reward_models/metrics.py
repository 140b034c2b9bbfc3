"""Reward-model metrics as pure functions (numpy + scipy ranks), checked on hand-built cases.

REWARD.md "Metrics worth reporting": value-order correlation, success AUROC, TPR at a
low FPR, F1 at the chosen threshold, calibration error, final progress of successes
vs failures, with episode-level bootstrap intervals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.stats import rankdata


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (ties get average ranks); NaN if either side is constant.

    Raises:
        ValueError: x and y differ in length or have fewer than 2 elements.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError(f"spearman needs two 1-D arrays of equal length >= 2, got {x.shape} and {y.shape}")
    rx, ry = rankdata(x), rankdata(y)
    if np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def value_order_correlation(
    progress: Sequence[np.ndarray], times: Sequence[np.ndarray] | None = None
) -> float:
    """VOC: mean over episodes of Spearman(predicted progress, time) (GVL, arXiv 2411.04549).

    Args:
        progress: per episode, float [T] predictions in the order they were made.
        times: per episode, the true time index of each prediction (default ``arange(T)``);
            pass the permutation for the shuffled-frames control.

    Returns:
        The mean over episodes with a defined correlation (NaN if none).
    """
    vals = []
    for i, p in enumerate(progress):
        t = np.arange(len(p)) if times is None else times[i]
        if len(p) >= 2:
            r = spearman(p, t)
            if not np.isnan(r):
                vals.append(r)
    return float(np.mean(vals)) if vals else float("nan")


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve = P(score of a random positive > a random negative), ties count 1/2.

    Returns NaN when one class is absent.
    """
    s, y = np.asarray(scores, np.float64), np.asarray(labels).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)  # Mann-Whitney U from average ranks
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def confusion(scores: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[int, int, int, int]:
    """(tp, fp, tn, fn) of ``score >= threshold``."""
    pred = np.asarray(scores) >= threshold
    y = np.asarray(labels).astype(bool)
    return int((pred & y).sum()), int((pred & ~y).sum()), int((~pred & ~y).sum()), int((~pred & y).sum())


def f1_at(scores: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    """F1 of ``score >= threshold`` (0 when there are no true positives)."""
    tp, fp, _, fn = confusion(scores, labels, threshold)
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def rates_at(scores: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[float, float]:
    """(TPR, FPR) of ``score >= threshold`` (NaN for an absent class)."""
    tp, fp, tn, fn = confusion(scores, labels, threshold)
    tpr = tp / (tp + fn) if tp + fn else float("nan")
    fpr = fp / (fp + tn) if fp + tn else float("nan")
    return tpr, fpr


def threshold_for_fpr(scores: np.ndarray, labels: np.ndarray, max_fpr: float) -> float:
    """The lowest threshold whose FPR (``score >= threshold``) is at most ``max_fpr``.

    HIL-SERL (arXiv 2410.21845) found false positives of the success detector the main
    failure in practice, so the threshold is set by the negatives, not by F1.

    Raises:
        ValueError: no negatives to set it from.
    """
    s, y = np.asarray(scores, np.float64), np.asarray(labels).astype(bool)
    neg = np.sort(s[~y])[::-1]
    if len(neg) == 0:
        raise ValueError("threshold_for_fpr: no negative examples to bound the false-positive rate on")
    allowed = int(np.floor(max_fpr * len(neg) + 1e-9))  # negatives that may score >= threshold
    if allowed >= len(neg):
        return float(neg[-1])
    # Strictly above the (allowed+1)-th highest negative, so at most `allowed` negatives pass.
    return float(np.nextafter(neg[allowed], np.inf))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """ECE: sum over equal-width probability bins of |mean(p) - mean(y)| weighted by bin share.

    Returns NaN for empty input.
    """
    p, y = np.asarray(probs, np.float64), np.asarray(labels, np.float64)
    if len(p) == 0:
        return float("nan")
    idx = np.minimum((p * bins).astype(int), bins - 1)
    err = 0.0
    for b in range(bins):
        sel = idx == b
        if sel.any():
            err += sel.mean() * abs(p[sel].mean() - y[sel].mean())
    return float(err)


def bootstrap_ci(
    stat: Callable[[np.ndarray], float], n_items: int, resamples: int, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of ``stat(indices)`` over episode-level resamples with replacement.

    ``stat`` receives int64 [n_items] indices into the episodes and returns a number (NaNs
    are dropped). Returns (NaN, NaN) when ``resamples`` is 0 or every resample gives NaN.
    """
    if resamples <= 0 or n_items == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    vals = np.array([stat(rng.integers(0, n_items, n_items)) for _ in range(resamples)], np.float64)
    vals = vals[~np.isnan(vals)]
    if len(vals) == 0:
        return (float("nan"), float("nan"))
    a = (1 - level) / 2
    return (float(np.quantile(vals, a)), float(np.quantile(vals, 1 - a)))
