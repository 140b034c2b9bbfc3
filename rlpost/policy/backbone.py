"""The vision-language backbone interface: images + instruction -> a prefix of feature tokens.

In RL the backbone is frozen and its prefix is computed once per frame (and cached
by the learner), so everything here is about producing a deterministic,
fingerprinted feature map from raw observations.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, is_dataclass

import torch
from torch import Tensor, nn


@dataclass
class Prefix:
    """The backbone's output, the context the action expert cross-attends to."""

    tokens: Tensor  # float32 [B, P, D]
    mask: Tensor  # bool [B, P], True where a token is real (False: padding)

    def __post_init__(self) -> None:
        if self.tokens.ndim != 3 or self.mask.shape != self.tokens.shape[:2]:
            raise ValueError(
                f"Prefix: tokens {tuple(self.tokens.shape)} and mask {tuple(self.mask.shape)} "
                "must be [B, P, D] and [B, P]"
            )

    @property
    def batch_size(self) -> int:
        return self.tokens.shape[0]

    def index(self, idx: Tensor | slice | list[int]) -> Prefix:
        """Rows ``idx`` of the batch (for the learner's feature cache)."""
        return Prefix(self.tokens[idx], self.mask[idx])

    @staticmethod
    def cat(parts: list[Prefix]) -> Prefix:
        """Concatenate along the batch; prefixes of different lengths are padded (mask False)."""
        p_max = max(p.tokens.shape[1] for p in parts)
        toks, masks = [], []
        for p in parts:
            pad = p_max - p.tokens.shape[1]
            toks.append(nn.functional.pad(p.tokens, (0, 0, 0, pad)))
            masks.append(nn.functional.pad(p.mask, (0, pad), value=False))
        return Prefix(torch.cat(toks), torch.cat(masks))


class Backbone(nn.Module, ABC):
    """Maps camera images and an instruction to a prefix of feature tokens.

    Subclasses implement :meth:`embed`; this base class owns freezing and the
    fingerprint that keys cached features.
    """

    width: int  # D of the prefix tokens
    cameras: tuple[str, ...]  # camera names, in the order their tokens appear

    def __init__(self) -> None:
        super().__init__()
        self._frozen = False

    @abstractmethod
    def embed(self, images: dict[str, Tensor], instructions: list[str]) -> Prefix:
        """Args:
            images: camera -> uint8 [B, h, w, 3] (already validated by the VLA).
            instructions: B strings.

        Returns:
            The prefix, float32 [B, P, D] with its mask.
        """

    @abstractmethod
    def config_dict(self) -> dict:
        """JSON-able config that rebuilds this backbone (saved in checkpoints)."""

    def forward(self, images: dict[str, Tensor], instructions: list[str]) -> Prefix:
        if self._frozen:
            with torch.no_grad():
                return self.embed(images, instructions)
        return self.embed(images, instructions)

    # -- freezing ---------------------------------------------------------------------------------
    @property
    def frozen(self) -> bool:
        return self._frozen

    def freeze(self) -> Backbone:
        """No gradients, eval mode (dropout off), and it stays in eval mode under ``.train()``."""
        self._frozen = True
        for p in self.parameters():
            p.requires_grad_(False)
        return super().train(False)

    def train(self, mode: bool = True) -> Backbone:
        # A frozen backbone must give the same features whatever mode the VLA is put in,
        # or cached features would disagree with fresh ones.
        return super().train(False if self._frozen else mode)

    def fingerprint_config(self) -> dict:
        """The config the fingerprint hashes (default: :meth:`config_dict`)."""
        return self.config_dict()

    def fingerprint(self) -> str:
        """Hash of config and weights: features cached under one fingerprint are valid for it only."""
        h = hashlib.sha256(json.dumps(self.fingerprint_config(), sort_keys=True).encode())
        for name, t in sorted(self.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().to(torch.float32).contiguous().cpu().numpy().tobytes())
        return h.hexdigest()[:16]


def dataclass_dict(cfg: object) -> dict:
    """A dataclass config as a plain dict (for JSON in checkpoints)."""
    if not is_dataclass(cfg):
        raise TypeError(f"expected a dataclass config, got {type(cfg).__name__}")
    return asdict(cfg)  # type: ignore[arg-type]
