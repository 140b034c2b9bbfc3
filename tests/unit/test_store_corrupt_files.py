"""Truncated or corrupt finished files give a StoreError naming the file, never a silent skip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_store_roundtrip import write_episode

from rlpost.data import EpisodeStore, StoreConfig, StoreError


def _episode_dir(root: Path) -> Path:
    (d,) = (root / "episodes").iterdir()
    return d


@pytest.mark.parametrize("rel", ["state.npy", "t_ns.npy", "images/front.zst", "images/front.offsets.npy"])
def test_truncated_file_is_named(tmp_path: Path, rel: str) -> None:
    write_episode(EpisodeStore.open(tmp_path), "ep", 5)
    path = _episode_dir(tmp_path) / rel
    os.truncate(path, path.stat().st_size - 3)
    with pytest.raises(StoreError, match=rf"{rel}: has \d+ bytes, meta.json says \d+ \(truncated\?\)"):
        EpisodeStore.open(tmp_path).read_episode("ep")


@pytest.mark.parametrize("rel", ["action.npy", "images/wrist.zst"])
def test_flipped_byte_is_caught_by_the_checksum(tmp_path: Path, rel: str) -> None:
    write_episode(EpisodeStore.open(tmp_path), "ep", 5)
    path = _episode_dir(tmp_path) / rel
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x01
    path.write_bytes(bytes(data))
    store = EpisodeStore.open(tmp_path)
    with pytest.raises(StoreError, match=rf"{rel}: sha256 does not match"):
        store.read_frames("ep", [0])
    with pytest.raises(StoreError, match=rf"{rel}: sha256 does not match"):
        store.verify("ep")


def test_corrupt_frame_is_named_even_without_checksums(tmp_path: Path) -> None:
    write_episode(EpisodeStore.open(tmp_path), "ep", 5)
    path = _episode_dir(tmp_path) / "images/front.zst"
    path.write_bytes(b"\x00" * path.stat().st_size)
    store = EpisodeStore.open(tmp_path, StoreConfig(verify_checksums=False))
    with pytest.raises(StoreError, match=r"front\.zst frame 2: frame does not decode with zstd"):
        store.read_frames("ep", [2])


def test_truncated_meta_json_is_named(tmp_path: Path) -> None:
    write_episode(EpisodeStore.open(tmp_path), "ep", 2)
    path = _episode_dir(tmp_path) / "meta.json"
    os.truncate(path, path.stat().st_size // 2)
    with pytest.raises(StoreError, match=r"meta\.json: truncated or corrupt JSON"):
        EpisodeStore.open(tmp_path).episodes()


@pytest.mark.parametrize(("key", "damaged"), [('"sha256"', '"sha246"'), ('"bytes"', '"bztes"')])
def test_a_damaged_key_of_a_file_entry_in_meta_json_is_named(tmp_path: Path, key: str, damaged: str) -> None:
    # one flipped bit that keeps the JSON valid but renames a key (found by the bad-input fuzzing)
    write_episode(EpisodeStore.open(tmp_path), "ep", 2)
    path = _episode_dir(tmp_path) / "meta.json"
    path.write_text(path.read_text().replace(key, damaged, 1))
    with pytest.raises(
        StoreError, match=r"meta\.json: entry '.+' of 'files' lacks an integer 'bytes' and a 'sha256'"
    ):
        EpisodeStore.open(tmp_path).episodes()


def test_missing_file_is_named(tmp_path: Path) -> None:
    write_episode(EpisodeStore.open(tmp_path), "ep", 2)
    (_episode_dir(tmp_path) / "reward.npy").unlink()
    with pytest.raises(StoreError, match=r"reward\.npy: file is missing"):
        EpisodeStore.open(tmp_path).read_episode("ep")


def test_corrupt_store_marker_is_named(tmp_path: Path) -> None:
    EpisodeStore.open(tmp_path)
    (tmp_path / "store.json").write_text('{"format": "rlpost.episode_st')
    with pytest.raises(StoreError, match=r"store\.json: corrupt store marker"):
        EpisodeStore.open(tmp_path)
