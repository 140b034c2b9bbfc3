"""The write-ahead log keeps every complete step; recovery turns orphans into aborted episodes."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
from test_store_roundtrip import assert_steps_equal, make_meta, make_step, write_episode

from rlpost.data import EpisodeStore, StoreError
from rlpost.data.wal import WalWriter, read_wal


def orphan_wal(root: Path, eid: str, n: int) -> Path:
    """A WAL with n steps whose writer 'died' (file closed, lock released, never finished)."""
    EpisodeStore.open(root)
    path = root / "wal" / f"{eid}.wal"
    w = WalWriter(path, make_meta(eid))
    for t in range(n):
        w.append(make_step(t))
    w.close()
    return path


def test_orphaned_wal_becomes_an_aborted_episode_with_every_step(tmp_path: Path) -> None:
    orphan_wal(tmp_path, "lost", 4)
    store = EpisodeStore.open(tmp_path)
    (meta,) = store.episodes()
    assert (meta.episode_id, meta.outcome, meta.marked_by, meta.length) == ("lost", "aborted", "none", 4)
    assert meta.extra == {"tag": "x", "recovered": "true"}
    assert_steps_equal(store.read_episode("lost"), [make_step(t) for t in range(4)])
    assert not (tmp_path / "wal" / "lost.wal").exists()


@pytest.mark.parametrize("cut", [1, 7, 8, 9, 200, -1])
def test_torn_final_record_is_dropped_and_the_rest_kept(tmp_path: Path, cut: int, caplog) -> None:
    path = orphan_wal(tmp_path, "torn", 5)
    size, last = path.stat().st_size, len(read_wal(path).steps)
    assert last == 5
    # cut -1: the whole last record minus one byte, i.e. only its final byte is missing
    record = size - _offset_of_last_record(path)
    os.truncate(path, size - (record - 1 if cut == -1 else cut))
    with caplog.at_level(logging.WARNING):
        store = EpisodeStore.open(tmp_path)
    assert "dropped a torn final record" in caplog.text and "kept 4 complete steps" in caplog.text
    (meta,) = store.episodes()
    assert meta.length == 4 and meta.extra["recovered"] == "true" and int(meta.extra["torn_tail_bytes"]) > 0
    assert_steps_equal(store.read_episode("torn"), [make_step(t) for t in range(4)])


def test_zero_filled_tail_counts_as_torn(tmp_path: Path) -> None:
    path = orphan_wal(tmp_path, "zeros", 2)
    with open(path, "ab") as f:
        f.write(b"\0" * 300)
    contents = read_wal(path)
    assert len(contents.steps) == 2 and contents.torn_bytes == 300


def test_corrupt_record_with_data_after_it_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = orphan_wal(tmp_path, "bad", 3)
    data = bytearray(path.read_bytes())
    data[_offset_of_last_record(path) - 5] ^= 0xFF  # inside the second-to-last record
    path.write_bytes(bytes(data))
    with pytest.raises(
        StoreError, match=r"bad\.wal: record at byte \d+ is corrupt \(CRC mismatch\) and data follows"
    ):
        EpisodeStore.open(tmp_path)


def test_live_wal_of_another_writer_is_not_recovered(tmp_path: Path) -> None:
    writer = EpisodeStore.open(tmp_path)
    writer.begin(make_meta("live"))
    writer.append("live", make_step(0))
    assert EpisodeStore.open(tmp_path).recover() == []
    writer.append("live", make_step(1))
    assert writer.finish("live", "success", "env").length == 2


def test_crash_between_publish_and_wal_delete_does_not_duplicate(tmp_path: Path) -> None:
    store = EpisodeStore.open(tmp_path)
    write_episode(store, "done", 3)
    orphan_wal(tmp_path, "done", 3)  # as if the writer died right after the rename
    store2 = EpisodeStore.open(tmp_path)
    assert [m.episode_id for m in store2.episodes()] == ["done"]
    assert not (tmp_path / "wal" / "done.wal").exists()


def test_stale_temporary_files_of_a_dead_writer_are_removed(tmp_path: Path) -> None:
    EpisodeStore.open(tmp_path)
    (tmp_path / "tmp" / "x.123.ab").mkdir()
    (tmp_path / "tmp" / "x.123.ab" / "state.npy").write_bytes(b"partial")
    (tmp_path / "tmp" / "x.123.ab.lock").touch()
    EpisodeStore.open(tmp_path)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_wal_records_survive_a_reopen_of_the_writer_state(tmp_path: Path) -> None:
    store = EpisodeStore.open(tmp_path)
    store.begin(make_meta("a"))
    for t in range(3):
        store.append("a", make_step(t))
    contents = read_wal(tmp_path / "wal" / "a.wal")  # readable by anyone while in flight
    assert contents.torn_bytes == 0 and [s.frame_index for s in contents.steps] == [0, 1, 2]
    np.testing.assert_array_equal(contents.steps[1].images["front"], make_step(1).images["front"])


def _offset_of_last_record(path: Path) -> int:
    import struct

    data, pos, last = path.read_bytes(), 8, 8
    while pos < len(data):
        last = pos
        pos += 8 + struct.unpack_from("<I", data, pos)[0]
    return last
