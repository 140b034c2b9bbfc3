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
from rlpost.policy.noise_actor import NoiseActor, NoisePolicy
from rlpost.rollout import ChunkFn, SampledBatch
from rlpost.schema import Observation

EDIT_METHOD, NOISE_METHOD = "edit", "noise"


def uses_critic(method: str) -> bool:
    """The methods that act through a chunk critic (and refit it every round)."""
    return best_of(method) is not None or method in (EDIT_METHOD, NOISE_METHOD)


@dataclass
class CriticActing:
    """One round's way of acting: best-of-``n`` by ``critic``, or (with ``actor``) the edited chunk."""

    vla: VLA
    critic: ChunkCritic
    n: int
    risk: float
    actor: EditActor | None = None
    noise_actor: NoiseActor | None = None
    explore: float = 0.0  # the noise actor's exploration while practising

    def chunk_fn(
        self, generator: torch.Generator, noise_scale: float | None = None, practice: bool = False
    ) -> ChunkFn:
        if self.noise_actor is not None:
            noisy = NoisePolicy(self.vla, self.noise_actor, self.explore if practice else 0.0)

            def sampled(obs: Sequence[Observation]) -> SampledBatch:
                chunks, noise = noisy.act(ObsBatch.stack(obs), generator)
                return SampledBatch(chunks.cpu().numpy(), noise.cpu().numpy())

            return sampled
        if self.actor is None:
            return best_of_n_chunk_fn(self.vla, self.critic, self.n, self.risk, generator, noise_scale)
        policy = EditedPolicy(self.vla, self.actor)

        # an edited chunk is stored without noise: the noise gives the head's chunk, not the edit
        def chunks(obs: Sequence[Observation]) -> np.ndarray:
            return policy.act(ObsBatch.stack(obs), generator, noise_scale)[0].cpu().numpy()

        return chunks


def acting_for(
    method: str,
    vla: VLA,
    critic: ChunkCritic,
    cfg: CompareConfig,
    actor: EditActor | None = None,
    noise_actor: NoiseActor | None = None,
) -> CriticActing:
    return CriticActing(
        vla, critic, best_of(method) or 1, cfg.critic_risk, actor, noise_actor, cfg.noise.explore
    )
