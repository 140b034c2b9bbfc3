"""Returns, advantages and weights, read top to bottom like an algorithm box.

Per-step inputs of one episode (from the episode store and its reward labels):
    reward  r_t   float32 [T]   (REWARD.md: −1/(T_max+C_fail) per step, 0 at success, −C_fail/(...) at failure)
    value   V_t   float32 [T]   the reward model's value of o_t (normalised return, in [−1, 0])
    terminal      bool          the episode ended in the env's sense (success, failure, timeout);
                                an aborted or disconnected episode is cut, not terminal: bootstrap from V.

All functions are pure numpy and undiscounted (γ = 1: values are "minus steps to go").
"""

from __future__ import annotations

import numpy as np

ADVANTAGE_KINDS = ("nstep", "mc", "gae", "progress_delta")


def returns_to_go(reward: np.ndarray, bootstrap: float = 0.0) -> np.ndarray:
    """G_t = Σ_{i≥t} r_i + bootstrap (the bootstrap is V of the state after the last step)."""
    return (np.cumsum(reward[::-1])[::-1] + bootstrap).astype(np.float32)


def nstep_advantage(reward: np.ndarray, value: np.ndarray, k: int, terminal: bool) -> np.ndarray:
    """A_t = Σ_{i<k} r_{t+i} + V(o_{t+k}) − V(o_t), cut at the episode's end (REWARD.md, RECAP).

    k is the number of actions executed from a chunk: the advantage of the chunk that starts at t.
    Past the end, V is 0 for a terminal episode and V(o_{T−1}) for a cut one (an approximation:
    the state after the last step was not observed).
    """
    t_len = len(reward)
    after = 0.0 if terminal else float(value[-1])
    v_ext = np.concatenate([value.astype(np.float64), [after]])
    csum = np.concatenate([[0.0], np.cumsum(reward, dtype=np.float64)])
    t = np.arange(t_len)
    end = np.minimum(t + k, t_len)
    return (csum[end] - csum[t] + v_ext[end] - v_ext[t]).astype(np.float32)


def mc_advantage(reward: np.ndarray, value: np.ndarray, terminal: bool) -> np.ndarray:
    """A_t = G_t − V(o_t), the Monte Carlo return minus the value baseline."""
    bootstrap = 0.0 if terminal else float(value[-1])
    return returns_to_go(reward, bootstrap) - value.astype(np.float32)


def gae_advantage(reward: np.ndarray, value: np.ndarray, terminal: bool, lam: float) -> np.ndarray:
    """GAE(λ) with γ = 1 over per-step TD residuals δ_t = r_t + V_{t+1} − V_t (Schulman et al. 2016).

    λ < 1 spreads the blame of a bad outcome back over the steps before it, e.g. over
    the operator's reaction delay before a takeover.
    """
    after = 0.0 if terminal else float(value[-1])
    v_next = np.concatenate([value[1:], [after]]).astype(np.float64)
    delta = reward + v_next - value
    adv = np.empty(len(reward), np.float64)
    acc = 0.0
    for t in range(len(reward) - 1, -1, -1):
        acc = delta[t] + lam * acc
        adv[t] = acc
    return adv.astype(np.float32)


def progress_delta_advantage(progress: np.ndarray, k: int) -> np.ndarray:
    """A_t = p_{t+k} − p_t: useful before any failure exists to fit a value on."""
    t_len = len(progress)
    end = np.minimum(np.arange(t_len) + k, t_len - 1)
    return (progress[end] - progress).astype(np.float32)


def standardize_per_group(adv: np.ndarray, group: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """(A − mean) / std within each group (task), so one task's scale does not drown another's."""
    out = np.empty_like(adv, dtype=np.float32)
    for g in np.unique(group):
        m = group == g
        a = adv[m]
        out[m] = (a - a.mean()) / (a.std() + eps)
    return out


def advantage_weights(
    adv: np.ndarray, beta: float, w_max: float, top: np.ndarray | None = None
) -> tuple[np.ndarray, float, float]:
    """w = min(exp(A / β), w_max), normalised to mean 1 over the batch (AWR, Peng et al. 2019, eq. 7).

    ``top`` (bool [B]) marks samples that get w_max whatever their advantage (a person's
    corrections under RECAP-style credit). Returns (weights, mean weight before
    normalisation, fraction clipped at w_max). Clipping bounds the variance a few lucky
    samples add; exp is taken in float64 so a large A/β cannot overflow before the clip.
    """
    raw = np.exp(np.minimum(adv.astype(np.float64) / beta, np.log(w_max) + 1.0))
    clipped = raw >= w_max
    w = np.minimum(raw, w_max)
    if top is not None:
        w[top] = w_max
    return (w / w.mean()).astype(np.float32), float(w.mean()), float(clipped.mean())


def effective_sample_size(w: np.ndarray) -> float:
    """(Σw)² / Σw², as a fraction of the batch: 1 = uniform weights (plain imitation)."""
    return float(w.sum() ** 2 / (np.square(w).sum() * len(w))) if len(w) else float("nan")


def top_fraction_indicator(adv: np.ndarray, group: np.ndarray, fraction: float) -> np.ndarray:
    """RECAP's improvement indicator: True for the top ``fraction`` of advantages within each group."""
    out = np.zeros(len(adv), bool)
    for g in np.unique(group):
        m = np.flatnonzero(group == g)
        thresh = np.quantile(adv[m], 1.0 - fraction)
        out[m] = adv[m] >= thresh
    return out
