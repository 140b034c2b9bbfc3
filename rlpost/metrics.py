"""Numbers people read later: a JSON-lines file in the run directory, and wandb (offline by default).

Keys are namespaced (``pretrain/loss``, ``actor/arm-1/hz``). Library code logs
numbers here and events with ``logging``; it never prints.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlpost.names import unknown_name_error

log = logging.getLogger(__name__)
WANDB_MODES = ("offline", "online", "disabled")


@dataclass
class LoggerConfig:
    """Where metrics go besides the run directory's metrics.jsonl."""

    wandb_mode: str = "offline"  # offline | online | disabled; online needs an API key and network
    project: str = "rlpost"
    group: str = ""  # wandb run group (one per practice session)

    def __post_init__(self) -> None:
        if self.wandb_mode not in WANDB_MODES:
            raise unknown_name_error("logger.wandb_mode", self.wandb_mode, WANDB_MODES)


class MetricsLogger:
    """Appends ``{"step", "time", **metrics}`` lines to ``<run_dir>/metrics.jsonl`` and logs to wandb."""

    def __init__(
        self, cfg: LoggerConfig, run_dir: str | Path, name: str, config: dict[str, Any] | None = None
    ) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._file = (self.run_dir / "metrics.jsonl").open("a")
        self._wandb = None
        if cfg.wandb_mode != "disabled":
            import wandb  # heavy import, only when used

            self._wandb = wandb.init(
                project=cfg.project,
                group=cfg.group or None,
                name=name,
                dir=str(self.run_dir),
                mode=cfg.wandb_mode,  # always explicit: online without network blocks, then raises
                config=config or {},
                reinit="create_new",
            )

    def log(self, metrics: dict[str, float], step: int) -> None:
        clean = {k: float(v) for k, v in metrics.items()}
        line = {
            "step": step,
            "time": time.time(),
            **{k: (v if math.isfinite(v) else str(v)) for k, v in clean.items()},
        }
        self._file.write(json.dumps(line) + "\n")
        self._file.flush()
        if self._wandb is not None:
            self._wandb.log(clean, step=step)

    def rewind(self, step: int) -> int:
        """Drop the rows logged after ``step`` from metrics.jsonl; returns how many were dropped.

        A learner that resumes from its checkpoint at ``step`` redoes the updates after it;
        their rows from before the crash describe weights that were never saved, and keeping
        them would log those update steps twice. (wandb keeps what it already received.)
        """
        self._file.flush()
        path = self.run_dir / "metrics.jsonl"
        lines = path.read_bytes().splitlines(keepends=True)
        keep = 0
        for line in lines:
            if line.strip() and json.loads(line).get("step", step) > step:
                break
            keep += 1
        # In place: the open "a" handle then appends at the new end.
        os.truncate(path, sum(len(line) for line in lines[:keep]))
        return len(lines) - keep

    def close(self) -> None:
        self._file.close()
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every line of a run's metrics.jsonl."""
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
