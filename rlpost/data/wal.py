"""The write-ahead log of one in-flight episode: every step is on disk before ``append`` returns.

File layout (one file per episode, ``wal/<episode_id>.wal``)::

    b"RLPWAL1\\n"                                   8-byte magic
    record*                                        the first record is the episode meta
    record  = u32 little-endian payload length, u32 crc32(payload), payload
    payload = msgpack map; arrays as {"dtype", "shape", "data": raw bytes}
              kind "meta" | "step" | "reward" (the env reward of the latest step)

Steps are written before the robot executes them (write-ahead), so a step's reward,
known only after the robot answered, follows as its own small record.

Why length + CRC per record: a writer killed mid-write leaves a torn last record. The
reader keeps every complete record and drops only such a tail. A bad record with
intact data after it cannot come from a crash, so that is reported as corruption.
msgpack, never pickle: a WAL is data, and loading it must not run code.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from rlpost.data.durable_files import fsync_dir, try_lock
from rlpost.data.meta_codec import meta_from_dict, meta_to_dict
from rlpost.data.store_error import StoreError, write_error
from rlpost.schema import EpisodeMeta, SampledChunk, StepRecord

log = logging.getLogger(__name__)

WAL_MAGIC = b"RLPWAL1\n"
WAL_VERSION = 1
_HEADER = struct.Struct("<II")
# Refuse absurd record lengths (a corrupt length field) instead of allocating them.
MAX_RECORD_BYTES = 1 << 30
# numpy dtypes a step may carry; anything else (object, void) is refused on decode.
_ALLOWED_DTYPES = {"uint8", "float32", "float64", "int64", "bool"}


def _encode_array(a: np.ndarray) -> dict[str, Any]:
    a = np.ascontiguousarray(a)
    return {"dtype": a.dtype.str, "shape": list(a.shape), "data": a.tobytes()}


def _decode_array(raw: object, where: str) -> np.ndarray:
    if not isinstance(raw, dict) or set(raw) != {"dtype", "shape", "data"}:
        raise StoreError(f"{where}: malformed array entry")
    dtype = np.dtype(raw["dtype"])
    if dtype.name not in _ALLOWED_DTYPES:
        raise StoreError(f"{where}: array dtype {dtype} is not allowed in a WAL")
    shape = tuple(int(s) for s in raw["shape"])
    data = raw["data"]
    if len(data) != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
        raise StoreError(f"{where}: array data has {len(data)} bytes, shape {shape} needs more or fewer")
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def encode_step(step: StepRecord) -> bytes:
    """msgpack payload of one step (no framing)."""
    return msgpack.packb(
        {
            "kind": "step",
            "images": {cam: _encode_array(img) for cam, img in step.images.items()},
            "state": _encode_array(step.state),
            "action": _encode_array(step.action),
            "policy_action": _encode_array(step.policy_action),
            "intervention": bool(step.intervention),
            "policy_version": int(step.policy_version),
            "t_ns": int(step.t_ns),
            "frame_index": int(step.frame_index),
            "reward": float(step.reward),
            "chunk_start": int(step.chunk_start),
            "sampled": None
            if step.sampled is None
            else {
                "start": int(step.sampled.start),
                "noise": _encode_array(step.sampled.noise),
                "actions": _encode_array(step.sampled.actions),
            },
        },
        use_bin_type=True,
    )


def _decode_sampled(raw: object, where: str) -> SampledChunk | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) != {"start", "noise", "actions"}:
        raise StoreError(f"{where}: malformed sampled chunk entry")
    return SampledChunk(
        int(raw["start"]),
        _decode_array(raw["noise"], f"{where} sampled noise"),
        _decode_array(raw["actions"], f"{where} sampled chunk"),
    )


def decode_step(payload: dict[str, Any], where: str) -> StepRecord:
    """Rebuild a StepRecord from a decoded step payload.

    Raises:
        StoreError: missing keys or malformed arrays; the text names ``where``.
    """
    try:
        return StepRecord(
            images={
                cam: _decode_array(a, f"{where} images[{cam!r}]") for cam, a in payload["images"].items()
            },
            state=_decode_array(payload["state"], f"{where} state"),
            action=_decode_array(payload["action"], f"{where} action"),
            policy_action=_decode_array(payload["policy_action"], f"{where} policy_action"),
            intervention=bool(payload["intervention"]),
            policy_version=int(payload["policy_version"]),
            t_ns=int(payload["t_ns"]),
            frame_index=int(payload["frame_index"]),
            reward=float(payload["reward"]),
            # absent from WALs written before schema 2
            chunk_start=int(payload.get("chunk_start", -1)),
            sampled=_decode_sampled(payload.get("sampled"), where),
        )
    except KeyError as e:
        raise StoreError(f"{where}: step record lacks field {e}") from e


def frame_record(payload: bytes) -> bytes:
    """Length + CRC header followed by the payload."""
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class WalWriter:
    """Appends one episode's steps to its WAL; holds the file's flock while the episode is open.

    The lock tells recovery (in any process) that this WAL has a live owner. The file is
    created under a temporary name and renamed once the meta record is durable, so a
    ``.wal`` file always starts with a complete meta record.
    """

    def __init__(self, path: Path, meta: EpisodeMeta, *, fsync_each_step: bool = False) -> None:
        """Create the WAL at ``path`` and write the meta record durably.

        Args:
            path: Final WAL path; must not exist.
            meta: The episode's meta as given to ``begin``.
            fsync_each_step: fsync after every step (survives power loss, not just a
                process kill; costs a disk flush per step).

        Raises:
            StoreError: a WAL for this episode already exists.
        """
        self.path = path
        self.fsync_each_step = fsync_each_step
        self._fd = -1
        if path.exists():
            raise StoreError(f"{path}: a write-ahead log for episode {meta.episode_id!r} already exists")
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        head = {"kind": "meta", "wal_version": WAL_VERSION, "meta": meta_to_dict(meta)}
        data = WAL_MAGIC + frame_record(msgpack.packb(head, use_bin_type=True))
        try:
            self._fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
            if not try_lock(self._fd):  # a fresh file nobody else can know yet
                raise StoreError(f"{tmp}: could not lock a new write-ahead log")
            _write_all(self._fd, data)
            os.fsync(self._fd)
            os.rename(tmp, path)
            fsync_dir(path.parent)
        except OSError as e:  # no episode was begun: nothing of it may stay behind
            self.close()
            tmp.unlink(missing_ok=True)
            raise write_error(path, f"beginning episode {meta.episode_id!r}", e) from e
        self._size = len(data)  # bytes of complete records

    def append(self, step: StepRecord) -> None:
        """Append one (already validated) step; it is in the OS page cache when this returns.

        Raises:
            StoreFullError: the disk or a file size limit refused the write; the WAL is cut
                back to its last complete record, so the step is not stored and earlier
                steps stay readable (append may be retried).
            StoreError: another OS error, handled the same way.
        """
        self._append(frame_record(encode_step(step)), f"appending step {step.frame_index}")

    def append_reward(self, frame_index: int, reward: float) -> None:
        """Record the env reward of the latest step (``frame_index``); raises as :meth:`append`."""
        payload = {"kind": "reward", "frame_index": int(frame_index), "reward": float(reward)}
        self._append(frame_record(msgpack.packb(payload)), f"recording the reward of step {frame_index}")

    def _append(self, record: bytes, what: str) -> None:
        try:
            _write_all(self._fd, record)
            if self.fsync_each_step:
                os.fsync(self._fd)
        except OSError as e:
            # A partly written record would make every later record look like corruption.
            os.ftruncate(self._fd, self._size)
            raise write_error(self.path, what, e) from e
        self._size += len(record)

    def sync(self) -> None:
        """fsync everything appended so far."""
        os.fsync(self._fd)

    def close(self) -> None:
        """Close the file, which releases the lock."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


@dataclass(frozen=True)
class WalContents:
    """What a WAL holds: the meta record, every complete step, and how much tail was torn."""

    meta: EpisodeMeta
    steps: list[StepRecord]
    torn_bytes: int  # bytes of an incomplete last record that were dropped (0: clean)


def read_wal_meta(path: Path) -> EpisodeMeta:
    """Read only the meta record of a WAL (for listing in-flight episodes).

    Raises:
        StoreError: bad magic or a damaged meta record.
    """
    with open(path, "rb") as f:
        head = f.read(len(WAL_MAGIC) + _HEADER.size)
        if len(head) < len(WAL_MAGIC) + _HEADER.size or not head.startswith(WAL_MAGIC):
            raise StoreError(f"{path}: not an rlpost write-ahead log (bad magic or too short)")
        length = _HEADER.unpack_from(head, len(WAL_MAGIC))[0]
        data = head + f.read(min(length, MAX_RECORD_BYTES))
    return _parse_meta(data[len(WAL_MAGIC) :], path, len(WAL_MAGIC))


def read_wal(path: Path) -> WalContents:
    """Read a WAL, keeping every complete record and dropping only a torn tail.

    Args:
        path: The ``.wal`` file.

    Returns:
        The meta, the steps in file order, and the number of torn tail bytes dropped.

    Raises:
        StoreError: bad magic, a missing meta record, or a damaged record followed by
            intact data (corruption, not a crash); the text names the file and offset.
    """
    data = path.read_bytes()
    if not data.startswith(WAL_MAGIC):
        raise StoreError(f"{path}: not an rlpost write-ahead log (bad magic)")
    pos, records, torn = len(WAL_MAGIC), [], 0
    while pos < len(data):
        bad = _check_record(data, pos)
        if bad is not None:
            rest = data[pos:]
            length = _HEADER.unpack_from(data, pos)[0] if len(rest) >= _HEADER.size else 0
            # A crash can only tear the end: the record runs past EOF, or it is the last
            # record, or (delayed allocation after power loss) the tail is zero-filled.
            looks_torn = pos + _HEADER.size + length >= len(data) or not rest.strip(b"\0")
            # ... but a damaged length field also "runs past EOF": intact records after it prove corruption.
            if looks_torn and _intact_record_after(data, pos) is None:
                torn = len(rest)
                break
            raise StoreError(f"{path}: record at byte {pos} is corrupt ({bad}) and data follows it")
        length = _HEADER.unpack_from(data, pos)[0]
        payload = data[pos + _HEADER.size : pos + _HEADER.size + length]
        pos += _HEADER.size + length
        records.append((pos - length - _HEADER.size, payload))
    if not records:
        raise StoreError(f"{path}: write-ahead log has no complete meta record")
    meta = _parse_meta(data[len(WAL_MAGIC) :], path, len(WAL_MAGIC))
    steps: list[StepRecord] = []
    for rec_pos, payload in records[1:]:
        rec = msgpack.unpackb(payload, raw=False)
        kind = rec.get("kind") if isinstance(rec, dict) else None
        if kind == "step":
            steps.append(decode_step(rec, f"{path} record at byte {rec_pos}"))
        elif kind == "reward":
            if not steps or steps[-1].frame_index != rec.get("frame_index"):
                raise StoreError(
                    f"{path}: reward record at byte {rec_pos} is for step {rec.get('frame_index')!r}, "
                    f"the latest step is {steps[-1].frame_index if steps else None}"
                )
            steps[-1] = dataclasses.replace(steps[-1], reward=float(rec["reward"]))
        else:
            raise StoreError(f"{path}: record at byte {rec_pos} is neither a step nor a reward")
    if torn:
        log.warning(
            "%s: dropped a torn final record (%d bytes); kept %d complete steps", path, torn, len(steps)
        )
    return WalContents(meta=meta, steps=steps, torn_bytes=torn)


def _parse_meta(data: bytes, path: Path, pos: int) -> EpisodeMeta:
    bad = _check_record(data, 0)
    if bad is not None:
        raise StoreError(f"{path}: meta record at byte {pos} is damaged ({bad})")
    length = _HEADER.unpack_from(data, 0)[0]
    head = msgpack.unpackb(data[_HEADER.size : _HEADER.size + length], raw=False)
    if not isinstance(head, dict) or head.get("kind") != "meta":
        raise StoreError(f"{path}: first record is not the episode meta")
    if head.get("wal_version", 0) > WAL_VERSION:
        raise StoreError(f"{path}: WAL version {head.get('wal_version')} is newer than this rlpost")
    return meta_from_dict(head.get("meta"), f"{path} (meta record)")


# Every record's payload is a msgpack map whose first key is "kind" (fixstr a4 "kind").
_KIND_KEY = msgpack.packb("kind")


def _intact_record_after(data: bytes, pos: int) -> int | None:
    """Offset of the first CRC-valid record that starts after ``pos``, or None.

    Searches for the ``"kind"`` key that opens every payload (one map-header byte before
    it, the 8-byte record header before that) instead of trying every offset.
    """
    at = data.find(_KIND_KEY, pos + _HEADER.size + 2)
    while at != -1:
        start = at - 1 - _HEADER.size
        if start > pos and _check_record(data, start) is None:
            return start
        at = data.find(_KIND_KEY, at + 1)
    return None


def _check_record(data: bytes, pos: int) -> str | None:
    """None if a complete, CRC-valid record starts at ``pos``, else why not."""
    if pos + _HEADER.size > len(data):
        return "truncated header"
    length, crc = _HEADER.unpack_from(data, pos)
    if length == 0 or length > MAX_RECORD_BYTES:
        return f"implausible length {length}"
    end = pos + _HEADER.size + length
    if end > len(data):
        return "truncated payload"
    if zlib.crc32(data[pos + _HEADER.size : end]) != crc:
        return "CRC mismatch"
    return None
