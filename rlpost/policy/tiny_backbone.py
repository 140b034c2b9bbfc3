"""rlpost's own small vision-language backbone; trains on a CPU in minutes, downloads nothing.

Per camera: a conv stem gives a feature map at 1/4 resolution; it is read out as
(a) a grid of pooled patch tokens with 2-D position embeddings (ViT-style) and
(b) spatial-softmax keypoints: for each of K learned channels, the expected (x, y)
under a softmax over the map plus the feature there. EXPERIMENTS.md found that a
conv-and-flatten encoder could not locate objects on this kind of task while a
keypoint read-out could, so both are kept. Text is UTF-8 bytes through a small
transformer; fusion layers attend jointly over image and text tokens so the
instruction can select what matters in the image.
"""

from __future__ import annotations

from dataclasses import asdict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlpost.policy.backbone import Backbone, Prefix
from rlpost.policy.config import TinyBackboneConfig
from rlpost.policy.layers import EncoderBlock

PAD, BOS, EOS, BYTE_OFFSET = 0, 1, 2, 3
NEUTRAL_LATER_OPTIONS = {"film": False}  # TinyBackboneConfig fields added later, at their no-op value
VOCAB = 256 + BYTE_OFFSET


class ByteTokenizer:
    """UTF-8 bytes as tokens: no vocabulary file, works for any language."""

    def __init__(self, max_len: int) -> None:
        self.max_len = max_len

    def __call__(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        """B strings -> ids int64 [B, L] and mask bool [B, L] (L = max_len).

        Raises:
            ValueError: an instruction longer than max_len - 2 bytes (it is never cut silently).
        """
        ids = torch.full((len(texts), self.max_len), PAD, dtype=torch.int64)
        for i, text in enumerate(texts):
            raw = text.encode("utf-8")
            if len(raw) + 2 > self.max_len:
                raise ValueError(
                    f"instruction {i} is {len(raw)} bytes; the tiny backbone takes at most "
                    f"{self.max_len - 2} (raise policy.tiny.max_text_len; under rlpost demo, "
                    f"pretrain.policy.tiny.max_text_len): {text[:40]!r}..."
                )
            seq = [BOS, *(b + BYTE_OFFSET for b in raw), EOS]
            ids[i, : len(seq)] = torch.tensor(seq)
        return ids, ids != PAD


class SpatialSoftmax(nn.Module):
    """Feature map [B, C, h, w] -> K keypoints: expected (x, y) in [-1, 1] and the expected feature."""

    def __init__(self, channels: int, keypoints: int) -> None:
        super().__init__()
        self.logits = nn.Conv2d(channels, keypoints, 1)

    def forward(self, fmap: Tensor) -> tuple[Tensor, Tensor]:
        h, w = fmap.shape[-2:]
        attn = self.logits(fmap).flatten(2).softmax(-1)  # [B, K, h*w]
        ys, xs = torch.meshgrid(
            torch.linspace(-1, 1, h, device=fmap.device),
            torch.linspace(-1, 1, w, device=fmap.device),
            indexing="ij",
        )
        grid = torch.stack([xs.flatten(), ys.flatten()], -1)  # [h*w, 2]
        xy = attn @ grid  # [B, K, 2]
        feat = attn @ fmap.flatten(2).transpose(1, 2)  # [B, K, C]
        return xy, feat


class CameraEncoder(nn.Module):
    """One camera image -> grid*grid patch tokens + K keypoint tokens, width D."""

    def __init__(self, cfg: TinyBackboneConfig) -> None:
        super().__init__()
        d = cfg.width
        self.stem = nn.Sequential(
            nn.Conv2d(3, 32, 3, stride=2, padding=1),
            nn.GroupNorm(8, 32),
            nn.GELU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.GroupNorm(8, 64),
            nn.GELU(),
            nn.Conv2d(64, d, 3, padding=1),
        )
        self.grid = cfg.grid
        self.patch_pos = nn.Parameter(torch.randn(cfg.grid * cfg.grid, d) * 0.02)
        self.keypoints = SpatialSoftmax(d, cfg.keypoints)
        self.kp_proj = nn.Linear(d + 2, d)
        self.blocks = nn.ModuleList(
            EncoderBlock(d, cfg.heads, dropout=cfg.dropout) for _ in range(cfg.vision_depth)
        )
        self.film = nn.Linear(d, 2 * d) if cfg.film else None
        if self.film is not None:
            nn.init.zeros_(self.film.weight)  # starts as the identity: (1 + 0) * fmap + 0
            nn.init.zeros_(self.film.bias)

    def forward(self, pixels: Tensor, text: Tensor | None = None) -> Tensor:
        """pixels [B, 3, s, s] in [-1, 1]; text [B, D] pooled instruction (used with FiLM)."""
        fmap = self.stem(pixels)  # [B, D, s/4, s/4]
        if self.film is not None:
            gamma, beta = self.film(text).chunk(2, dim=-1)
            fmap = fmap * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]
        patches = F.adaptive_avg_pool2d(fmap, self.grid).flatten(2).transpose(1, 2) + self.patch_pos
        xy, feat = self.keypoints(fmap)
        tokens = torch.cat([patches, self.kp_proj(torch.cat([feat, xy], -1))], dim=1)
        for blk in self.blocks:
            tokens = blk(tokens)
        return tokens


class TinyBackbone(Backbone):
    """Small ViT-style image encoder + byte-level text transformer, fused; see the module docstring."""

    def __init__(self, cfg: TinyBackboneConfig, cameras: tuple[str, ...]) -> None:
        super().__init__()
        self.cfg, self.cameras, self.width = cfg, tuple(cameras), cfg.width
        d = cfg.width
        self.tokenizer = ByteTokenizer(cfg.max_text_len)
        self.camera_encoders = nn.ModuleDict({cam: CameraEncoder(cfg) for cam in self.cameras})
        self.camera_embed = nn.Parameter(torch.randn(len(self.cameras), d) * 0.02)
        self.text_embed = nn.Embedding(VOCAB, d, padding_idx=PAD)
        self.text_pos = nn.Parameter(torch.randn(cfg.max_text_len, d) * 0.02)
        self.text_blocks = nn.ModuleList(
            EncoderBlock(d, cfg.heads, dropout=cfg.dropout) for _ in range(cfg.text_depth)
        )
        self.fusion = nn.ModuleList(
            EncoderBlock(d, cfg.heads, dropout=cfg.dropout) for _ in range(cfg.fusion_depth)
        )
        self.norm = nn.LayerNorm(d)

    def config_dict(self) -> dict:
        return {"kind": "tiny", "cfg": asdict(self.cfg), "cameras": list(self.cameras)}

    def fingerprint_config(self) -> dict:
        # Options added after the first release are left out while they keep their neutral
        # value, so a new option does not invalidate the feature caches and reward models of
        # backbones that do not use it.
        d = self.config_dict()
        d["cfg"] = {
            k: v
            for k, v in d["cfg"].items()
            if not (k in NEUTRAL_LATER_OPTIONS and v == NEUTRAL_LATER_OPTIONS[k])
        }
        return d

    def embed(self, images: dict[str, Tensor], instructions: list[str]) -> Prefix:
        device = self.text_pos.device
        s = self.cfg.image_size
        ids, text_mask = self.tokenizer(instructions)
        ids, text_mask = ids.to(device), text_mask.to(device)
        text = self.text_embed(ids) + self.text_pos
        for blk in self.text_blocks:
            text = blk(text, mask=text_mask)
        m = text_mask.unsqueeze(-1).float()
        pooled = (text * m).sum(1) / m.sum(1)  # [B, D], mean over real tokens (for FiLM)
        parts = []
        for i, cam in enumerate(self.cameras):
            # uint8 [B, h, w, 3] -> float [B, 3, h, w] in [-1, 1]
            x = images[cam].to(device).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
            if x.shape[-2:] != (s, s):
                x = F.interpolate(x, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
            parts.append(self.camera_encoders[cam](x, pooled) + self.camera_embed[i])
        image_tokens = torch.cat(parts, dim=1)
        tokens = torch.cat([image_tokens, text], dim=1)
        mask = torch.cat(
            [torch.ones(image_tokens.shape[:2], dtype=torch.bool, device=device), text_mask], dim=1
        )
        for blk in self.fusion:
            tokens = blk(tokens, mask=mask)
        return Prefix(self.norm(tokens), mask)
