"""`rlpost train-reward`: train the reward model on cached backbone features, calibrate, checkpoint.

Losses (each masked by the targets of reward_models/targets.py), and why:

- progress: cross-entropy against HL-Gauss soft targets on [0, 1] (arXiv 2403.03950): stabler
  than regression under the noisy time-based labels of slow and hesitant demos. Targets
  come only from successes without takeover (t / t_s), from rewound clips (ReWiND) and from
  mismatched instructions (0); failures get no invented absolute progress.
- rank: a Bradley-Terry preference that a success's final frame has more progress than a
  failure's final frame, -log sigmoid((p_succ - p_fail) / tau) (ReWiND, Robometer). This is the
  relative supervision that keeps failures from being credited with high progress at their end.
- success: BCE with a positive weight (n_neg / n_pos in the batch) for the rare "success now"
  frames; the shift this puts on the logit is removed by Platt scaling on held-out episodes.
- value: cross-entropy against HL-Gauss targets of the normalised steps-to-go return on [-1, 0].

Train and validation split by episode (stratified by outcome), never by frame.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from reward_models.checkpoint import RewardCheckpoint, next_version, save_reward_checkpoint
from reward_models.config import RewardTrainConfig
from reward_models.features import EpisodeFeatures, load_frozen_backbone, predict_clip
from reward_models.metrics import auroc, threshold_for_fpr, value_order_correlation
from reward_models.model import VALUE_HI, VALUE_LO, Calibration, RewardModel, hl_gauss_targets
from reward_models.targets import (
    ROLE_FAILURE,
    ROLE_SUCCESS,
    ROLE_UNKNOWN,
    EpisodeTargets,
    episode_role,
    episode_targets,
    mismatched_instruction,
    rewound_clip,
    window_index,
)
from rlpost.data import EpisodeStore
from rlpost.metrics import MetricsLogger
from rlpost.schema import EpisodeMeta

log = logging.getLogger(__name__)

RANK_TAU = 0.1  # temperature of the success-vs-failure preference, in progress units
MAX_POS_WEIGHT = 50.0


@dataclass
class TrainResult:
    """What a reward-model training run produced."""

    checkpoint: Path
    version: int
    steps: int
    train_episodes: int
    val_episodes: int
    val_metrics: dict[str, float]


@dataclass
class _Entry:
    key: str  # cache key (episode id, or a mismatch key)
    meta: EpisodeMeta
    targets: EpisodeTargets
    offset: int = 0


def split_episodes(metas: list[EpisodeMeta], val_fraction: float, seed: int, aborted_is_failure: bool):
    """Train/validation split by episode, stratified by role so both sides see successes and failures."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for role in (ROLE_SUCCESS, ROLE_FAILURE):
        group = [m for m in metas if episode_role(m, aborted_is_failure) == role]
        order = rng.permutation(len(group))
        n_val = round(val_fraction * len(group))
        if len(group) >= 2:
            n_val = min(max(n_val, 1), len(group) - 1)
        val += [group[i] for i in order[:n_val]]
        train += [group[i] for i in order[n_val:]]
    return train, val


class _Batcher:
    """Concatenated features of the training clips and the samplers of each kind of sample."""

    def __init__(self, entries: list[_Entry], feats: EpisodeFeatures, cfg: RewardTrainConfig) -> None:
        self.cfg = cfg
        k, stride = cfg.model.window, cfg.model.stride
        toks, masks, states = [], [], []
        off = 0
        for e in entries:
            t, m = feats.tokens(e.key)
            s, _ = feats.steps(e.meta.episode_id)
            toks.append(torch.from_numpy(np.asarray(t)))
            masks.append(torch.from_numpy(np.asarray(m)))
            states.append(torch.from_numpy(s))
            e.offset = off
            off += len(t)
        p_max = max(t.shape[1] for t in toks)
        self.tokens = torch.cat([F.pad(t, (0, 0, 0, p_max - t.shape[1])) for t in toks])
        self.mask = torch.cat([F.pad(m, (0, p_max - m.shape[1]), value=False) for m in masks])
        self.state = torch.cat(states).float()
        # frame pool: every frame with any target
        win, cols = [], {n: [] for n in ("p", "pm", "s", "sm", "v", "vm")}
        for e in entries:
            tg, n = e.targets, e.meta.length
            keep = tg.progress_mask | tg.success_mask | tg.value_mask
            pos = np.flatnonzero(keep)
            win.append(e.offset + window_index(np.arange(n), pos, k, stride))
            for name, arr in zip(
                cols,
                (tg.progress, tg.progress_mask, tg.success, tg.success_mask, tg.value, tg.value_mask),
                strict=True,
            ):
                cols[name].append(arr[pos])
        self.win = np.concatenate(win)
        self.t = {n: torch.from_numpy(np.concatenate(v)) for n, v in cols.items()}
        real = [e for e in entries if e.key == e.meta.episode_id]
        self.rewind_eps = [
            e
            for e in real
            if e.targets.role == ROLE_SUCCESS and e.targets.progress_mask.all() and e.meta.length >= 3
        ]
        succ = [e for e in real if e.targets.role == ROLE_SUCCESS]
        fail = [e for e in real if e.targets.role == ROLE_FAILURE]

        def last_windows(es: list[_Entry]) -> np.ndarray | None:
            if not es:
                return None
            return np.stack(
                [
                    e.offset
                    + window_index(np.arange(e.meta.length), np.array([e.meta.length - 1]), k, stride)[0]
                    for e in es
                ]
            )

        self.succ_last, self.fail_last = last_windows(succ), last_windows(fail)

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, torch.Tensor], int]:
        """Window indices [B', K+1], targets, and how many trailing rows are preference pairs (2 * n)."""
        cfg, k, stride = self.cfg, self.cfg.model.window, self.cfg.model.stride
        n_pairs = cfg.batch_size // 8 if self.succ_last is not None and self.fail_last is not None else 0
        n_rewind = round(cfg.rewind_fraction * cfg.batch_size) if self.rewind_eps else 0
        n_main = cfg.batch_size - n_rewind
        rows = rng.integers(0, len(self.win), n_main)
        win = [self.win[rows]]
        tg = {n: [v[rows]] for n, v in self.t.items()}
        for _ in range(n_rewind):
            e = self.rewind_eps[int(rng.integers(len(self.rewind_eps)))]
            seq, start = rewound_clip(e.meta.length, rng)
            p = int(rng.integers(start, len(seq)))
            win.append(e.offset + window_index(seq, np.array([p]), k, stride))
            prog = torch.tensor([seq[p] / (e.meta.length - 1)], dtype=torch.float32)
            for n, v in (("p", prog), ("pm", True), ("s", 0.0), ("sm", True), ("v", 0.0), ("vm", False)):
                tg[n].append(v if isinstance(v, torch.Tensor) else torch.tensor([v], dtype=tg[n][0].dtype))
        if n_pairs:
            si = rng.integers(0, len(self.succ_last), n_pairs)
            fi = rng.integers(0, len(self.fail_last), n_pairs)
            win += [self.succ_last[si], self.fail_last[fi]]
            for n in tg:  # pair rows carry their success targets (1 / 0); the rest is masked
                fill = {"s": [1.0] * n_pairs + [0.0] * n_pairs, "sm": [True] * (2 * n_pairs)}.get(n)
                dtype = tg[n][0].dtype
                tg[n].append(
                    torch.tensor(fill, dtype=dtype) if fill else torch.zeros(2 * n_pairs, dtype=dtype)
                )
        return np.concatenate(win), {n: torch.cat(v) for n, v in tg.items()}, n_pairs

    def gather(self, win: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        idx = torch.from_numpy(win)
        return self.tokens[idx], self.mask[idx], self.state[idx]


def losses(model: RewardModel, batcher: _Batcher, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """The four losses of one batch (see the module docstring); the "loss" key is their weighted sum."""
    cfg = batcher.cfg
    win, tg, n_pairs = batcher.sample(rng)
    out = model(*batcher.gather(win))
    mc = cfg.model
    pm, sm, vm = tg["pm"], tg["sm"], tg["vm"]
    prog_t = hl_gauss_targets(tg["p"][pm], 0.0, 1.0, mc.bins, mc.hl_sigma)
    l_prog = -(prog_t * out.progress_logits[pm].log_softmax(-1)).sum(-1).mean()
    val_t = hl_gauss_targets(tg["v"][vm], VALUE_LO, VALUE_HI, mc.bins, mc.hl_sigma)
    l_val = (
        -(val_t * out.value_logits[vm].log_softmax(-1)).sum(-1).mean()
        if vm.any()
        else out.value_logits.sum() * 0
    )
    y = tg["s"][sm]
    n_pos = float(y.sum())
    pos_weight = torch.tensor(min(MAX_POS_WEIGHT, (len(y) - n_pos) / max(n_pos, 1.0)))
    l_succ = F.binary_cross_entropy_with_logits(out.success_logit[sm], y, pos_weight=pos_weight)
    if n_pairs:
        p = out.progress()[-2 * n_pairs :]
        l_rank = F.softplus(-(p[:n_pairs] - p[n_pairs:]) / RANK_TAU).mean()  # -log sigmoid(.)
    else:
        l_rank = torch.zeros(())
    total = cfg.w_progress * l_prog + cfg.w_success * l_succ + cfg.w_value * l_val + cfg.w_rank * l_rank
    return {"loss": total, "progress": l_prog, "success": l_succ, "value": l_val, "rank": l_rank}


def fit_platt(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(a, b) minimising the BCE of sigmoid(a * logit + b) on held-out frames (Platt 1999)."""
    x, y = torch.from_numpy(logits.astype(np.float64)), torch.from_numpy(labels.astype(np.float64))
    ab = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([ab], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(ab[0] * x + ab[1], y)
        loss.backward()
        return loss

    opt.step(closure)
    a, b = (float(v) for v in ab.detach())
    if not (math.isfinite(a) and math.isfinite(b)) or a <= 0:
        raise ValueError(f"Platt scaling of the success head failed (a={a}, b={b}); the head did not learn")
    return a, b


def evaluate_split(
    model: RewardModel, entries: list[_Entry], feats: EpisodeFeatures, cal: Calibration
) -> dict:
    """Quick held-out numbers: VOC, final progress by outcome, success AUROC of the episode max."""
    voc, fin_s, fin_f, scores, labels = [], [], [], [], []
    for e in entries:
        t, m = feats.tokens(e.key)
        s, _ = feats.steps(e.meta.episode_id)
        pred = predict_clip(model, t, m, s, cal)
        if e.targets.role == ROLE_SUCCESS:
            fin_s.append(pred.progress[-1])
            if e.targets.progress_mask.all():
                voc.append(pred.progress)
        else:
            fin_f.append(pred.progress[-1])
        scores.append(float(pred.success_prob.max()))
        labels.append(e.targets.role == ROLE_SUCCESS)
    return {
        "voc": value_order_correlation(voc),
        "final_progress_success": float(np.mean(fin_s)) if fin_s else float("nan"),
        "final_progress_failure": float(np.mean(fin_f)) if fin_f else float("nan"),
        "success_auroc": auroc(np.array(scores), np.array(labels)),
    }


def _lr_at(step: int, cfg: RewardTrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))


def train_reward_model(cfg: RewardTrainConfig) -> TrainResult:
    """Train, calibrate and save a new reward-model version under ``cfg.out``.

    Raises:
        ValueError: the store has no successful or no failed episodes with known outcomes.
        CheckpointError: the policy checkpoint is missing or corrupt.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    out = Path(cfg.out)
    store = EpisodeStore.open(cfg.store, create=False)
    metas = [m for m in store.episodes(task=cfg.task or None) if m.length > 0]
    t_max, c_fail = cfg.reward.resolved(max((m.length for m in metas), default=0))
    reward = dataclasses.replace(cfg.reward, t_max=t_max, c_fail=c_fail)
    train_m, val_m = split_episodes(metas, cfg.val_fraction, cfg.seed, reward.aborted_is_failure)
    for name, group in (("train", train_m), ("validation", val_m)):
        roles = {episode_role(m, reward.aborted_is_failure) for m in group}
        if not {ROLE_SUCCESS, ROLE_FAILURE} <= roles:
            raise ValueError(
                f"{cfg.store}: the {name} split needs successful and failed episodes with known outcomes "
                f"(found {len(group)} episodes, roles {sorted(roles)}); collect failures too "
                "(reward_models.practice_data.collect_mixed)"
            )
    skipped = len(metas) - len(train_m) - len(val_m)
    if skipped:
        log.info("train-reward: %d episodes without a known outcome are not trained on", skipped)

    feats = EpisodeFeatures(
        load_frozen_backbone(cfg.policy_checkpoint), store, cfg.cache_dir or out / "features", cfg.cache_dtype
    )

    def entries_of(group: list[EpisodeMeta]) -> list[_Entry]:
        res = []
        for m in group:
            _, interv = feats.steps(m.episode_id)
            tg = episode_targets(m, interv, t_max, c_fail, cfg.success_window, reward.aborted_is_failure)
            res.append(_Entry(m.episode_id, m, tg))
        return res

    train_e, val_e = entries_of(train_m), entries_of(val_m)
    pool: dict[str, list[str]] = {}
    for m in metas:
        pool.setdefault(m.task, []).append(m.instruction)
    n_mm = 0
    for e in list(train_e):
        if e.targets.role == ROLE_SUCCESS and rng.random() < cfg.mismatch_fraction:
            other = mismatched_instruction(e.meta.instruction, pool[e.meta.task], rng)
            n, no = e.meta.length, np.zeros(e.meta.length, bool)
            zeros = np.zeros(n, np.float32)
            # ReWiND's mismatched-instruction negative: progress 0, not a success, no value target.
            tg = EpisodeTargets(zeros, ~no, zeros, ~no, zeros, no, ROLE_UNKNOWN)
            train_e.append(_Entry(feats.register_mismatch(e.meta.episode_id, other), e.meta, tg))
            n_mm += 1
    log.info(
        "train-reward: encoding %d train (+%d mismatched) / %d val episodes", len(train_m), n_mm, len(val_m)
    )
    batcher = _Batcher(train_e, feats, cfg)
    state_dim = batcher.state.shape[1]
    model = RewardModel(cfg.model, feats.width, state_dim)
    model.set_state_stats(batcher.state.mean(0), batcher.state.std(0))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    version = next_version(out)
    metrics = MetricsLogger(
        cfg.logger, out / f"rm-v{version}-run", f"train-reward-v{version}", dataclasses.asdict(cfg)
    )
    bar = tqdm(total=cfg.steps, desc="train-reward", disable=not cfg.progress, dynamic_ncols=True)
    val_metrics: dict[str, float] = {}
    try:
        for step in range(cfg.steps):
            model.train()
            lr = _lr_at(step, cfg)
            for g in opt.param_groups:
                g["lr"] = lr
            ls = losses(model, batcher, rng)
            opt.zero_grad(set_to_none=True)
            ls["loss"].backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            done = step + 1
            row = {f"reward/{k}": v.item() for k, v in ls.items()} | {
                "reward/lr": lr,
                "reward/grad_norm": float(grad_norm),
            }
            if done % cfg.val_every == 0 or done == cfg.steps:
                val_metrics = evaluate_split(model, val_e, feats, Calibration())
                row |= {f"reward/val_{k}": v for k, v in val_metrics.items()}
            metrics.log(row, done)
            bar.update(1)
            bar.set_postfix(
                loss=f"{row['reward/loss']:.3f}", voc=f"{val_metrics.get('voc', float('nan')):.3f}"
            )
        cal = calibrate(model, val_e, feats, cfg.max_fpr)
        val_metrics = evaluate_split(model, val_e, feats, cal) | {"threshold": cal.threshold}
        metrics.log({f"reward/cal_{k}": v for k, v in val_metrics.items()}, cfg.steps)
    finally:
        bar.close()
        metrics.close()
    ckpt = RewardCheckpoint(
        model=model,
        version=version,
        reward=reward,
        calibration=cal,
        backbone_fingerprint=feats.fingerprint,
        policy=str(cfg.policy_checkpoint),
        train_episodes=[m.episode_id for m in train_m],
        val_episodes=[m.episode_id for m in val_m],
        metrics=val_metrics,
    )
    path = save_reward_checkpoint(ckpt, out)
    log.info("train-reward: saved %s (val %s)", path, val_metrics)
    return TrainResult(path, version, cfg.steps, len(train_m), len(val_m), val_metrics)


def calibrate(model: RewardModel, val: list[_Entry], feats: EpisodeFeatures, max_fpr: float) -> Calibration:
    """Platt-scale the success logit on held-out frames, then pick the episode-level threshold.

    An episode counts as detected when its highest calibrated success probability reaches
    the threshold; the threshold keeps held-out failures' detection rate <= ``max_fpr``.
    """
    logits, labels, ep_logits, ep_success = [], [], [], []
    for e in val:
        t, m = feats.tokens(e.key)
        s, _ = feats.steps(e.meta.episode_id)
        pred = predict_clip(model, t, m, s, Calibration())
        sm = e.targets.success_mask
        logits.append(pred.success_logit[sm])
        labels.append(e.targets.success[sm])
        ep_logits.append(pred.success_logit)
        ep_success.append(e.targets.role == ROLE_SUCCESS)
    a, b = fit_platt(np.concatenate(logits), np.concatenate(labels))
    cal = Calibration(a=a, b=b, max_fpr=max_fpr)
    scores = np.array([float(cal.success_prob(torch.from_numpy(lg)).max()) for lg in ep_logits])
    threshold = threshold_for_fpr(scores, np.array(ep_success), max_fpr)
    return dataclasses.replace(cal, threshold=float(min(threshold, 1.0)))
