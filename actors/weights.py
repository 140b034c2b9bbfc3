"""Where a robot actor gets newer head weights (:class:`rlpost.interfaces.WeightSource`).

- :class:`HeadDirectory`: a directory of ``head-<version>.safetensors`` files written by
  :func:`rlpost.policy.save_head` (the learner's publisher, or a person copying a file).
- :class:`LatestWeights`: the newest weights handed to the actor in memory; with Ray, the
  learner passes an object ref of a dict of numpy arrays to ``RobotActor.offer_weights``
  and Ray resolves it, so actors never import Ray for this.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import numpy as np

from rlpost.policy.checkpoint import CheckpointError, load_head_file

HEAD_FILE_RE = re.compile(r"^head-(\d+)\.safetensors$")


class HeadDirectory:
    """Head files in one directory; the highest version wins."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"HeadDirectory({str(self.path)!r})"

    def _versions(self) -> dict[int, Path]:
        if not self.path.is_dir():
            return {}
        out = {}
        for f in self.path.iterdir():
            m = HEAD_FILE_RE.match(f.name)
            if m:
                out[int(m.group(1))] = f
        return out

    def latest_version(self) -> int:
        """The highest version present, or -1 when there is none (no directory yet counts as none)."""
        return max(self._versions(), default=-1)

    def fetch(self, version: int) -> dict[str, np.ndarray]:
        """The head tensors of ``version``.

        Raises:
            CheckpointError: no such file, a corrupt file, or a file whose metadata names another version.
        """
        f = self._versions().get(version)
        if f is None:
            raise CheckpointError(f"{self.path}: no head-{version}.safetensors")
        head = load_head_file(f)
        if head.version != version:
            raise CheckpointError(f"{f}: the file says version {head.version}, its name says {version}")
        return head.tensors


class LatestWeights:
    """The newest head weights offered in memory (thread-safe); older offers are ignored."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version = -1
        self._tensors: dict[str, np.ndarray] = {}

    def __repr__(self) -> str:
        return f"LatestWeights(version={self._version})"

    def offer(self, tensors: dict[str, np.ndarray], version: int) -> bool:
        """Keep ``tensors`` if ``version`` is newer than what is held; returns whether it was kept."""
        with self._lock:
            if version <= self._version:
                return False
            self._version, self._tensors = int(version), dict(tensors)
            return True

    def latest_version(self) -> int:
        with self._lock:
            return self._version

    def fetch(self, version: int) -> dict[str, np.ndarray]:
        """Raises KeyError when ``version`` is not the one held (it was superseded)."""
        with self._lock:
            if version != self._version:
                raise KeyError(f"head version {version} is not held (latest is {self._version})")
            return self._tensors
