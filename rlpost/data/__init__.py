"""The episode store: append-only, crash-safe episode storage with LeRobot v3 import/export.

Start with :class:`EpisodeStore` (``EpisodeStore.open(root)``); see ``episode_store.py``
for the on-disk layout and the multi-writer rules.
"""

from __future__ import annotations

from rlpost.data.episode_files import Episode, Frames
from rlpost.data.episode_store import EpisodeStore
from rlpost.data.image_codec import IMAGE_CODECS, ImageCodec
from rlpost.data.store_config import StoreConfig
from rlpost.data.store_error import StoreError, StoreFullError

__all__ = [
    "IMAGE_CODECS",
    "Episode",
    "EpisodeStore",
    "Frames",
    "ImageCodec",
    "StoreConfig",
    "StoreError",
    "StoreFullError",
]
