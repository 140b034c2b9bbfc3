"""Publishing head weights with a monotonically increasing version.

Heads go to ``<dir>/head-<version:06d>.safetensors`` (rlpost.policy.save_head: the
expert and normalisers only, tagged with the backbone fingerprint), written
atomically; the newest file is the latest version. Versions continue across
learner restarts because the next version is read back from the directory.
In a practice session the learner also puts the head's arrays in the Ray object
store (rlpost.session does that); this file is the durable record.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from rlpost.policy import VLA, save_head

log = logging.getLogger(__name__)
HEAD_FILE = re.compile(r"^head-(\d+)\.safetensors$")


def head_path(directory: str | Path, version: int) -> Path:
    return Path(directory) / f"head-{version:06d}.safetensors"


def published_versions(directory: str | Path) -> list[int]:
    """Versions present in a head directory, ascending."""
    d = Path(directory)
    if not d.exists():
        return []
    return sorted(int(m.group(1)) for p in d.iterdir() if (m := HEAD_FILE.match(p.name)))


class HeadPublisher:
    """Writes each new head as the next version; never reuses or skips a version number."""

    def __init__(self, directory: str | Path, after: int = 0) -> None:
        """``after``: the version to continue from while the directory holds no head yet (a learner
        that starts from a checkpoint of head version v publishes v + 1 first)."""
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        versions = published_versions(self.dir)
        self.latest = versions[-1] if versions else after

    def publish(self, vla: VLA, version: int) -> Path:
        """Write ``vla``'s head as ``version`` (must be the next one, or the latest again after a restart).

        Raises:
            ValueError: a version that would go backwards or skip.
        """
        if version == self.latest and head_path(self.dir, version).exists():
            return head_path(self.dir, version)  # re-publishing after a resume: already there
        if version != self.latest + 1:
            raise ValueError(
                f"head version {version} would not follow the latest published {self.latest} in {self.dir}"
            )
        vla.head_version = version
        path = save_head(vla, head_path(self.dir, version))
        self.latest = version
        log.info("published head version %d to %s", version, path)
        return path
