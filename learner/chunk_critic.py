"""Fitting the chunk critic off-policy on every stored chunk: demos, takeovers and practice.

A *window* is the k actions executed from step t of a stored episode (k = the robots' actions
per chunk); every t with a full window is one. Its value is the discounted success of going on
from there (rlpost.policy.chunk_critic), learned by TD over chunks (Q-chunking): the reward is 1
at the last step of a successful episode and 0 elsewhere, so

    y(t) = gamma^(n k) * V(s_{t + n k})                 another window starts n chunks on
    y(t) = 1{success} * gamma^(T - 1 - t)               the episode ends within n chunks

where V(s) is what the target ensemble says acting from s is worth: with ``backup="max"`` the
best (by mean - backup_risk * std) of ``candidates`` chunks the head samples at s, i.e. the value
of acting best-of-N from there on; with ``backup="executed"`` the window actually executed next
(the value of whatever behaviour recorded the data). An episode cut short (aborted) has no
terminal reward and bootstraps from its last window.

    data = build_windows(episodes, vla, cache.prefixes, cfg, generator)   # pooled features, chunks, targets
    critic, fit = fit_critic(data, spec, cfg, seed)                        # fit.metrics(): diagnostics

Diagnostics on held-out episodes: success/failure AUC of Q at matched times, ensemble
disagreement, and how much Q varies across the head's own alternative chunks from one state
(if it does not, best-of-N has nothing to choose between).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from rlpost.policy.backbone import Prefix
from rlpost.policy.best_of_n import critic_inputs
from rlpost.policy.chunk_critic import ChunkCritic, ChunkQ, CriticSpec, pool_prefix, score
from rlpost.policy.vla import VLA

log = logging.getLogger(__name__)
PrefixFn = Callable[[Sequence[tuple[str, int]]], Prefix]
BACKUPS = ("max", "executed")


@dataclass
class ChunkCriticConfig:
    """How the chunk critic is fitted (``critic.*`` of `rlpost train-critic`)."""

    chunk: int = 4  # k: actions per window (set it to the robots' actions executed per chunk)
    heads: int = 5  # ensemble size (LayerNorm MLPs on the frozen features)
    width: int = 256
    gamma: float = 0.995  # discount per control step
    nstep: int = 1  # chunks per TD backup
    backup: str = (
        "max"  # "max": best of the head's candidate chunks at the next state; "executed": the next window
    )
    candidates: int = 4  # chunks the head samples per state for the max backup (and the spread diagnostic)
    backup_risk: float = 1.0  # the max backup ranks and values by mean - backup_risk * std (keeps max honest)
    updates: int = 3000
    batch_size: int = 256  # per head; each head draws its own minibatch
    lr: float = 3e-4
    tau: float = 0.005  # target networks: Polyak step per update
    heldout: float = 0.15  # fraction of episodes held out for the diagnostics
    auc_bin_steps: int = 25  # width of the time bins that "matched times" compares within
    stride: int = 1  # a window every `stride` steps (divides chunk; = chunk: only the chunks as executed)

    def __post_init__(self) -> None:
        if self.backup not in BACKUPS:
            raise ValueError(f"critic.backup={self.backup!r} must be one of {list(BACKUPS)}")
        if self.stride >= 1 and self.chunk % self.stride:
            raise ValueError(f"critic.stride={self.stride} must divide critic.chunk={self.chunk}")
        for name in (
            "chunk",
            "heads",
            "width",
            "nstep",
            "candidates",
            "updates",
            "batch_size",
            "auc_bin_steps",
            "stride",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"critic.{name}={getattr(self, name)} must be >= 1")
        if not 0.0 < self.gamma <= 1.0 or not 0.0 < self.tau <= 1.0 or not 0.0 <= self.heldout < 1.0:
            raise ValueError(
                f"critic: gamma={self.gamma}, tau={self.tau} must be in (0, 1], heldout={self.heldout} in [0, 1)"
            )


@dataclass(frozen=True)
class CriticEpisode:
    """What the critic needs of one stored episode."""

    episode_id: str
    state: np.ndarray  # float32 [T, S], robot units
    action: np.ndarray  # float32 [T, A], executed
    success: bool
    terminal: bool  # ended in the env's sense (success, failure, timeout); False: cut short
    source: str = "autonomous"
    intervention: np.ndarray | None = None  # bool [T], a person held control (None: never)


@dataclass(frozen=True)
class Windows:
    """The windows of one episode and how each one's target is formed (see the module docstring)."""

    starts: np.ndarray  # int64 [W], t of each window
    next_start: np.ndarray  # int64 [W], t of the window it bootstraps from, -1 when none
    discount: np.ndarray  # float32 [W], gamma^(steps to next_start) (0 without bootstrap)
    terminal_value: np.ndarray  # float32 [W], the discounted success when the episode ends first


def episode_windows(
    length: int, k: int, n: int, gamma: float, success: bool, terminal: bool, stride: int = 1
) -> Windows:
    """The windows of an episode of ``length`` steps, one every ``stride`` steps (``stride`` divides
    ``k``, so a window's bootstrap window is one too). Pure; the targets' known-answer tests use it."""
    if k % stride:
        raise ValueError(f"critic.stride={stride} must divide critic.chunk={k}")
    last = length - k  # the last t with a full window
    final = last - last % stride if last >= 0 else -1  # the last window start
    rows: list[tuple[int, int, float, float]] = []  # (t, next t, discount, terminal value)
    for t in range(0, final + 1, stride):
        j = t + n * k
        if j <= final:
            rows.append((t, j, gamma ** (j - t), 0.0))
        elif terminal:
            rows.append((t, -1, 0.0, float(success) * gamma ** (length - 1 - t)))
        elif t < final:  # cut short: bootstrap from the last window
            rows.append((t, final, gamma ** (final - t), 0.0))
    cols = list(zip(*rows, strict=True)) if rows else [(), (), (), ()]
    return Windows(
        np.asarray(cols[0], np.int64),
        np.asarray(cols[1], np.int64),
        np.asarray(cols[2], np.float32),
        np.asarray(cols[3], np.float32),
    )


@dataclass
class WindowData:
    """Every window of every episode, as the fit reads them (R rows)."""

    keys: list[tuple[str, int]]  # (episode id, t)
    pooled: Tensor  # float32 [R, 2D]
    state: Tensor  # float32 [R, S'], normalised
    chunk: Tensor  # float32 [R, k, A], normalised executed actions
    next_row: Tensor  # int64 [R], row of the bootstrap window, -1 none
    discount: Tensor  # float32 [R]
    terminal_value: Tensor  # float32 [R]
    candidates: Tensor  # float32 [R, M, k, A], normalised: the head's own chunks at each row's state
    episode: np.ndarray  # int64 [R], index into episode_ids
    success: np.ndarray  # bool [R], the episode's outcome
    terminal: np.ndarray  # bool [R], the episode ended in the env's sense
    episode_ids: list[str] = field(default_factory=list)
    human: np.ndarray | None = None  # bool [R]: a demonstration's window, or one a person acted in

    def __len__(self) -> int:
        return len(self.keys)


@torch.no_grad()
def build_windows(
    episodes: Sequence[CriticEpisode],
    vla: VLA,
    prefixes: PrefixFn,
    cfg: ChunkCriticConfig,
    generator: torch.Generator,
    batch: int = 256,
    progress: bool = True,
) -> WindowData:
    """Pool the features, normalise the windows, sample the head's candidate chunks at every
    window's state (one batched call per ``batch`` rows)."""
    k = cfg.chunk
    if k > vla.cfg.horizon:
        raise ValueError(f"critic.chunk={k} is longer than the policy's chunk ({vla.cfg.horizon} actions)")
    keys, rows_state, rows_chunk, nxt, disc, term, ep_of, succ, termi = [], [], [], [], [], [], [], [], []
    human: list[bool] = []
    for i, ep in enumerate(episodes):
        w = episode_windows(len(ep.action), k, cfg.nstep, cfg.gamma, ep.success, ep.terminal, cfg.stride)
        base = len(keys)
        where = {int(t): base + r for r, t in enumerate(w.starts)}
        keys += [(ep.episode_id, int(t)) for t in w.starts]
        rows_state.append(ep.state[w.starts])
        rows_chunk.append(
            np.stack([ep.action[t : t + k] for t in w.starts])
            if len(w.starts)
            else np.zeros((0, k, ep.action.shape[1]), np.float32)
        )
        nxt += [where[int(j)] if j >= 0 else -1 for j in w.next_start]
        disc.append(w.discount), term.append(w.terminal_value)
        ep_of += [i] * len(w.starts)
        acted = ep.intervention if ep.intervention is not None else np.zeros(len(ep.action), bool)
        human += [ep.source == "demo" or bool(acted[t : t + k].any()) for t in w.starts]
        succ += [ep.success] * len(w.starts)
        termi += [ep.terminal] * len(w.starts)
    if not keys:
        raise ValueError(f"chunk critic: no episode has {k} or more steps; nothing to fit")
    state = torch.from_numpy(np.concatenate(rows_state).astype(np.float32))
    chunk = torch.from_numpy(np.concatenate(rows_chunk).astype(np.float32))
    pooled, state_n, chunk_n, cands = [], [], [], []
    spans = range(0, len(keys), batch)
    for lo in tqdm(spans, desc="critic: features + candidates", disable=not progress, unit="batch"):
        prefix = prefixes(keys[lo : lo + batch])
        s_rows, c_rows = state[lo : lo + batch], chunk[lo : lo + batch]
        pooled.append(pool_prefix(prefix))
        s_n, c_n = critic_inputs(vla, s_rows, c_rows, k)
        state_n.append(s_n), chunk_n.append(c_n)
        sampled = vla.candidates(prefix, s_rows, cfg.candidates, generator)  # [b, M, H, A] robot units
        b, m = sampled.shape[:2]
        cands.append(
            critic_inputs(vla, s_rows.repeat_interleave(m, 0), sampled.flatten(0, 1), k)[1].view(b, m, k, -1)
        )
    return WindowData(
        keys=keys,
        pooled=torch.cat(pooled),
        state=torch.cat(state_n),
        chunk=torch.cat(chunk_n),
        next_row=torch.tensor(nxt, dtype=torch.long),
        discount=torch.from_numpy(np.concatenate(disc)),
        terminal_value=torch.from_numpy(np.concatenate(term)),
        candidates=torch.cat(cands),
        episode=np.asarray(ep_of, np.int64),
        success=np.asarray(succ, bool),
        terminal=np.asarray(termi, bool),
        episode_ids=[ep.episode_id for ep in episodes],
        human=np.asarray(human, bool),
    )


@dataclass
class CriticFit:
    """What one fit of the chunk critic measured (held-out episodes unless named otherwise)."""

    loss: float  # TD loss (binary cross-entropy) of the last updates, training windows
    heldout_loss: float  # the same on held-out windows (NaN without held-out episodes)
    auc_matched: float  # success/failure AUC of Q(s_t, executed window) within time bins (NaN: no pairs)
    disagreement: float  # mean std of Q over the ensemble
    candidate_spread: float  # mean std of Q over the head's candidate chunks from one state
    candidate_gain: float  # mean (best candidate's Q - first candidate's Q): what best-of-N expects
    value_mean: float  # mean Q of the executed windows
    windows: int
    episodes: int
    heldout_episodes: int
    seconds: float = 0.0

    def metrics(self) -> dict[str, float]:
        return {f"critic/{k}": float(v) for k, v in self.__dict__.items()}


def _bootstrap_values(net: nn.Module, data: WindowData, rows: Tensor, cfg: ChunkCriticConfig) -> Tensor:
    """V(s) at ``rows`` float32 [len(rows)] from the target ensemble (see the module docstring)."""
    if cfg.backup == "executed":
        return score(
            torch.sigmoid(net(data.pooled[rows], data.state[rows], data.chunk[rows])), cfg.backup_risk
        ).clamp(0, 1)
    m = data.candidates.shape[1]
    flat = rows.repeat_interleave(m)
    c = data.candidates[rows].flatten(0, 1)
    q = torch.sigmoid(net(data.pooled[flat], data.state[flat], c)).view(-1, len(rows), m)  # [E, b, M]
    return score(q, cfg.backup_risk).amax(-1).clamp(0, 1)


def td_targets(net: nn.Module, data: WindowData, rows: Tensor, cfg: ChunkCriticConfig) -> Tensor:
    """y(t) of each window in ``rows`` (float32), bootstrapping through ``net`` (the target ensemble)."""
    nxt = data.next_row[rows]
    y = data.terminal_value[rows].clone()
    boot = nxt >= 0
    if boot.any():
        with torch.no_grad():
            y[boot] = data.discount[rows][boot] * _bootstrap_values(net, data, nxt[boot], cfg)
    return y


def td_update(
    net: ChunkQ,
    target: ChunkQ,
    opt: torch.optim.Optimizer,
    data: WindowData,
    rows: Tensor,
    cfg: ChunkCriticConfig,
) -> float:
    """One TD step: head e fits its minibatch ``rows[e]`` to targets through ``target``, which then
    moves a Polyak step ``cfg.tau`` toward ``net``. Returns the loss."""
    heads = rows.shape[0]
    y = td_targets(target, data, rows.flatten(), cfg).view(heads, -1)
    bce = nn.functional.binary_cross_entropy_with_logits
    logits = [net.head_logits(e, data.pooled[r], data.state[r], data.chunk[r]) for e, r in enumerate(rows)]
    loss = sum(bce(lg, y[e]) for e, lg in enumerate(logits)) / heads
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()
    with torch.no_grad():
        for p, p_t in zip(net.parameters(), target.parameters(), strict=True):
            p_t.lerp_(p, cfg.tau)
    return float(loss.detach())


def _auc(pos: np.ndarray, neg: np.ndarray) -> tuple[float, int]:
    """(AUC, pairs) of scores of positives against negatives (ties count half)."""
    if not len(pos) or not len(neg):
        return float("nan"), 0
    allv = np.concatenate([pos, neg])
    ranks = allv.argsort().argsort().astype(np.float64) + 1
    # average ranks of ties
    _, inv, counts = np.unique(allv, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    ranks = (sums / counts)[inv]
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg))), len(pos) * len(neg)


def matched_time_auc(q: np.ndarray, t: np.ndarray, success: np.ndarray, bin_steps: int) -> float:
    """AUC of ``q`` for success against failure, within bins of t (``bin_steps`` wide), averaged
    over bins by their number of pairs: a critic must tell outcomes apart at the same time into
    the episode, not just know that late steps of long (failing) episodes are worth less."""
    total, pairs = 0.0, 0
    bins = t // bin_steps
    for b in np.unique(bins):
        sel = bins == b
        auc, n = _auc(q[sel & success], q[sel & ~success])
        if n:
            total, pairs = total + auc * n, pairs + n
    return total / pairs if pairs else float("nan")


def fit_critic(
    data: WindowData, spec: CriticSpec, cfg: ChunkCriticConfig, seed: int, progress: bool = True
) -> tuple[ChunkCritic, CriticFit]:
    """Fit a fresh ensemble to ``data`` by TD over chunks with Polyak target networks."""
    import time

    t0 = time.monotonic()
    rng = np.random.default_rng(seed)
    n_eps = len(data.episode_ids)
    n_held = round(cfg.heldout * n_eps) if n_eps >= 5 else 0
    held = set(rng.choice(n_eps, size=n_held, replace=False).tolist()) if n_held else set()
    is_held = np.isin(data.episode, list(held))
    train_rows = np.flatnonzero(~is_held)
    with torch.random.fork_rng(devices=[]):  # a seeded init without moving the caller's torch RNG
        torch.manual_seed(int(rng.integers(2**31)))
        net = ChunkQ(spec)
    target = copy.deepcopy(net).requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    losses: list[float] = []
    bar = tqdm(
        range(cfg.updates), desc="critic: TD updates", disable=not progress, unit="upd", mininterval=2.0
    )
    for u in bar:
        rows = torch.from_numpy(train_rows[rng.integers(0, len(train_rows), (spec.heads, cfg.batch_size))])
        losses.append(td_update(net, target, opt, data, rows, cfg))
        if u % 200 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-200:]):.4f}")
    critic = ChunkCritic(spec, net.eval())
    fit = diagnose(critic, data, np.flatnonzero(is_held) if held else train_rows, cfg)
    fit.loss, fit.heldout_episodes = float(np.mean(losses[-100:])), len(held)
    if not held:
        fit.heldout_loss = float("nan")
    fit.seconds = time.monotonic() - t0
    return critic, fit


@torch.no_grad()
def diagnose(critic: ChunkCritic, data: WindowData, rows: np.ndarray, cfg: ChunkCriticConfig) -> CriticFit:
    """The diagnostics of :class:`CriticFit` on windows ``rows``."""
    r = torch.from_numpy(rows)
    q = critic.values(data.pooled[r], data.state[r], data.chunk[r])  # [E, n]
    y = td_targets(critic.net, data, r, cfg)
    mean = q.mean(0)
    heldout_loss = float(nn.functional.binary_cross_entropy(mean.clamp(1e-6, 1 - 1e-6), y))
    t = np.array([data.keys[i][1] for i in rows])
    term = data.terminal[rows]
    auc = matched_time_auc(mean.numpy()[term], t[term], data.success[rows][term], cfg.auc_bin_steps)
    m = data.candidates.shape[1]
    flat = r.repeat_interleave(m)
    qc = critic.values(data.pooled[flat], data.state[flat], data.candidates[r].flatten(0, 1)).view(
        -1, len(r), m
    )
    qc_mean = qc.mean(0)  # [n, M]
    return CriticFit(
        loss=float("nan"),
        heldout_loss=heldout_loss,
        auc_matched=auc,
        disagreement=float(q.std(0).mean()) if q.shape[0] > 1 else 0.0,
        candidate_spread=float(qc_mean.std(1).mean()) if m > 1 else 0.0,
        candidate_gain=float((qc_mean.amax(1) - qc_mean[:, 0]).mean()),
        value_mean=float(mean.mean()),
        windows=len(data),
        episodes=len(data.episode_ids),
        heldout_episodes=0,
    )
