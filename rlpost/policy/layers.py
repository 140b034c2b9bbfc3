"""Transformer blocks shared by the tiny backbone and the action expert, and the small MLP of the
critic and the actors beside the head."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def key_padding_mask(mask: Tensor | None) -> Tensor | None:
    """bool [B, P] (True = real token) -> an SDPA mask [B, 1, 1, P] (True = may attend)."""
    return None if mask is None else mask[:, None, None, :]


class Attention(nn.Module):
    """Multi-head attention with separate query and key/value inputs (self- or cross-attention)."""

    def __init__(self, width: int, heads: int, kv_width: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads, self.dh = heads, width // heads
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(kv_width or width, 2 * width)
        self.out = nn.Linear(width, width)
        self.dropout = dropout

    def project_kv(self, context: Tensor) -> tuple[Tensor, Tensor]:
        """context [B, P, Dkv] -> keys, values [B, heads, P, dh]; cacheable for a fixed context."""
        b, p, _ = context.shape
        k, v = self.kv(context).view(b, p, 2, self.heads, self.dh).permute(2, 0, 3, 1, 4)
        return k, v

    def attend(self, x: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None) -> Tensor:
        b, n, d = x.shape
        q = self.q(x).view(b, n, self.heads, self.dh).transpose(1, 2)
        drop = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=drop)
        return self.out(y.transpose(1, 2).reshape(b, n, d))

    def forward(self, x: Tensor, context: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        k, v = self.project_kv(x if context is None else context)
        return self.attend(x, k, v, key_padding_mask(mask))


class Mlp(nn.Sequential):
    def __init__(self, width: int, ratio: int = 4, dropout: float = 0.0) -> None:
        super().__init__(
            nn.Linear(width, ratio * width), nn.GELU(), nn.Dropout(dropout), nn.Linear(ratio * width, width)
        )


class EncoderBlock(nn.Module):
    """Pre-norm self-attention block with a key padding mask."""

    def __init__(self, width: int, heads: int, mlp_ratio: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = Attention(width, heads, dropout=dropout)
        self.mlp = Mlp(width, mlp_ratio, dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        x = x + self.attn(self.norm1(x), mask=mask)
        return x + self.mlp(self.norm2(x))


def sinusoidal_embedding(t: Tensor, dim: int, min_period: float = 4e-3, max_period: float = 4.0) -> Tensor:
    """Sine-cosine embedding of a scalar in [0, 1] (flow time), float32 [B] -> [B, dim].

    Periods span [min_period, max_period] so both coarse and fine changes of tau are visible.
    """
    half = dim // 2
    frac = torch.linspace(0.0, 1.0, half, device=t.device, dtype=torch.float32)
    period = min_period * (max_period / min_period) ** frac
    angle = t.float()[:, None] * (2 * math.pi / period)[None, :]
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1)


def layer_norm_mlp(n_in: int, width: int, n_out: int) -> nn.Sequential:
    """Two hidden layers with LayerNorm before each (the recipe of the chunk critics and actors on
    frozen features: LayerNorm keeps the ensemble's and the actors' inputs and activations in range)."""
    return nn.Sequential(
        nn.LayerNorm(n_in),
        nn.Linear(n_in, width),
        nn.LayerNorm(width),
        nn.GELU(),
        nn.Linear(width, width),
        nn.LayerNorm(width),
        nn.GELU(),
        nn.Linear(width, n_out),
    )
