"""Publishing a finished episode: write it under tmp/, then assign its index and rename it in.

Both ``finish`` and crash recovery go through :func:`publish`, so the path a recovered
episode takes is the one every normal episode takes (and is tested by both).
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import replace
from pathlib import Path

from rlpost.data.durable_files import fsync_dir, locked, try_lock
from rlpost.data.episode_files import write_episode_files, write_meta_json
from rlpost.data.image_codec import ImageCodec
from rlpost.data.store_error import StoreError
from rlpost.data.wal import WalContents
from rlpost.schema import EpisodeMeta

log = logging.getLogger(__name__)


def episode_dir_names(ep_dir: Path) -> list[str]:
    """Names ``<index:08d>_<episode_id>`` of published episodes, in index order."""
    return sorted(n for n in os.listdir(ep_dir) if not n.startswith(".") and "_" in n)


def publish(
    root: Path,
    contents: WalContents,
    outcome: str,
    marked_by: str,
    extra: dict[str, str],
    codec: ImageCodec,
    *,
    recovering: bool,
) -> EpisodeMeta | None:
    """Make an episode visible to readers, all at once.

    Data files are written and fsynced in ``tmp/<name>/`` without any store-wide lock (so
    writers of different episodes do not wait on each other's image encoding); then,
    holding ``finish.lock``, the next index is taken, ``meta.json`` written, and the
    directory renamed to ``episodes/<index:08d>_<episode_id>``.

    Args:
        root: Store root.
        contents: The episode's meta and steps as read from its WAL.
        outcome, marked_by: Final outcome and who decided it.
        extra: Tags merged into the meta's ``extra``.
        codec: Image codec for the camera frames.
        recovering: If the episode is already published (a crash between the rename and
            deleting the WAL), return None instead of raising.

    Returns:
        The published meta (with ``episode_index``), or None as described above.

    Raises:
        StoreError: the episode id is already published (and not ``recovering``).
    """
    eid, steps = contents.meta.episode_id, contents.steps
    tmp_dir, ep_dir = root / "tmp", root / "episodes"
    name = f"{eid}.{os.getpid()}.{os.urandom(4).hex()}"
    lock_path, tmp = tmp_dir / f"{name}.lock", tmp_dir / name
    lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try_lock(lock_fd)  # marks tmp/<name> as live for clean_stale_tmp in other processes
        tmp.mkdir()
        manifest = write_episode_files(tmp, steps, codec)
        with locked(root / "finish.lock"):
            names = episode_dir_names(ep_dir)
            if any(n.split("_", 1)[1] == eid for n in names):
                if recovering:
                    log.info("%s: episode %r was already published; dropping its WAL", ep_dir, eid)
                    return None
                raise StoreError(f"{ep_dir}: episode {eid!r} is already finished")
            index = 1 + max((int(n.split("_", 1)[0]) for n in names), default=-1)
            t = [s.t_ns for s in steps]
            meta = replace(
                contents.meta,
                outcome=outcome,
                marked_by=marked_by,
                length=len(steps),
                duration_s=(t[-1] - t[0]) / 1e9 if t else 0.0,
                episode_index=index,
                extra={**contents.meta.extra, **extra},
            ).validate(f"finish episode {eid!r}")
            write_meta_json(tmp, meta, manifest)
            os.rename(tmp, ep_dir / f"{index:08d}_{eid}")
            fsync_dir(ep_dir)
        return meta
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        os.unlink(lock_path)
        os.close(lock_fd)


def clean_stale_tmp(root: Path) -> None:
    """Delete temporary files left by writers that died in ``publish`` or in ``begin``."""
    for lock_path in (root / "tmp").glob("*.lock"):
        try:
            fd = os.open(lock_path, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            if try_lock(fd) and lock_path.exists():
                shutil.rmtree(root / "tmp" / lock_path.stem, ignore_errors=True)
                lock_path.unlink(missing_ok=True)
                log.info("%s: removed temporary files of a finalisation whose writer died", lock_path)
        finally:
            os.close(fd)
    for p in (root / "wal").glob("*.wal.*.tmp"):  # a writer died inside begin(): no step was handed over
        try:
            fd = os.open(p, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            if try_lock(fd):
                p.unlink(missing_ok=True)
        finally:
            os.close(fd)
