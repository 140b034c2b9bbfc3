"""Optimizer and RNG state beside a checkpoint, without pickle (safetensors + JSON)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from rlpost.policy.checkpoint import CheckpointError

STATE_FILE = "training_state.safetensors"
META_FILE = "training_state.json"


def save_training_state(path: str | Path, optimizer: torch.optim.Optimizer, meta: dict[str, Any]) -> None:
    """Write the optimizer's tensors, torch's RNG state and JSON ``meta`` (step, numpy RNG, ...) into ``path``."""
    path = Path(path)
    sd = optimizer.state_dict()
    tensors = {"torch_rng": torch.get_rng_state()}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"state.{idx}.{key}"] = t.contiguous()
    tmp = path / f".{STATE_FILE}.tmp"
    save_file(tensors, str(tmp))
    os.replace(tmp, path / STATE_FILE)
    (path / META_FILE).write_text(json.dumps({"param_groups": sd["param_groups"], **meta}))


def load_training_state(path: str | Path, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore what :func:`save_training_state` wrote; returns its ``meta``.

    Raises:
        CheckpointError: a file is missing or corrupt (named), or the optimizer does not fit.
    """
    path = Path(path)
    try:
        tensors = load_file(str(path / STATE_FILE))
        meta = json.loads((path / META_FILE).read_text())
    except FileNotFoundError as e:
        raise CheckpointError(f"{e.filename}: no training state to resume from") from e
    except (SafetensorError, OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}/{STATE_FILE}: corrupt training state ({e})") from e
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, t in tensors.items():
        if name.startswith("state."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = t
    try:
        optimizer.load_state_dict({"state": state, "param_groups": meta.pop("param_groups")})
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: optimizer state does not fit this model ({e})") from e
    torch.set_rng_state(tensors["torch_rng"])
    return meta
