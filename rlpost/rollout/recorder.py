"""The step recorder: how a rollout's episodes and steps go into an episode store.

One place decides what a stored step says about who acted: ``intervention`` when a person's
action was executed, ``policy_action`` what the policy proposed (NaN when it proposed nothing:
a person held control, or no learned policy was acting), and ``policy_version`` the head that
proposed it, :data:`NO_POLICY_VERSION` when none did (demonstrations, scripted behaviours), and
``chunk_start`` the frame whose observation the executed chunk was sampled from (-1 when no policy
chunk acted), with the chunk as sampled and its noise on the first step that executes it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import numpy as np

from rlpost.interfaces import EpisodeSink
from rlpost.schema import EpisodeMeta, Observation, SampledChunk, Source, StepRecord

NO_POLICY_VERSION = -1  # policy_version of a step no learned head proposed


def step_record(
    o: Observation,
    action: np.ndarray,
    policy_action: np.ndarray,
    *,
    intervention: bool,
    policy_version: int,
    t_ns: int,
    frame_index: int,
    reward: float = float("nan"),
    chunk_start: int = -1,
    sampled: SampledChunk | None = None,
) -> StepRecord:
    """The StepRecord of one control step (the one constructor every loop uses)."""
    return StepRecord(
        images=o.images,
        state=o.state,
        action=action,
        policy_action=policy_action,
        intervention=intervention,
        policy_version=policy_version,
        t_ns=t_ns,
        frame_index=frame_index,
        reward=reward,
        chunk_start=chunk_start,
        sampled=sampled,
    )


@dataclass
class EpisodeRecorder:
    """Begins, appends to and finishes the episodes of one rollout in ``sink``.

    ``policy_version`` is the head acting in this rollout (:data:`NO_POLICY_VERSION` for scripted
    actors); ``extra`` tags every episode's meta (a rollout's caller adds per-episode tags).
    """

    sink: EpisodeSink
    task: str
    session_id: str
    source: Source = "autonomous"
    policy_version: int = NO_POLICY_VERSION
    extra: dict[str, str] = field(default_factory=dict)

    def begin(self, robot_id: str, seed: int, instruction: str, extra: dict[str, str]) -> EpisodeMeta:
        meta = EpisodeMeta(
            episode_id=uuid.uuid4().hex,
            task=self.task,
            instruction=instruction,
            robot_id=robot_id,
            session_id=self.session_id,
            source=self.source,
            seed=int(seed),
            start_ns=time.time_ns(),
            extra={**self.extra, **extra},
        )
        self.sink.begin(meta)
        return meta

    def append(
        self,
        episode_id: str,
        o: Observation,
        action: np.ndarray,
        policy_action: np.ndarray,
        *,
        intervention: bool,
        frame_index: int,
        reward: float,
        chunk_start: int = -1,
        sampled: SampledChunk | None = None,
    ) -> None:
        self.sink.append(
            episode_id,
            step_record(
                o,
                action,
                policy_action,
                intervention=intervention,
                policy_version=self.policy_version,
                t_ns=time.monotonic_ns(),
                frame_index=frame_index,
                reward=reward,
                chunk_start=chunk_start,
                sampled=sampled,
            ),
        )

    def finish(self, episode_id: str, outcome: str, marked_by: str) -> EpisodeMeta:
        return self.sink.finish(episode_id, outcome=outcome, marked_by=marked_by)
