"""One finished episode on disk: a directory of ``.npy`` columns, camera frames and ``meta.json``.

Layout of ``episodes/<index:08d>_<episode_id>/``::

    meta.json            {"format", "schema_version", "meta": EpisodeMeta, "image_codec",
                          "cameras": {cam: [h, w, 3]}, "state_dim", "action_dim",
                          "files": {relative path: {"sha256", "bytes"}}}
    state.npy            float32 [T, S]       action.npy, policy_action.npy  float32 [T, A]
    intervention.npy     bool [T]             policy_version.npy, t_ns.npy, frame_index.npy  int64 [T]
    reward.npy           float32 [T] (env reward; NaN where the robot reports none)
    chunk_start.npy      int64 [T] (frame the executed policy chunk was sampled from; -1 none)
    chunks/start.npy     int64 [K]            chunks/noise.npy, chunks/actions.npy  float32 [K, H, A]
                         (every chunk the policy sampled and executed, as sampled: see SampledChunk)
    images/<cam>.*       see image_codec

Episodes written before schema 2 have no chunk files: they open with ``chunk_start`` all -1, no
chunks, and ``absent`` naming the fields, so a learner that needs them can say so.

``.npy`` because it memory-maps (random frames for training cost a page-cache slice)
and loads without pickle (``allow_pickle=False``). Checksums in ``meta.json`` are
checked the first time a process opens the episode, so a flipped bit is an error, not
a silently wrong training sample.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rlpost.data.durable_files import fsync_dir, sha256_file, write_file_durably
from rlpost.data.image_codec import FrameReader, ImageCodec, load_npy, write_frames
from rlpost.data.meta_codec import meta_from_dict, meta_to_dict
from rlpost.data.store_error import StoreError
from rlpost.schema import SCHEMA_VERSION, EpisodeMeta, SchemaError, StepRecord

EPISODE_FORMAT = "rlpost.episode"
META_FILE = "meta.json"
# column -> (dtype, per-step shape key: "S", "A" or "" for a scalar per step)
COLUMNS: dict[str, tuple[np.dtype, str]] = {
    "state": (np.dtype(np.float32), "S"),
    "action": (np.dtype(np.float32), "A"),
    "policy_action": (np.dtype(np.float32), "A"),
    "intervention": (np.dtype(np.bool_), ""),
    "policy_version": (np.dtype(np.int64), ""),
    "t_ns": (np.dtype(np.int64), ""),
    "frame_index": (np.dtype(np.int64), ""),
    "reward": (np.dtype(np.float32), ""),
    "chunk_start": (np.dtype(np.int64), ""),
}
# columns added after schema 1, with the value an older episode reads as
LATER_COLUMNS: dict[str, int] = {"chunk_start": -1}
CHUNK_FILES = ("chunks/start.npy", "chunks/noise.npy", "chunks/actions.npy")


@dataclass(frozen=True)
class Frames:
    """Steps picked from the store: the same fields as :class:`Episode`, N rows, N = len(indices)."""

    episode_index: np.ndarray  # int64 [N], store episode index of each row
    images: dict[str, np.ndarray]  # camera -> uint8 [N, h, w, 3]
    state: np.ndarray  # float32 [N, S]
    action: np.ndarray  # float32 [N, A], executed
    policy_action: np.ndarray  # float32 [N, A], proposed (NaN if none)
    intervention: np.ndarray  # bool [N]
    policy_version: np.ndarray  # int64 [N]
    t_ns: np.ndarray  # int64 [N], monotonic ns
    frame_index: np.ndarray  # int64 [N]
    reward: np.ndarray  # float32 [N], env reward or NaN
    chunk_start: np.ndarray  # int64 [N], frame of the executed policy chunk's observation, -1 none


@dataclass(frozen=True)
class SampledChunks:
    """Every chunk the policy sampled in an episode, in the order they were first executed."""

    start: np.ndarray  # int64 [K], frame of the observation each was sampled from
    noise: np.ndarray  # float32 [K, H, A], the flow's initial noise (normalised units)
    actions: np.ndarray  # float32 [K, H, A], robot units, as sampled

    @staticmethod
    def empty(action_dim: int) -> SampledChunks:
        z = np.zeros((0, 0, action_dim), np.float32)
        return SampledChunks(np.zeros(0, np.int64), z, z.copy())


@dataclass(frozen=True)
class Episode:
    """A whole finished episode: its meta (with ``episode_index``) and every step stacked over T."""

    meta: EpisodeMeta
    images: dict[str, np.ndarray]  # camera -> uint8 [T, h, w, 3]
    state: np.ndarray  # float32 [T, S]
    action: np.ndarray  # float32 [T, A]
    policy_action: np.ndarray  # float32 [T, A]
    intervention: np.ndarray  # bool [T]
    policy_version: np.ndarray  # int64 [T]
    t_ns: np.ndarray  # int64 [T]
    frame_index: np.ndarray  # int64 [T]
    reward: np.ndarray  # float32 [T]
    chunk_start: np.ndarray  # int64 [T]
    chunks: SampledChunks
    absent: tuple[str, ...] = ()  # fields this episode was written without (older schema)


def concat_frames(parts: list[tuple[list[int], Frames]], where: str) -> Frames:
    """Merge Frames read per episode back into request order (``parts``: positions, frames).

    Raises:
        SchemaError: the parts differ in cameras or array dimensions.
    """
    if not parts:
        raise SchemaError(f"{where}: no steps requested")
    order = np.argsort(np.concatenate([np.asarray(pos, np.int64) for pos, _ in parts]), kind="stable")
    cams = set(parts[0][1].images)
    if any(set(f.images) != cams for _, f in parts):
        raise SchemaError(f"{where}: episodes have different cameras")
    try:
        images = {c: np.concatenate([f.images[c] for _, f in parts])[order] for c in cams}
        fields = {
            k: np.concatenate([getattr(f, k) for _, f in parts])[order]
            for k in Frames.__dataclass_fields__
            if k != "images"
        }
    except ValueError as e:
        raise SchemaError(f"{where}: episodes differ in image sizes or state/action dims: {e}") from e
    return Frames(images=images, **fields)


def stack_steps(steps: list[StepRecord]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Stack validated steps into (columns, images) arrays with the dtypes of :data:`COLUMNS`."""
    first = steps[0] if steps else None
    s_dim = first.state.shape[0] if first else 0
    a_dim = first.action.shape[0] if first else 0
    dims = {"S": s_dim, "A": a_dim}
    cols: dict[str, np.ndarray] = {}
    for name, (dtype, dim) in COLUMNS.items():
        shape = (len(steps), dims[dim]) if dim else (len(steps),)
        if steps:
            cols[name] = np.asarray([getattr(s, name) for s in steps], dtype=dtype).reshape(shape)
        else:
            cols[name] = np.zeros(shape, dtype=dtype)
    images = {cam: np.stack([s.images[cam] for s in steps]) for cam in (first.images if first else {})}
    return cols, images


def stack_chunks(steps: list[StepRecord], action_dim: int) -> SampledChunks:
    """The sampled chunks the steps carry, stacked (all of one horizon H).

    Raises:
        SchemaError: chunks of different horizons in one episode.
    """
    sampled = [s.sampled for s in steps if s.sampled is not None]
    if not sampled:
        return SampledChunks.empty(action_dim)
    if len({c.actions.shape for c in sampled}) > 1:
        raise SchemaError(
            f"sampled chunks of different shapes in one episode: {sorted({c.actions.shape for c in sampled})}"
        )
    return SampledChunks(
        np.asarray([c.start for c in sampled], np.int64),
        np.stack([c.noise for c in sampled]).astype(np.float32),
        np.stack([c.actions for c in sampled]).astype(np.float32),
    )


def write_episode_files(ep_dir: Path, steps: list[StepRecord], codec: ImageCodec) -> dict[str, Any]:
    """Write the data files of an episode into ``ep_dir`` and fsync them.

    Returns:
        The manifest for ``meta.json`` (codec, shapes, per-file sha256 and size), without the meta.
    """
    cols, images = stack_steps(steps)
    chunks = stack_chunks(steps, int(cols["action"].shape[1]))
    rel_paths = []
    for name, arr in cols.items():
        np.save(ep_dir / f"{name}.npy", arr, allow_pickle=False)
        rel_paths.append(f"{name}.npy")
    (ep_dir / "chunks").mkdir(exist_ok=True)
    for rel, arr in zip(CHUNK_FILES, (chunks.start, chunks.noise, chunks.actions), strict=True):
        np.save(ep_dir / rel, arr, allow_pickle=False)
        rel_paths.append(rel)
    for cam, frames in images.items():
        rel_paths += write_frames(ep_dir, cam, frames, codec)
    files = {}
    for rel in rel_paths:
        path = ep_dir / rel
        with open(path, "rb+") as f:
            os.fsync(f.fileno())
        files[rel] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    fsync_dir(ep_dir / "chunks")
    if images:
        fsync_dir(ep_dir / "images")
    return {
        "image_codec": codec,
        "cameras": {cam: list(f.shape[1:]) for cam, f in images.items()},
        "state_dim": int(cols["state"].shape[1]),
        "action_dim": int(cols["action"].shape[1]),
        "chunks": {"count": len(chunks.start), "horizon": int(chunks.actions.shape[1])},
        "files": files,
    }


def write_meta_json(ep_dir: Path, meta: EpisodeMeta, manifest: dict[str, Any]) -> None:
    """Write ``meta.json`` (fsynced) and fsync the episode directory."""
    doc = {"format": EPISODE_FORMAT, "schema_version": SCHEMA_VERSION, "meta": meta_to_dict(meta), **manifest}
    write_file_durably(ep_dir / META_FILE, json.dumps(doc, indent=1, sort_keys=True).encode())
    fsync_dir(ep_dir)


def read_meta_json(ep_dir: Path) -> tuple[EpisodeMeta, dict[str, Any]]:
    """Parse an episode's ``meta.json``.

    Returns:
        The EpisodeMeta and the whole document.

    Raises:
        StoreError: missing, not JSON (e.g. truncated), wrong format or newer schema.
    """
    path = ep_dir / META_FILE
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise StoreError(f"{path}: episode meta file is missing") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise StoreError(f"{path}: truncated or corrupt JSON: {e}") from e
    if not isinstance(doc, dict) or doc.get("format") != EPISODE_FORMAT:
        raise StoreError(f"{path}: not an rlpost episode meta file")
    if int(doc.get("schema_version", 0)) > SCHEMA_VERSION:
        raise StoreError(f"{path}: schema_version {doc['schema_version']} is newer than this rlpost")
    for key in ("meta", "image_codec", "cameras", "state_dim", "action_dim", "files"):
        if key not in doc:
            raise StoreError(f"{path}: lacks key {key!r}")
    files = doc["files"]
    if not isinstance(files, dict):
        raise StoreError(f"{path}: 'files' must map file names to their size and sha256")
    for rel, info in files.items():
        # a damaged key (say "sha256" with one bit flipped) must be named, not surface as a KeyError
        if not (
            isinstance(info, dict)
            and isinstance(info.get("bytes"), int)
            and isinstance(info.get("sha256"), str)
        ):
            raise StoreError(
                f"{path}: entry {rel!r} of 'files' lacks an integer 'bytes' and a 'sha256' string"
            )
    return meta_from_dict(doc["meta"], str(path)), doc


class EpisodeFiles:
    """Read access to one finished episode directory; cheap to keep open (memory maps)."""

    def __init__(self, ep_dir: Path, *, verify: bool = True) -> None:
        """Open the episode, check sizes and (if ``verify``) every file's sha256.

        Raises:
            StoreError: any file missing, truncated, corrupt or not matching meta.json.
        """
        self.dir = ep_dir
        self.meta, doc = read_meta_json(ep_dir)
        for rel, info in doc["files"].items():
            path = ep_dir / rel
            size = path.stat().st_size if path.exists() else None
            if size is None:
                raise StoreError(f"{path}: file is missing")
            if size != info["bytes"]:
                raise StoreError(f"{path}: has {size} bytes, meta.json says {info['bytes']} (truncated?)")
            if verify and sha256_file(path) != info["sha256"]:
                raise StoreError(f"{path}: sha256 does not match meta.json (corrupt)")
        n = self.meta.length
        dims = {"S": int(doc["state_dim"]), "A": int(doc["action_dim"])}
        files = doc["files"]
        # an episode of an older schema lacks the later columns: they read as their defaults
        self.absent = tuple(c for c in LATER_COLUMNS if f"{c}.npy" not in files)
        self.columns = {
            name: load_npy(ep_dir / f"{name}.npy", dtype, (n, dims[d]) if d else (n,))
            if name not in self.absent
            else np.full((n,), LATER_COLUMNS[name], dtype)
            for name, (dtype, d) in COLUMNS.items()
        }
        if all(rel in files for rel in CHUNK_FILES):
            k, h = int(doc["chunks"]["count"]), int(doc["chunks"]["horizon"])
            self.chunks = SampledChunks(
                load_npy(ep_dir / CHUNK_FILES[0], np.dtype(np.int64), (k,)),
                load_npy(ep_dir / CHUNK_FILES[1], np.dtype(np.float32), (k, h, dims["A"])),
                load_npy(ep_dir / CHUNK_FILES[2], np.dtype(np.float32), (k, h, dims["A"])),
            )
        else:
            self.chunks, self.absent = SampledChunks.empty(dims["A"]), (*self.absent, "chunks")
        self.cameras = {
            cam: FrameReader(ep_dir, cam, doc["image_codec"], tuple(shape), n)
            for cam, shape in doc["cameras"].items()
        }

    def read(
        self, indices: np.ndarray | None = None, with_images: bool = True
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Copies of columns and frames at ``indices`` (all steps if None); ``with_images=False``
        skips decoding the frames (returns no cameras).

        Raises:
            IndexError: an index outside [0, length).
        """
        n = self.meta.length
        idx = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"episode {self.meta.episode_id!r} has {n} steps; asked for {idx.tolist()}")
        cols = {name: np.array(col[idx]) for name, col in self.columns.items()}
        images = {cam: reader.read(idx) for cam, reader in self.cameras.items()} if with_images else {}
        return cols, images
