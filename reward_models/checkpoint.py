"""Reward-model checkpoints: a directory of safetensors weights and a versioned JSON config.

::

    <out>/rm-v<N>/config.json        format, config_version, version N, model shape, reward
                                     definition (T_max, C_fail resolved), calibration, the
                                     backbone fingerprint, train/val episode ids, metrics
    <out>/rm-v<N>/model.safetensors  the weights

A checkpoint is written atomically and never overwritten: each training run takes the
next version. Missing or corrupt files raise :class:`rlpost.policy.CheckpointError`
naming the file; a checkpoint refuses features of another backbone.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from reward_models.config import RewardDef, RewardModelConfig
from reward_models.model import Calibration, RewardModel
from rlpost.policy import CheckpointError

log = logging.getLogger(__name__)

FORMAT = "rlpost-reward-model"
CONFIG_VERSION = 1
_DIR_RE = re.compile(r"^rm-v(\d+)$")


@dataclass
class RewardCheckpoint:
    """A loaded reward model with everything needed to label with it."""

    model: RewardModel
    version: int  # N; labels are written as label version f"rm-v{N}"
    reward: RewardDef  # with t_max and c_fail resolved
    calibration: Calibration
    backbone_fingerprint: str  # the frozen backbone whose features it reads
    policy: str = ""  # the policy checkpoint that backbone came from (informational)
    train_episodes: list[str] = field(default_factory=list)
    val_episodes: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    path: Path | None = None

    @property
    def label_version(self) -> str:
        return f"rm-v{self.version}"

    def check_backbone(self, fingerprint: str) -> None:
        """Raise CheckpointError unless ``fingerprint`` is the backbone this model was trained on."""
        if fingerprint != self.backbone_fingerprint:
            raise CheckpointError(
                f"{self.path}: reward model rm-v{self.version} was trained on backbone "
                f"{self.backbone_fingerprint}, the features offered come from backbone {fingerprint}; "
                "pass the policy it was trained with (config.json 'policy')"
            )


def next_version(out: str | Path) -> int:
    """1 + the highest rm-v<N> directory under ``out`` (1 if none)."""
    out = Path(out)
    found = [int(m.group(1)) for p in out.glob("rm-v*") if (m := _DIR_RE.match(p.name))]
    return max(found, default=0) + 1


def save_reward_checkpoint(ckpt: RewardCheckpoint, out: str | Path) -> Path:
    """Write ``<out>/rm-v<version>/`` atomically.

    Raises:
        CheckpointError: that version already exists (checkpoints are never overwritten).
    """
    path = Path(out) / ckpt.label_version
    if path.exists():
        raise CheckpointError(
            f"{path}: reward model version {ckpt.version} exists; versions are never overwritten"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    m = ckpt.model
    config = {
        "format": FORMAT,
        "config_version": CONFIG_VERSION,
        "version": ckpt.version,
        "model": asdict(m.cfg),
        "feature_dim": m.feature_dim,
        "state_dim": m.state_dim,
        "reward": asdict(ckpt.reward),
        "calibration": asdict(ckpt.calibration),
        "backbone_fingerprint": ckpt.backbone_fingerprint,
        "policy": ckpt.policy,
        "train_episodes": ckpt.train_episodes,
        "val_episodes": ckpt.val_episodes,
        "metrics": ckpt.metrics,
    }
    try:
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        save_model(m, str(tmp / "model.safetensors"))
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise CheckpointError(f"{where}: expected an object, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        log.warning("%s: ignoring keys this release does not know: %s", where, sorted(unknown))
    try:
        return cls(**{k: v for k, v in data.items() if k in names})
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: {e}") from e


def load_reward_checkpoint(path: str | Path, device: str = "cpu") -> RewardCheckpoint:
    """Load a reward-model checkpoint directory.

    Raises:
        CheckpointError: a missing, corrupt or mismatched file; the message names it.
    """
    path = Path(path)
    cfg_file, weights = path / "config.json", path / "model.safetensors"
    try:
        raw = json.loads(cfg_file.read_text())
    except FileNotFoundError as e:
        raise CheckpointError(f"{cfg_file}: no such file; is {path} a reward-model checkpoint?") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{cfg_file}: corrupt JSON ({e})") from e
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        got = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
        raise CheckpointError(f"{cfg_file}: not a reward-model checkpoint (format={got!r})")
    version = raw.get("config_version")
    if not isinstance(version, int) or not 1 <= version <= CONFIG_VERSION:
        raise CheckpointError(
            f"{cfg_file}: config_version={version!r}; this rlpost reads 1..{CONFIG_VERSION}"
        )
    # Version 1 is the first; migrations go here as `if version == 1: ...; version = 2`.
    try:
        model = RewardModel(
            _build(RewardModelConfig, raw["model"], f"{cfg_file} model"),
            int(raw["feature_dim"]),
            int(raw["state_dim"]),
        )
        ckpt = RewardCheckpoint(
            model=model,
            version=int(raw["version"]),
            reward=_build(RewardDef, raw["reward"], f"{cfg_file} reward"),
            calibration=_build(Calibration, raw["calibration"], f"{cfg_file} calibration"),
            backbone_fingerprint=str(raw["backbone_fingerprint"]),
            policy=str(raw.get("policy", "")),
            train_episodes=list(raw.get("train_episodes", [])),
            val_episodes=list(raw.get("val_episodes", [])),
            metrics=dict(raw.get("metrics", {})),
            path=path,
        )
    except KeyError as e:
        raise CheckpointError(f"{cfg_file}: missing key {e}") from e
    try:
        missing, unexpected = load_model(model, str(weights), strict=False, device=device)
    except FileNotFoundError as e:
        raise CheckpointError(f"{weights}: no such file") from e
    except (SafetensorError, OSError, RuntimeError) as e:
        raise CheckpointError(f"{weights}: corrupt or truncated weights ({e})") from e
    if missing or unexpected:
        raise CheckpointError(
            f"{weights}: weights do not fit the config: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    model.eval()
    return ckpt
