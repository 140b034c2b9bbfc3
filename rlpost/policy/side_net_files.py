"""Files of the small nets that ship beside a head (edit and noise actors): safetensors + spec."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import save_file as save_numpy
from torch import nn

from rlpost.policy.checkpoint import CheckpointError, read_tensor_file


def save_side_net(net: nn.Module, spec: Any, fmt: str, path: str | Path) -> Path:
    """Write ``net``'s weights and its dataclass ``spec`` to one file, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}
    tmp = path.with_name(f".{path.name}.tmp")
    save_numpy(tensors, str(tmp), metadata={"format": fmt, "spec": json.dumps(asdict(spec))})
    os.replace(tmp, path)
    return path


def load_side_net(
    path: str | Path, fmt: str, what: str, build: Callable[[dict[str, Any]], nn.Module]
) -> nn.Module:
    """The net ``build(spec fields)`` with the file's weights, in eval mode.

    Raises:
        CheckpointError: missing, truncated, not a ``what`` file, or weights that do not fit the spec.
    """
    path = Path(path)
    meta, tensors = read_tensor_file(path, what)
    if meta.get("format") != fmt:
        raise CheckpointError(f"{path}: not an rlpost {what} (format={meta.get('format')!r})")
    try:
        net = build(json.loads(meta["spec"]))
        net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in tensors.items()})
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: {what} weights or spec do not fit ({e})") from e
    return net.eval()
