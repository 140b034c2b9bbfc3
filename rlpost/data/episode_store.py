"""The episode store: append-only, crash-safe, readable while written, on local disk.

Layout under ``root``::

    store.json                      {"format": "rlpost.episode_store", "schema_version"}
    wal/<episode_id>.wal            in-flight episodes (see wal.py), flock-ed by their writer
    tmp/<name>/, tmp/<name>.lock    episodes being finalised (deleted if their writer died)
    episodes/<index:08d>_<id>/      finished episodes (see episode_files.py), never modified
    labels/<id>/<version>.parquet   versioned labels (see labels.py)
    finish.lock                     serialises index assignment + the publishing rename

Multi-writer behaviour: any number of writer processes (and threads) may share a store,
each episode id written by one of them. We chose this over "one writer process per
store" because the practice session records in each robot actor: steps reach disk
without a network hop, and a crashed actor loses nothing of the others' episodes (its
own in-flight episode is recovered). A single central writer is simply the case of
one process. Per-episode WAL flocks keep recovery away from
live episodes; ``finish.lock`` makes "next index + rename" atomic across processes, so
indices are unique and follow finish order. Readers take no locks: they only ever see
whole episode directories, because a directory appears by one rename after all its
files are fsynced. flock needs a local file system; do not share a store over NFS.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlpost.data.durable_files import fsync_dir, try_lock, write_file_durably
from rlpost.data.episode_files import (
    Episode,
    EpisodeFiles,
    Frames,
    SampledChunks,
    concat_frames,
    read_meta_json,
)
from rlpost.data.episode_publisher import clean_stale_tmp, episode_dir_names, publish
from rlpost.data.labels import list_label_versions, read_label_file, write_label_file
from rlpost.data.step_checks import EpisodeShape
from rlpost.data.store_config import StoreConfig
from rlpost.data.store_error import StoreError, write_error
from rlpost.data.wal import WalWriter, read_wal, read_wal_meta
from rlpost.schema import MARKED_BY, OUTCOMES, SCHEMA_VERSION, EpisodeMeta, SchemaError, StepRecord

log = logging.getLogger(__name__)

STORE_FORMAT = "rlpost.episode_store"
_EPISODE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,199}$")


@dataclass
class _InFlight:
    wal: WalWriter
    shape: EpisodeShape


class EpisodeStore:
    """Writes episodes (an :class:`rlpost.interfaces.EpisodeSink`) and reads finished ones."""

    def __init__(self, root: Path, config: StoreConfig) -> None:
        """Use :meth:`open`; this only binds paths."""
        self.root, self.config = root, config
        self._wal_dir, self._tmp_dir, self._ep_dir = root / "wal", root / "tmp", root / "episodes"
        self._in_flight: dict[str, _InFlight] = {}
        self._metas: dict[str, EpisodeMeta] = {}  # directory name -> meta, finished episodes seen
        self._by_id: dict[str, str] = {}  # episode id -> directory name
        self._open: OrderedDict[str, EpisodeFiles] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def open(
        cls, root: str | Path, config: StoreConfig | None = None, *, create: bool = True, recover: bool = True
    ) -> EpisodeStore:
        """Open (or create) a store, by default turning orphaned WALs into aborted episodes.

        Args:
            root: The store directory.
            config: Writing/reading options; defaults to ``StoreConfig()``.
            create: Create an empty store if ``root`` holds none.
            recover: Run :meth:`recover` (safe while other processes write: live WALs are locked).

        Raises:
            StoreError: ``root`` is not a store (and ``create`` is False) or its store.json is bad.
        """
        root = Path(root)
        marker = root / "store.json"
        if not marker.exists():
            if not create:
                raise StoreError(f"{marker}: no episode store at {root}")
            for d in ("wal", "tmp", "episodes", "labels"):
                (root / d).mkdir(parents=True, exist_ok=True)
            if not marker.exists():
                doc = {"format": STORE_FORMAT, "schema_version": SCHEMA_VERSION}
                write_file_durably(marker, json.dumps(doc).encode())
                fsync_dir(root)
        try:
            doc = json.loads(marker.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise StoreError(f"{marker}: corrupt store marker: {e}") from e
        if not isinstance(doc, dict) or doc.get("format") != STORE_FORMAT:
            raise StoreError(f"{marker}: not an rlpost episode store")
        if int(doc.get("schema_version", 0)) > SCHEMA_VERSION:
            raise StoreError(f"{marker}: schema_version {doc['schema_version']} is newer than this rlpost")
        store = cls(root, config or StoreConfig())
        if recover:
            store.recover()
        return store

    # ----------------------------------------------------------------- writing (EpisodeSink)
    def begin(self, meta: EpisodeMeta) -> None:
        """Start an episode: its WAL exists (with the meta, fsynced) when this returns.

        Raises:
            SchemaError: invalid meta or an episode id that is not a safe file name.
            StoreError: the id is already in flight or finished.
        """
        meta.validate(f"begin episode {meta.episode_id!r}")
        if not _EPISODE_ID_RE.match(meta.episode_id):
            raise SchemaError(
                f"episode_id {meta.episode_id!r} must be 1-200 of [A-Za-z0-9_.:+-], not starting with a symbol"
            )
        if self._find(meta.episode_id) is not None:
            raise StoreError(f"{self._ep_dir}: episode {meta.episode_id!r} is already finished")
        wal = WalWriter(
            self._wal_dir / f"{meta.episode_id}.wal", meta, fsync_each_step=self.config.fsync_each_step
        )
        with self._lock:
            self._in_flight[meta.episode_id] = _InFlight(wal=wal, shape=EpisodeShape(meta.episode_id))

    def append(self, episode_id: str, step: StepRecord) -> None:
        """Validate one step and append it to the episode's WAL (flushed to the OS on return).

        A rejected step is not written; the episode stays open and consistent.

        Raises:
            SchemaError: the step is malformed or inconsistent with the episode's first step;
                the text names the episode, frame and field.
            StoreError: the episode is not in flight in this process.
        """
        fl = self._get_in_flight(episode_id)
        fl.shape.check(step)
        fl.wal.append(step)
        fl.shape.accept(step)

    def set_reward(self, episode_id: str, frame_index: int, reward: float) -> None:
        """Record the env reward of the episode's latest step (known once the robot executed it).

        Steps are appended before the robot acts on them (write-ahead), so the reward follows.

        Raises:
            SchemaError: ``frame_index`` is not the latest step, or the reward is not a float.
            StoreError: as :meth:`append` (StoreFullError when the disk is full).
        """
        fl = self._get_in_flight(episode_id)
        latest = fl.shape.n_steps - 1
        if frame_index != latest:
            raise SchemaError(
                f"episode {episode_id!r}: reward for step {frame_index}, but the latest step is {latest}"
            )
        if isinstance(reward, bool) or not isinstance(reward, (float, int, np.floating, np.integer)):
            raise SchemaError(
                f"episode {episode_id!r} step {frame_index}: reward must be a float, got {reward!r}"
            )
        fl.wal.append_reward(frame_index, float(reward))

    def finish(self, episode_id: str, outcome: str, marked_by: str) -> EpisodeMeta:
        """Publish the episode atomically and delete its WAL.

        Returns:
            The final meta, with outcome, marked_by, length, duration_s and episode_index.

        Raises:
            SchemaError: unknown outcome or marked_by, or outcome "running".
            StoreError: not in flight here, or writing failed (StoreFullError when out of
                space; the episode then stays in flight so finish can be retried; nothing
                already stored is affected).
        """
        where = f"finish episode {episode_id!r}"
        if outcome not in OUTCOMES or outcome == "running":
            raise SchemaError(
                f"{where}: outcome={outcome!r} must be one of {[o for o in OUTCOMES if o != 'running']}"
            )
        if marked_by not in MARKED_BY:
            raise SchemaError(f"{where}: marked_by={marked_by!r} is not one of {list(MARKED_BY)}")
        fl = self._get_in_flight(episode_id)
        try:
            fl.wal.sync()
            meta = publish(
                self.root,
                read_wal(fl.wal.path),
                outcome,
                marked_by,
                {},
                self.config.image_codec,
                recovering=False,
            )
        except OSError as e:
            raise write_error(self._ep_dir, f"finishing episode {episode_id!r}", e) from e
        assert meta is not None  # only recovery may find an episode already published
        with self._lock:
            del self._in_flight[episode_id]
        os.unlink(fl.wal.path)
        fsync_dir(self._wal_dir)
        fl.wal.close()
        return meta

    def recover(self) -> list[EpisodeMeta]:
        """Turn every orphaned WAL (its writer died) into a finished "aborted" episode.

        Keeps every complete step, drops only a torn final record (logged), and marks the
        episode ``marked_by="none"``, ``extra["recovered"] = "true"``. WALs whose writer
        is alive (flock held, in any process) are left alone. Also deletes temporary
        files of finalisations whose writer died.

        Returns:
            The metas of the episodes recovered now.

        Raises:
            StoreError: a WAL is corrupt beyond a torn tail (names the file), or the episode
                could not be written (StoreFullError when out of space; the WAL is kept).
        """
        recovered = []
        for wal_path in sorted(self._wal_dir.glob("*.wal")):
            try:
                fd = os.open(wal_path, os.O_RDONLY)
            except FileNotFoundError:
                continue  # finished or recovered meanwhile
            try:
                if not try_lock(fd) or not _same_file(fd, wal_path):
                    continue
                contents = read_wal(wal_path)
                extra = {"recovered": "true"}
                if contents.torn_bytes:
                    extra["torn_tail_bytes"] = str(contents.torn_bytes)
                try:
                    meta = publish(
                        self.root,
                        contents,
                        "aborted",
                        "none",
                        extra,
                        self.config.image_codec,
                        recovering=True,
                    )
                except OSError as e:  # the WAL stays: recovery runs again on the next open
                    raise write_error(wal_path, "recovering its episode", e) from e
                if meta is not None:
                    recovered.append(meta)
                    log.warning(
                        "%s: recovered episode %r as aborted with %d steps (index %d)",
                        wal_path,
                        meta.episode_id,
                        meta.length,
                        meta.episode_index,
                    )
                os.unlink(wal_path)
                fsync_dir(self._wal_dir)
            finally:
                os.close(fd)
        clean_stale_tmp(self.root)
        return recovered

    def close(self) -> None:
        """Release this process's WALs. Episodes still in flight are recovered as aborted later."""
        with self._lock:
            for fl in self._in_flight.values():
                fl.wal.close()
            self._in_flight.clear()
            self._open.clear()

    def __enter__(self) -> EpisodeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- reading
    def episodes(
        self,
        *,
        source: str | None = None,
        outcome: str | None = None,
        task: str | None = None,
        robot_id: str | None = None,
        session_id: str | None = None,
    ) -> list[EpisodeMeta]:
        """Finished episodes in finish order (episode_index), filtered by the given fields."""
        want = {
            "source": source,
            "outcome": outcome,
            "task": task,
            "robot_id": robot_id,
            "session_id": session_id,
        }
        want = {k: v for k, v in want.items() if v is not None}
        metas = self._refresh()
        return [m for m in metas if all(getattr(m, k) == v for k, v in want.items())]

    def in_flight(self) -> list[EpisodeMeta]:
        """Metas of episodes begun but not finished, by any process (read from their WALs)."""
        out = []
        for p in sorted(self._wal_dir.glob("*.wal")):
            try:
                out.append(read_wal_meta(p))
            except FileNotFoundError:
                continue
        return out

    def meta(self, episode_id: str) -> EpisodeMeta:
        """The meta of a finished episode.

        Raises:
            StoreError: no finished episode with this id.
        """
        return self._metas[self._require(episode_id)]

    def read_episode(self, episode_id: str) -> Episode:
        """All steps of a finished episode, stacked (see :class:`Episode` for dtypes and shapes).

        Raises:
            StoreError: unknown id, or a file is missing, truncated or corrupt (names the file).
        """
        files = self._files(episode_id)
        cols, images = files.read()
        c = files.chunks
        chunks = SampledChunks(np.array(c.start), np.array(c.noise), np.array(c.actions))
        return Episode(meta=files.meta, images=images, **cols, chunks=chunks, absent=files.absent)

    def read_frames(
        self, episode_id: str, indices: np.ndarray | list[int], with_images: bool = True
    ) -> Frames:
        """Steps ``indices`` of one episode, from memory maps (cheap after the first open).
        ``with_images=False`` reads only the small per-step columns (``images`` is empty).

        Raises:
            StoreError: as :meth:`read_episode`.
            IndexError: an index outside the episode.
        """
        files = self._files(episode_id)
        cols, images = files.read(np.asarray(indices, dtype=np.int64), with_images=with_images)
        n = len(cols["t_ns"])
        return Frames(episode_index=np.full(n, files.meta.episode_index, np.int64), images=images, **cols)

    def read_steps(self, pairs: list[tuple[str, int]]) -> Frames:
        """Random (episode_id, t) pairs stacked in the given order, e.g. a training batch.

        Raises:
            StoreError, IndexError: as :meth:`read_frames`; SchemaError if the episodes'
                cameras or dimensions differ.
        """
        groups: dict[str, list[int]] = {}
        for pos, (eid, _) in enumerate(pairs):
            groups.setdefault(eid, []).append(pos)
        parts = [(pos, self.read_frames(eid, [pairs[p][1] for p in pos])) for eid, pos in groups.items()]
        return concat_frames(parts, where=f"read_steps over episodes {list(groups)}")

    def verify(self, episode_id: str) -> None:
        """Check every file of a finished episode against its sha256 now.

        Raises:
            StoreError: a file is missing, truncated or corrupt (names the file).
        """
        EpisodeFiles(self._ep_dir / self._require(episode_id), verify=True)

    # ----------------------------------------------------------------- labels
    def write_labels(
        self, episode_id: str, label_version: str, columns: dict[str, np.ndarray], *, overwrite: bool = False
    ) -> None:
        """Store labels (column -> array [T]) for a finished episode under ``label_version``.

        Raw episode files are never touched. Writing an existing version is an error
        unless ``overwrite=True``, which replaces only that version, atomically.

        Raises:
            SchemaError: bad version name or columns. StoreError: unknown episode, or the
                version exists and ``overwrite`` is False.
        """
        write_label_file(
            self.root, episode_id, label_version, columns, self.meta(episode_id).length, overwrite=overwrite
        )

    def read_labels(self, episode_id: str, label_version: str) -> dict[str, np.ndarray]:
        """Labels of one version: column -> array [T].

        Raises:
            StoreError: unknown episode or version, or a corrupt label file.
        """
        return read_label_file(self.root, episode_id, label_version, self.meta(episode_id).length)

    def label_versions(self, episode_id: str) -> list[str]:
        """Label versions written for a finished episode, sorted by name."""
        self._require(episode_id)
        return list_label_versions(self.root, episode_id)

    # ----------------------------------------------------------------- internals
    def _get_in_flight(self, episode_id: str) -> _InFlight:
        with self._lock:
            fl = self._in_flight.get(episode_id)
        if fl is None:
            raise StoreError(
                f"{self._wal_dir}: episode {episode_id!r} is not in flight in this process (begin it first)"
            )
        return fl

    def _refresh(self) -> list[EpisodeMeta]:
        with self._lock:
            for n in episode_dir_names(self._ep_dir):
                if n not in self._metas:
                    meta, _ = read_meta_json(self._ep_dir / n)
                    self._metas[n], self._by_id[meta.episode_id] = meta, n
            return sorted(self._metas.values(), key=lambda m: m.episode_index)

    def _find(self, episode_id: str) -> str | None:
        if episode_id not in self._by_id:
            self._refresh()
        return self._by_id.get(episode_id)

    def _require(self, episode_id: str) -> str:
        name = self._find(episode_id)
        if name is None:
            raise StoreError(f"{self._ep_dir}: no finished episode {episode_id!r}")
        return name

    def _files(self, episode_id: str) -> EpisodeFiles:
        name = self._require(episode_id)
        with self._lock:
            files = self._open.get(name)
            if files is not None:
                self._open.move_to_end(name)
                return files
        files = EpisodeFiles(self._ep_dir / name, verify=self.config.verify_checksums)
        with self._lock:
            self._open[name] = files
            while len(self._open) > self.config.max_open_episodes:
                self._open.popitem(last=False)
        return files


def _same_file(fd: int, path: Path) -> bool:
    """True if ``path`` still names the file open as ``fd`` (not unlinked or replaced since)."""
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False
