"""What acts in a rollout when no person holds control: a batched chunk policy, or per-step functions.

The lockstep loop asks an :class:`Actor` for the next actions of every robot whose plan ran
out, all at once (one batched policy call for a VLA), and executes them one per step::

    tags = actor.reset(slot, episode)                # after robot `slot` reset; tags for its episode
    plans = actor.plan([2, 5], [obs_2, obs_5])        # float32 [k, A] each, k >= 1, run in order
                                                      # (a chunk actor's come as PlannedChunk)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from rlpost.schema import Observation

StepFn = Callable[[Observation], np.ndarray]  # one observation -> float32 [A]


@dataclass(frozen=True)
class SampledBatch:
    """What a sampling policy returns for B observations: the chunks and the noise behind them."""

    actions: np.ndarray  # float32 [B, H, A], robot units
    noise: np.ndarray  # float32 [B, H, A], the flow's initial noise (normalised units)


# B observations -> float32 [B, H, A], or a SampledBatch when the policy can say what it sampled
ChunkFn = Callable[[Sequence[Observation]], "np.ndarray | SampledBatch"]


@dataclass(frozen=True)
class PlannedChunk:
    """A chunk actor's plan for one robot: the actions to execute and, if known, the chunk as sampled."""

    actions: np.ndarray  # float32 [k, A], executed in order
    sampled: np.ndarray | None = None  # float32 [H, A], the whole chunk
    noise: np.ndarray | None = None  # float32 [H, A]


@dataclass(frozen=True)
class EpisodePlan:
    """One episode a rollout is to run."""

    seed: int  # the env seed (also the simulated operator's)
    supervised: bool = True  # the slot's operator, if the rollout has operators, watches this episode
    extra: dict[str, str] = field(default_factory=dict)  # tags for the stored episode's meta


class Actor(Protocol):
    """Plans the actions of robots whose plan ran out; see the module docstring."""

    def reset(self, slot: int, episode: EpisodePlan) -> dict[str, str]: ...

    def plan(
        self, slots: Sequence[int], obs: Sequence[Observation]
    ) -> Sequence[np.ndarray | PlannedChunk]: ...


@dataclass
class ChunkActor:
    """A batched chunk policy: each robot executes the first ``execute`` of a chunk's H actions."""

    chunk_fn: ChunkFn
    execute: int

    def reset(self, slot: int, episode: EpisodePlan) -> dict[str, str]:
        return {}  # a VLA keeps no per-episode state

    def plan(self, slots: Sequence[int], obs: Sequence[Observation]) -> Sequence[PlannedChunk]:
        out = self.chunk_fn(obs)
        if isinstance(out, SampledBatch):
            return [
                PlannedChunk(
                    np.asarray(c, np.float32)[: self.execute],
                    np.asarray(c, np.float32),
                    np.asarray(z, np.float32),
                )
                for c, z in zip(out.actions, out.noise, strict=True)
            ]
        return [PlannedChunk(np.asarray(c, np.float32)[: self.execute]) for c in out]


@dataclass
class StepActor:
    """One function per robot slot, asked for one action per step (scripted experts, behaviours).

    ``on_reset(slot, episode)`` runs after each robot reset (e.g. the expert's own reset) and may
    return tags for the episode's meta (e.g. the kind of demo the expert drew).
    """

    step_fns: Sequence[StepFn]
    on_reset: Callable[[int, EpisodePlan], dict[str, str] | None] | None = None

    def reset(self, slot: int, episode: EpisodePlan) -> dict[str, str]:
        tags = self.on_reset(slot, episode) if self.on_reset is not None else None
        return dict(tags or {})

    def plan(self, slots: Sequence[int], obs: Sequence[Observation]) -> Sequence[np.ndarray]:
        return [np.asarray(self.step_fns[i](o), np.float32)[None] for i, o in zip(slots, obs, strict=True)]
