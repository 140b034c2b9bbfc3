"""What an operator's console sees of a robot now: its latest camera frames and a short history.

:class:`LiveView` watches the control loop as a step observer: per step it keeps a
reference to the observation (no copy, no encoding), so it costs the loop a lock and an
append. Frames are JPEG-encoded only when someone asks (:meth:`LiveView.jpeg`, at the
console's refresh rate, and cached until the next observation), and the recent history
is kept only as long as a caller asked for (:meth:`LiveView.keep`; the reward model's
progress estimate needs its window of past frames).
"""

from __future__ import annotations

import collections
import io
import threading
from dataclasses import dataclass

import numpy as np
from PIL import Image

from rlpost.interfaces import OBS_IMAGES, OBS_INSTRUCTION, OBS_STATE

MAX_HISTORY = 256  # steps; a longer window request is refused (memory: 256 frames per camera)


@dataclass(frozen=True)
class FrameWindow:
    """Observations of the episode in flight at the steps a caller asked for."""

    steps: list[int]  # the step each row comes from (the nearest held one to what was asked)
    images: dict[str, np.ndarray]  # camera -> uint8 [N, h, w, 3]
    state: np.ndarray  # float32 [N, S]
    instruction: str


class LiveView:
    """A control-loop observer (``actors.control_loop.StepObserver``) that remembers the latest frames."""

    def __init__(self, jpeg_quality: int = 80) -> None:
        self.jpeg_quality = jpeg_quality
        self._lock = threading.Lock()
        self._first: dict | None = None  # the episode's first observation (the reward model's anchor)
        self._recent: collections.deque[tuple[int, dict]] = collections.deque(maxlen=1)  # (step, obs)
        self._step = -1  # step index of the latest observation in its episode (-1: none yet)
        self._seq = -1  # increases with every observation, across episodes
        self._encoded: tuple[int, dict[str, bytes]] = (-1, {})

    # -- StepObserver (called by the control loop's thread) ------------------------------------------------
    def on_reset(self, obs: dict, info: dict, seed: int | None) -> None:
        with self._lock:
            self._first, self._step = obs, 0
            self._recent.clear()
            self._recent.append((0, obs))
            self._seq += 1

    def on_step(self, obs: dict, info: dict, terminated: bool, truncated: bool) -> None:
        with self._lock:
            self._step += 1
            self._recent.append((self._step, obs))
            self._seq += 1

    # -- readers (any thread) --------------------------------------------------------------------------
    def keep(self, steps: int) -> None:
        """Hold at least the last ``steps`` observations from now on.

        Raises:
            ValueError: more than MAX_HISTORY steps.
        """
        if not 1 <= steps <= MAX_HISTORY:
            raise ValueError(f"live view history of {steps} steps must be in [1, {MAX_HISTORY}]")
        with self._lock:
            if steps > (self._recent.maxlen or 0):
                self._recent = collections.deque(self._recent, maxlen=steps)

    def jpeg(self) -> tuple[int, dict[str, bytes]]:
        """(sequence number, camera -> JPEG bytes) of the latest observation; (-1, {}) before the first.

        Encoded at most once per observation, on the caller's thread.
        """
        with self._lock:
            seq, latest = self._seq, self._recent[-1][1] if self._recent else None
            cached = self._encoded
        if latest is None:
            return -1, {}
        if cached[0] == seq:
            return cached
        out = {}
        for cam, img in latest[OBS_IMAGES].items():
            buf = io.BytesIO()
            Image.fromarray(np.asarray(img, np.uint8)).save(buf, format="JPEG", quality=self.jpeg_quality)
            out[cam] = buf.getvalue()
        self._encoded = (seq, out)
        return seq, out

    def window(self, steps: list[int]) -> FrameWindow | None:
        """Observations at ``steps`` of the episode in flight (step 0: its first observation).

        A step older than the history holds is served by the oldest held one (callers
        ask :meth:`keep` for enough history first). None before the first observation.
        """
        with self._lock:
            first, recent = self._first, list(self._recent)
        if first is None or not recent:
            return None
        held = {s: o for s, o in recent}
        oldest = recent[0][0]
        got_steps, obs = [], []
        for s in steps:
            if s == 0:
                got_steps.append(0)
                obs.append(first)
                continue
            s = min(max(s, oldest), recent[-1][0])
            got_steps.append(s)
            obs.append(held[s])
        cams = list(obs[0][OBS_IMAGES])
        return FrameWindow(
            steps=got_steps,
            images={c: np.stack([np.asarray(o[OBS_IMAGES][c], np.uint8) for o in obs]) for c in cams},
            state=np.stack([np.asarray(o[OBS_STATE], np.float32) for o in obs]),
            instruction=str(obs[-1][OBS_INSTRUCTION]),
        )
