"""Durable file operations: fsync, atomic publish by rename, and advisory locks.

Why fsync the directory too: a rename is only durable once the directory entry is
on disk, so a crash right after ``publish`` could otherwise lose a finished episode.
Locks are ``fcntl.flock`` locks: the kernel drops them when the holder dies (even by
SIGKILL), which is what lets recovery tell an orphaned write-ahead log from a live one.
They are reliable on local file systems; NFS is not supported for a shared store.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

_HASH_BLOCK = 1 << 20


def fsync_dir(path: Path) -> None:
    """fsync a directory so that entries created or renamed in it survive a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file at ``path`` and fsync it (not its directory)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write(path: Path, data: bytes, *, overwrite: bool) -> None:
    """Publish ``data`` at ``path`` all at once: readers see the old file or the new one.

    Args:
        path: Destination file.
        data: The full contents.
        overwrite: If False, fail when ``path`` exists (checked atomically with a hard link).

    Raises:
        FileExistsError: ``overwrite`` is False and ``path`` already exists.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    write_file_durably(tmp, data)
    try:
        if overwrite:
            os.replace(tmp, path)
        else:
            # link() refuses an existing target, so two racing writers cannot both win.
            os.link(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    fsync_dir(path.parent)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's contents, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            h.update(block)
    return h.hexdigest()


def try_lock(fd: int) -> bool:
    """Take an exclusive flock on ``fd`` without waiting; True if we now hold it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` (created if missing) for the ``with`` block.

    Used for short critical sections shared by all processes on a store, such as
    assigning the next episode index and renaming an episode into place.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock
