"""How the critic methods of `rlpost compare` act: best-of-N by the chunk critic, or the head's
chunk corrected by an edit actor trained against it. Both are refit every round."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rlpost.compare.config import CompareConfig, best_of
from rlpost.evaluation import best_of_n_chunk_fn
from rlpost.policy import VLA, ObsBatch
from rlpost.policy.chunk_critic import ChunkCritic
from rlpost.policy.edit_actor import EditActor, EditedPolicy
from rlpost.rollout import ChunkFn
from rlpost.schema import Observation

EDIT_METHOD = "edit"


def uses_critic(method: str) -> bool:
    """The methods that act through a chunk critic (and refit it every round)."""
    return best_of(method) is not None or method == EDIT_METHOD


@dataclass
class CriticActing:
    """One round's way of acting: best-of-``n`` by ``critic``, or (with ``actor``) the edited chunk."""

    vla: VLA
    critic: ChunkCritic
    n: int
    risk: float
    actor: EditActor | None = None

    def chunk_fn(self, generator: torch.Generator, noise_scale: float | None = None) -> ChunkFn:
        if self.actor is None:
            return best_of_n_chunk_fn(self.vla, self.critic, self.n, self.risk, generator, noise_scale)
        policy = EditedPolicy(self.vla, self.actor)

        # an edited chunk is stored without noise: the noise gives the head's chunk, not the edit
        def chunks(obs: Sequence[Observation]) -> np.ndarray:
            return policy.act(ObsBatch.stack(obs), generator, noise_scale)[0].cpu().numpy()

        return chunks


def acting_for(
    method: str, vla: VLA, critic: ChunkCritic, cfg: CompareConfig, actor: EditActor | None
) -> CriticActing:
    return CriticActing(vla, critic, best_of(method) or 1, cfg.critic_risk, actor)
