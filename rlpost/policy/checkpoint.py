"""VLA checkpoints (safetensors + JSON config) and head files, the unit the learner ships.

A checkpoint directory::

    config.json          format, config_version, the PolicyConfig, head_version, backbone fingerprint
    model.safetensors    every weight (backbone, expert, normalisers)
    backbone/            assets a transformers backbone needs to rebuild (config, tokenizer), no weights

A head file (``head-<version>.safetensors``) holds the expert and normalisers with
metadata: version, the backbone fingerprint it was trained on, and the head's shape config.
Older configs are migrated forward, so a checkpoint from an earlier release still loads.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import load_model, save_model

from rlpost.policy.config import ExpertConfig, HFBackboneConfig, PolicyConfig, TinyBackboneConfig
from rlpost.policy.vla import VLA, build_backbone

log = logging.getLogger(__name__)

FORMAT = "rlpost-vla"
CONFIG_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint or head file is missing, corrupt, or does not fit; names the file."""


def _from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    """Build a (nested) config dataclass from a dict; unknown keys are dropped with a warning."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        log.warning("%s: ignoring config keys this release does not know: %s", where, sorted(unknown))
    kwargs = {}
    nested = {"tiny": TinyBackboneConfig, "hf": HFBackboneConfig, "expert": ExpertConfig}
    for name, value in data.items():
        if name not in fields:
            continue
        kwargs[name] = _from_dict(nested[name], value, f"{where}.{name}") if name in nested else value
    return cls(**kwargs)


def migrate_config(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """Bring a saved config.json forward to CONFIG_VERSION (one step per release that changed it)."""
    if raw.get("format") != FORMAT:
        raise CheckpointError(f"{where}: not an rlpost VLA checkpoint (format={raw.get('format')!r})")
    version = raw.get("config_version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{where}: config_version={version!r} is not a positive integer")
    if version > CONFIG_VERSION:
        raise CheckpointError(
            f"{where}: config_version {version} is newer than this rlpost ({CONFIG_VERSION})"
        )
    # Version 1 is the first; future migrations go here as `if version == 1: ...; version = 2`.
    return raw


def _atomic_dir(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))


def save_checkpoint(
    vla: VLA,
    path: str | Path,
    extra: dict[str, Any] | None = None,
    write_more: Callable[[Path], None] | None = None,
) -> Path:
    """Write a checkpoint directory atomically (a crash leaves the old one or none, never half).

    Args:
        vla: the model.
        path: the directory to create or replace.
        extra: JSON-able training state to keep beside the config (step, optimizer file name, ...).
        write_more: writes further files (optimizer state) into the directory before it
            becomes visible, so the checkpoint and its training state appear together.

    Returns:
        The checkpoint directory.
    """
    path = Path(path)
    tmp = _atomic_dir(path)
    config = {
        "format": FORMAT,
        "config_version": CONFIG_VERSION,
        "policy": asdict(vla.cfg),
        "backbone": vla.backbone.config_dict(),
        "head_version": vla.head_version,
        "backbone_fingerprint": vla.backbone.fingerprint(),
        "extra": extra or {},
    }
    save_model(vla, str(tmp / "model.safetensors"))
    # safetensors has no checksum: without one a flipped byte would load as a silently wrong weight.
    config["weights_sha256"] = _sha256(tmp / "model.safetensors")
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    save_assets = getattr(vla.backbone, "save_assets", None)
    if save_assets is not None:
        save_assets(tmp / "backbone")
    if write_more is not None:
        write_more(tmp)
    if path.exists():
        old = path.with_name(f".{path.name}.old")
        os.replace(path, old)
        os.replace(tmp, path)
        _rmtree(old)
    else:
        os.replace(tmp, path)
    return path


def recover_checkpoint(path: str | Path) -> bool:
    """Undo what a process killed inside :func:`save_checkpoint` left beside ``path``.

    Killed between its two renames, only ``.<name>.old`` holds the last checkpoint: it is
    renamed back. Half-written temporary directories and a leftover ``.old`` are deleted
    (a later save would otherwise fail on them).

    Returns:
        True if the previous checkpoint was restored from ``.<name>.old``.
    """
    path = Path(path)
    old = path.with_name(f".{path.name}.old")
    restored = False
    if old.is_dir() and not path.exists():
        os.replace(old, path)
        restored = True
        log.warning("%s: restored the checkpoint a crash left at %s", path, old)
    for p in path.parent.glob(f".{path.name}.*"):
        if p.is_dir():
            _rmtree(p)
    return restored


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path)


def read_config(path: str | Path) -> dict[str, Any]:
    """The migrated config.json of a checkpoint directory."""
    f = Path(path) / "config.json"
    try:
        raw = json.loads(f.read_text())
    except FileNotFoundError as e:
        raise CheckpointError(f"{f}: no such file; is {path} an rlpost checkpoint directory?") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{f}: corrupt JSON ({e})") from e
    if not isinstance(raw, dict):
        raise CheckpointError(f"{f}: corrupt config, a JSON {type(raw).__name__} instead of an object")
    return migrate_config(raw, str(f))


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> VLA:
    """Rebuild a VLA from a checkpoint directory, weights exact.

    Raises:
        CheckpointError: missing, corrupt or mismatched files (the message names the file).
    """
    path = Path(path)
    raw = read_config(path)
    weights = path / "model.safetensors"
    want = raw.get("weights_sha256")  # absent in checkpoints saved before it was added
    if want is not None and weights.exists() and _sha256(weights) != want:
        raise CheckpointError(f"{weights}: sha256 does not match config.json (corrupt or truncated)")
    try:
        cfg = _from_dict(PolicyConfig, raw["policy"], f"{path}/config.json policy")
        head_version = int(raw["head_version"])
        if cfg.backbone == "hf":
            from rlpost.policy.hf_backbone import HFBackbone

            backbone = HFBackbone.from_assets(path / "backbone", cfg.hf, tuple(cfg.cameras))
        else:
            backbone = build_backbone(cfg)
        vla = VLA(cfg, backbone)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:  # a damaged but parseable config.json
        raise CheckpointError(f"{path / 'config.json'}: config does not describe a policy ({e!r})") from e
    try:
        missing, unexpected = load_model(vla, str(weights), strict=False, device=str(device))
    except (SafetensorError, OSError, RuntimeError) as e:
        raise CheckpointError(
            f"{weights}: cannot load weights into the policy config.json describes ({e})"
        ) from e
    if missing or unexpected:
        raise CheckpointError(
            f"{weights}: weights do not fit config.json: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}"
        )
    vla.head_version = head_version
    return vla.to(device)


@dataclass(frozen=True)
class HeadWeights:
    """A shipped action head: what the learner publishes and actors load."""

    version: int
    backbone_fingerprint: str  # the backbone these weights were trained on
    tensors: dict[str, np.ndarray]  # state_dict keys (expert.*, state_norm.*, action_norm.*) -> arrays


def save_head(vla: VLA, path: str | Path) -> Path:
    """Write the head (expert + normalisers) to one safetensors file, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT + "-head",
        "version": str(vla.head_version),
        "backbone_fingerprint": vla.backbone.fingerprint(),
        "expert": json.dumps(asdict(vla.cfg.expert)),
        "dims": json.dumps({"S": vla.cfg.state_dim, "A": vla.cfg.action_dim, "H": vla.cfg.horizon}),
    }
    tensors = vla.head_state()
    meta["tensors_sha256"] = _tensors_sha256(tensors)  # robots run what they load: check it arrived intact
    tmp = path.with_name(f".{path.name}.tmp")
    save_numpy(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)
    return path


def read_tensor_file(path: Path, what: str) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """(metadata, tensors) of a safetensors file that ships to robots (a head, a critic).

    Raises:
        CheckpointError: missing, truncated or corrupt, naming ``what`` it should have been.
    """
    try:
        with safe_open(str(path), framework="np") as f:
            return f.metadata() or {}, {k: f.get_tensor(k) for k in f.keys()}
    except FileNotFoundError as e:
        raise CheckpointError(f"{path}: no such {what} file") from e
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: corrupt or truncated {what} file ({e})") from e


def load_head_file(path: str | Path) -> HeadWeights:
    """Read a head file written by :func:`save_head`."""
    path = Path(path)
    meta, tensors = read_tensor_file(path, "head")
    if meta.get("format") != FORMAT + "-head":
        raise CheckpointError(f"{path}: not an rlpost head file (format={meta.get('format')!r})")
    want = meta.get("tensors_sha256")  # absent in head files written before it was added
    if want is not None and _tensors_sha256(tensors) != want:
        raise CheckpointError(f"{path}: weights do not match their sha256 (corrupt head file)")
    try:
        return HeadWeights(int(meta["version"]), meta["backbone_fingerprint"], tensors)
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupt head file metadata ({e!r})") from e


def _tensors_sha256(tensors: dict[str, np.ndarray]) -> str:
    import hashlib

    h = hashlib.sha256()
    for k in sorted(tensors):
        a = np.ascontiguousarray(tensors[k])
        h.update(f"{k}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def apply_head(vla: VLA, head: HeadWeights, check_backbone: bool = True) -> None:
    """Load a head into a VLA, refusing a head trained on a different backbone."""
    if check_backbone and head.backbone_fingerprint != vla.backbone.fingerprint():
        raise CheckpointError(
            f"head version {head.version} was trained on backbone {head.backbone_fingerprint}, "
            f"this policy's backbone is {vla.backbone.fingerprint()}"
        )
    vla.load_head(head.tensors, head.version)
