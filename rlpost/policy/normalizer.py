"""State and action normalisation from dataset statistics; saved with the checkpoint."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

# A dimension that never varies in the data (a fixed gripper, a padded joint) must not
# be blown up by a near-zero std.
MIN_STD = 1e-2


@dataclass(frozen=True)
class NormStats:
    """Per-dimension mean and std of a dataset field, in robot units."""

    mean: np.ndarray  # float32 [D]
    std: np.ndarray  # float32 [D]

    @staticmethod
    def of(x: np.ndarray) -> NormStats:
        """Stats of samples float [N, D] (N >= 1)."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, x.shape[-1])
        return NormStats(x.mean(0).astype(np.float32), x.std(0).astype(np.float32))

    @staticmethod
    def identity(dim: int) -> NormStats:
        return NormStats(np.zeros(dim, np.float32), np.ones(dim, np.float32))


class Normalizer(nn.Module):
    """(x − mean) / std with std floored at MIN_STD; buffers, so they travel in state_dict."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def set_stats(self, stats: NormStats) -> None:
        if stats.mean.shape != self.mean.shape or stats.std.shape != self.std.shape:
            raise ValueError(
                f"normaliser stats have shapes {stats.mean.shape}/{stats.std.shape}, expected {tuple(self.mean.shape)}"
            )
        if not (np.all(np.isfinite(stats.mean)) and np.all(np.isfinite(stats.std))):
            raise ValueError("normaliser stats contain NaN/Inf")
        self.mean.copy_(torch.as_tensor(stats.mean))
        self.std.copy_(torch.as_tensor(np.maximum(stats.std, MIN_STD)))

    def stats(self) -> NormStats:
        return NormStats(self.mean.cpu().numpy().copy(), self.std.cpu().numpy().copy())

    def normalize(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def unnormalize(self, x: Tensor) -> Tensor:
        return x * self.std + self.mean
