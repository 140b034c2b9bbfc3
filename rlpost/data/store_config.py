"""Options of an EpisodeStore for one process (a dataclass, so Hydra can compose it)."""

from __future__ import annotations

from dataclasses import dataclass

from rlpost.data.image_codec import IMAGE_CODECS, ImageCodec


@dataclass(frozen=True)
class StoreConfig:
    """How this process writes and reads a store (nothing here changes existing files)."""

    image_codec: ImageCodec = "zstd"  # codec for episodes finished by this process; see image_codec.py
    fsync_each_step: bool = False  # True: a step survives power loss, not only a process kill
    verify_checksums: bool = True  # sha256 every file the first time this process opens an episode
    max_open_episodes: int = 64  # memory-mapped episodes kept open for random access

    def __post_init__(self) -> None:
        if self.image_codec not in IMAGE_CODECS:
            raise ValueError(f"image_codec={self.image_codec!r} is not one of {list(IMAGE_CODECS)}")
        if self.max_open_episodes < 1:
            raise ValueError(f"max_open_episodes={self.max_open_episodes} must be >= 1")
