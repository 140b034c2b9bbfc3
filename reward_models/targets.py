"""Per-step training targets of the reward model, from outcomes, marks and interventions (pure).

Implements the table "Labels from the episode store" of REWARD.md. Frame t of a stored
episode is the observation *before* action t; an episode that succeeds does so on the
action of its last frame, so the success step is t_s = T - 1 and no stored frame shows
the finished scene.

| episode                          | progress          | success               | value                        |
|----------------------------------|-------------------|-----------------------|------------------------------|
| success, no takeover             | t / t_s           | 1 on the last w frames| return, 0 at t_s             |
| failure / timeout / aborted*     | masked            | 0                     | return with -C_fail terminal |
| with takeover                    | masked            | as success / failure  | autonomous part cut at each  |
|                                  |                   |                       | takeover with -C_fail        |
| running / disconnected           | masked            | masked                | masked                       |
| rewound clip (synthetic)         | progress of shown | 0                     | masked                       |
| mismatched instruction (synth.)  | 0                 | 0                     | masked                       |

(*) operator-aborted episodes count as failures when ``RewardDef.aborted_is_failure``;
an episode recovered after a crash or disconnect (``extra["recovered"] == "true"``) never does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlpost.schema import EpisodeMeta

ROLE_SUCCESS, ROLE_FAILURE, ROLE_UNKNOWN = "success", "failure", "unknown"


@dataclass(frozen=True)
class EpisodeTargets:
    """Targets of one episode; masked entries hold 0 and must be ignored."""

    progress: np.ndarray  # float32 [T], in [0, 1]
    progress_mask: np.ndarray  # bool [T]
    success: np.ndarray  # float32 [T], 0/1
    success_mask: np.ndarray  # bool [T]
    value: np.ndarray  # float32 [T], normalised return in [-1, 0] (REWARD.md)
    value_mask: np.ndarray  # bool [T]
    role: str  # ROLE_SUCCESS / ROLE_FAILURE (preference pairs) or ROLE_UNKNOWN (no outcome)


def episode_role(meta: EpisodeMeta, aborted_is_failure: bool = True) -> str:
    """Whether an episode counts as a success, a failure, or has no known outcome.

    Raises:
        ValueError: an outcome this function does not know (a newer schema).
    """
    if meta.outcome == "success":
        return ROLE_SUCCESS
    if meta.outcome in ("failure", "timeout"):
        return ROLE_FAILURE
    if meta.outcome == "aborted":
        recovered = meta.extra.get("recovered") == "true"
        return ROLE_FAILURE if aborted_is_failure and not recovered else ROLE_UNKNOWN
    if meta.outcome == "running":
        return ROLE_UNKNOWN
    raise ValueError(f"episode {meta.episode_id}: unknown outcome {meta.outcome!r}")


def step_rewards(
    length: int, success: bool, intervention: np.ndarray, t_max: int, c_fail: float
) -> tuple[np.ndarray, np.ndarray]:
    """Steps-to-go rewards and segment ends of one episode (REWARD.md "Reward and returns").

    r_t = -1 per step, 0 at the success step, -1 - C_fail at a failure/timeout terminal (the
    step's own -1 keeps every failure return strictly below the successes' [-0.5, 0]); the
    last autonomous step before a takeover ends its segment the same way (the policy would
    have failed there, RECAP). Everything is divided by (T_max + C_fail).

    Args:
        length: T >= 1.
        success: the episode ended in success (at its last step).
        intervention: bool [T], True where a person held control.
        t_max, c_fail: T_max and C_fail.

    Returns:
        rewards float32 [T] and ends bool [T] (True where a return segment ends).
    """
    if length < 1:
        raise ValueError(f"step_rewards: length={length} must be >= 1")
    if intervention.shape != (length,):
        raise ValueError(f"step_rewards: intervention has shape {intervention.shape}, expected ({length},)")
    human = intervention.astype(bool)
    r = np.full(length, -1.0)
    ends = np.zeros(length, bool)
    cut = ~human[:-1] & human[1:]  # autonomous step t followed by a takeover at t + 1
    r[:-1][cut], ends[:-1][cut] = -1.0 - c_fail, True
    r[-1], ends[-1] = (0.0 if success else -1.0 - c_fail), True
    return (r / (t_max + c_fail)).astype(np.float32), ends


def segment_returns(rewards: np.ndarray, ends: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """G_t = r_t + gamma * G_{t+1}, restarted after every segment end (float32 [T])."""
    g = np.zeros(len(rewards), np.float64)
    acc = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        acc = float(rewards[t]) + (0.0 if ends[t] else gamma * acc)
        g[t] = acc
    return g.astype(np.float32)


def episode_targets(
    meta: EpisodeMeta,
    intervention: np.ndarray,
    t_max: int,
    c_fail: float,
    success_window: int = 1,
    aborted_is_failure: bool = True,
) -> EpisodeTargets:
    """Training targets of one finished episode (see the module table).

    Args:
        meta: the episode's meta (outcome, extra tags); its length is T.
        intervention: bool [T].
        t_max, c_fail: T_max and C_fail of the reward definition.
        success_window: frames at the end of a success labelled "success now".
        aborted_is_failure: see :class:`reward_models.config.RewardDef`.

    Raises:
        ValueError: ``intervention`` does not have length T, or an unknown outcome.
    """
    n = meta.length
    if intervention.shape != (n,):
        raise ValueError(
            f"episode {meta.episode_id}: intervention has shape {intervention.shape}, meta says T={n}"
        )
    role = episode_role(meta, aborted_is_failure)
    zeros, no = np.zeros(n, np.float32), np.zeros(n, bool)
    if role == ROLE_UNKNOWN or n == 0:
        return EpisodeTargets(zeros, no, zeros.copy(), no.copy(), zeros.copy(), no.copy(), ROLE_UNKNOWN)
    succeeded = role == ROLE_SUCCESS
    took_over = bool(np.any(intervention))

    progress, progress_mask = zeros.copy(), no.copy()
    if succeeded and not took_over:
        progress = (np.arange(n) / max(n - 1, 1)).astype(np.float32)  # t / t_s, t_s = T - 1
        progress_mask[:] = True

    success = zeros.copy()
    if succeeded:
        success[max(0, n - success_window) :] = 1.0

    rewards, ends = step_rewards(n, succeeded, intervention, t_max, c_fail)
    value = np.clip(segment_returns(rewards, ends), -1.0, 0.0)
    return EpisodeTargets(progress, progress_mask, success, ~no, value, ~no, role)


def rewound_clip(length: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """A clip of a successful episode played forward to frame j, then backward (ReWiND, arXiv 2505.10911).

    Returns:
        frame indices int64 [L] (0..j, then j-1, j-2, ..., j-r) and the position where the
        rewind starts (first rewound element). Progress targets are those of the frames shown,
        so they fall along the rewound part; the temporal model learns progress can go down.

    Raises:
        ValueError: an episode shorter than 3 frames (nothing to rewind).
    """
    if length < 3:
        raise ValueError(f"rewound_clip: an episode of {length} frames is too short to rewind")
    j = int(rng.integers(length // 3, length))  # rewind from at least a third of the way
    j = max(j, 1)
    r = int(rng.integers(1, j + 1))
    forward = np.arange(j + 1)
    backward = np.arange(j - 1, j - r - 1, -1)
    return np.concatenate([forward, backward]).astype(np.int64), j + 1


def mismatched_instruction(instruction: str, pool: list[str], rng: np.random.Generator) -> str:
    """An instruction of the same task that is not this episode's (ReWiND's negative).

    Raises:
        ValueError: the pool has no instruction other than ``instruction``.
    """
    others = sorted({p for p in pool if p != instruction})
    if not others:
        raise ValueError(
            f"no other instruction than {instruction!r} in the data for a mismatched-instruction negative; "
            "set mismatch_fraction=0"
        )
    return others[int(rng.integers(len(others)))]


def window_index(seq: np.ndarray, positions: np.ndarray, window: int, stride: int) -> np.ndarray:
    """Frame indices the model sees for each position of a clip: the first frame, then K strided.

    Index j (0..K-1) of the window is seq[max(p - stride * (K - 1 - j), 0)]; steps before
    the start repeat the first frame rather than padding, so the window never reveals how
    far into the episode it is (REWARD.md: never feed the time index).

    Args:
        seq: int64 [L], frame indices of the clip (``arange(T)`` for a plain episode).
        positions: int64 [N], positions in ``seq`` to predict at.
        window, stride: K and the stride.

    Returns:
        int64 [N, K + 1]: column 0 the clip's first frame, column K the current frame.
    """
    offs = stride * np.arange(window - 1, -1, -1)  # [K], oldest first
    pos = np.maximum(positions[:, None] - offs[None, :], 0)
    first = np.full((len(positions), 1), seq[0], dtype=np.int64)
    return np.concatenate([first, seq[pos]], axis=1).astype(np.int64)
