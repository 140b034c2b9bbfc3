"""`rlpost reward-eval`: how well a reward model orders, detects and calibrates, per task, on held-out episodes.

Per task (REWARD.md "Metrics worth reporting"):

- voc: mean Spearman of predicted progress with time over successful episodes without a
  takeover; voc_shuffled: the same frames fed in a random order (window and first frame
  shuffled with them), correlated with their true times. A model that reads the images
  keeps it high; one that counted steps would fall to ~0.
- success_auroc: episode score = the highest calibrated "success now" probability over the
  episode (what an online detector would trigger on), against the outcome;
  f1 / tpr / fpr at the checkpoint's threshold (chosen for FPR <= max_fpr on validation).
- ece_frame: calibration error of per-frame success probabilities (targets of targets.py);
  ece_final: of the final frame's probability against the outcome.
- final progress of successes and of failures (and their gap), value Spearman with the
  Monte Carlo return; 95% episode-level bootstrap intervals for voc, auroc and the gap.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from reward_models.checkpoint import load_reward_checkpoint
from reward_models.config import RewardEvalConfig
from reward_models.features import EpisodeFeatures, load_frozen_backbone, predict_clip
from reward_models.metrics import (
    auroc,
    bootstrap_ci,
    expected_calibration_error,
    f1_at,
    rates_at,
    spearman,
    value_order_correlation,
)
from reward_models.targets import ROLE_SUCCESS, ROLE_UNKNOWN, episode_role, episode_targets
from rlpost.data import EpisodeStore

log = logging.getLogger(__name__)


@dataclass
class _Scored:
    success: bool
    clean_success: bool  # success without takeover: has time-based progress
    progress: np.ndarray
    progress_shuffled: np.ndarray
    perm: np.ndarray
    max_prob: float
    final_prob: float
    frame_probs: np.ndarray
    frame_targets: np.ndarray
    value: np.ndarray
    value_target: np.ndarray


def task_metrics(scored: list[_Scored], threshold: float, bootstrap: int, seed: int) -> dict[str, float]:
    """Every metric of one task's scored episodes (see the module docstring)."""
    succ = np.array([s.success for s in scored])
    max_p = np.array([s.max_prob for s in scored])
    final_p = np.array([s.final_prob for s in scored])
    final_prog = np.array([s.progress[-1] for s in scored])
    clean = [i for i, s in enumerate(scored) if s.clean_success]
    tpr, fpr = rates_at(max_p, succ, threshold)

    def voc(idx: np.ndarray) -> float:
        return value_order_correlation([scored[clean[i]].progress for i in idx])

    def auc(idx: np.ndarray) -> float:
        return auroc(max_p[idx], succ[idx])

    def gap(idx: np.ndarray) -> float:
        s, f = final_prog[idx][succ[idx]], final_prog[idx][~succ[idx]]
        return float(s.mean() - f.mean()) if len(s) and len(f) else float("nan")

    value_rho = [spearman(s.value, s.value_target) for s in scored if len(s.value) >= 2]
    value_rho = [v for v in value_rho if not np.isnan(v)]
    voc_lo, voc_hi = bootstrap_ci(voc, len(clean), bootstrap, seed)
    auc_lo, auc_hi = bootstrap_ci(auc, len(scored), bootstrap, seed)
    gap_lo, gap_hi = bootstrap_ci(gap, len(scored), bootstrap, seed)
    return {
        "episodes": len(scored),
        "successes": int(succ.sum()),
        "failures": int((~succ).sum()),
        "voc": voc(np.arange(len(clean))),
        "voc_ci95": [voc_lo, voc_hi],
        "voc_shuffled": value_order_correlation(
            [scored[i].progress_shuffled for i in clean], [scored[i].perm for i in clean]
        ),
        "success_auroc": auc(np.arange(len(scored))),
        "success_auroc_ci95": [auc_lo, auc_hi],
        "threshold": threshold,
        "f1": f1_at(max_p, succ, threshold),
        "tpr": tpr,
        "fpr": fpr,
        "ece_frame": expected_calibration_error(
            np.concatenate([s.frame_probs for s in scored]), np.concatenate([s.frame_targets for s in scored])
        ),
        "ece_final": expected_calibration_error(final_p, succ.astype(float)),
        "final_progress_success": float(final_prog[succ].mean()) if succ.any() else float("nan"),
        "final_progress_failure": float(final_prog[~succ].mean()) if (~succ).any() else float("nan"),
        "final_progress_gap": gap(np.arange(len(scored))),
        "final_progress_gap_ci95": [gap_lo, gap_hi],
        "value_spearman_mc": float(np.mean(value_rho)) if value_rho else float("nan"),
    }


def evaluate_reward_model(cfg: RewardEvalConfig) -> dict:
    """Score the held-out episodes of ``cfg.store`` with ``cfg.reward_model``; per-task metrics.

    Raises:
        CheckpointError: a bad checkpoint, or features of another backbone.
        ValueError: no held-out episodes with a known outcome to score.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    ckpt = load_reward_checkpoint(cfg.reward_model)
    store = EpisodeStore.open(cfg.store, create=False)
    feats = EpisodeFeatures(load_frozen_backbone(cfg.policy_checkpoint), store, cfg.cache_dir or None)
    ckpt.check_backbone(feats.fingerprint)
    seen = set() if cfg.include_trained else set(ckpt.train_episodes) | set(ckpt.val_episodes)
    rd = ckpt.reward
    metas = [
        m
        for m in store.episodes(task=cfg.task or None)
        if m.episode_id not in seen
        and m.length > 0
        and episode_role(m, rd.aborted_is_failure) != ROLE_UNKNOWN
    ]
    if not metas:
        raise ValueError(
            f"{cfg.store}: no held-out episodes with a known outcome to score "
            f"({len(seen)} were used to train or calibrate {cfg.reward_model}; include_trained=true scores them)"
        )
    rng = np.random.default_rng(cfg.shuffle_seed)
    by_task: dict[str, list[_Scored]] = {}
    for m in tqdm(metas, desc="reward-eval", disable=not cfg.progress, dynamic_ncols=True):
        tokens, mask = feats.tokens(m.episode_id)
        state, interv = feats.steps(m.episode_id)
        tg = episode_targets(m, interv, rd.t_max, rd.c_fail, 1, rd.aborted_is_failure)
        pred = predict_clip(ckpt.model, tokens, mask, state, ckpt.calibration)
        perm = rng.permutation(m.length)
        shuffled = predict_clip(ckpt.model, tokens, mask, state, ckpt.calibration, seq=perm)
        by_task.setdefault(m.task, []).append(
            _Scored(
                success=tg.role == ROLE_SUCCESS,
                clean_success=tg.role == ROLE_SUCCESS and bool(tg.progress_mask.all()),
                progress=pred.progress,
                progress_shuffled=shuffled.progress,
                perm=perm,
                max_prob=float(pred.success_prob.max()),
                final_prob=float(pred.success_prob[-1]),
                frame_probs=pred.success_prob[tg.success_mask],
                frame_targets=tg.success[tg.success_mask],
                value=pred.value,
                value_target=tg.value,
            )
        )
    tasks = {
        task: task_metrics(scored, ckpt.calibration.threshold, cfg.bootstrap, cfg.shuffle_seed)
        for task, scored in sorted(by_task.items())
    }
    return {
        "reward_model": str(cfg.reward_model),
        "label_version": ckpt.label_version,
        "store": str(cfg.store),
        "held_out_only": not cfg.include_trained,
        "tasks": tasks,
    }


TABLE_COLUMNS = (
    "task",
    "episodes",
    "voc",
    "voc_shuffled",
    "success_auroc",
    "f1",
    "tpr",
    "fpr",
    "ece_frame",
    "ece_final",
    "final_prog_succ",
    "final_prog_fail",
    "value_rho",
)


def table_rows(result: dict) -> list[dict[str, object]]:
    """One row per task for :func:`rlpost.report.format_table`."""
    rows = []
    for task, m in result["tasks"].items():
        rows.append(
            {
                "task": task,
                "episodes": f"{m['episodes']} ({m['successes']}s/{m['failures']}f)",
                "voc": m["voc"],
                "voc_shuffled": m["voc_shuffled"],
                "success_auroc": m["success_auroc"],
                "f1": m["f1"],
                "tpr": m["tpr"],
                "fpr": m["fpr"],
                "ece_frame": m["ece_frame"],
                "ece_final": m["ece_final"],
                "final_prog_succ": m["final_progress_success"],
                "final_prog_fail": m["final_progress_failure"],
                "value_rho": m["value_spearman_mc"],
            }
        )
    return rows
