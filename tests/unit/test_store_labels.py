"""Reward labels are additive, versioned files; raw episode files are never touched."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from test_store_roundtrip import write_episode

from rlpost.data import EpisodeStore, StoreError
from rlpost.schema import SchemaError


def _raw_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((root / "episodes").rglob("*"))
        if p.is_file()
    }


def test_label_versions_are_additive_and_raw_data_is_unchanged(tmp_path: Path) -> None:
    store = EpisodeStore.open(tmp_path)
    write_episode(store, "ep", 5)
    before = _raw_digest(tmp_path)
    v1 = {"progress": np.linspace(0, 1, 5, dtype=np.float32), "success": np.array([0, 0, 0, 1, 1], bool)}
    v2 = {"progress": np.full(5, 0.5, np.float64), "value": np.arange(5, dtype=np.int64)}
    store.write_labels("ep", "rm-v1", v1)
    store.write_labels("ep", "rm-v2", v2)
    assert store.label_versions("ep") == ["rm-v1", "rm-v2"]
    for version, cols in (("rm-v1", v1), ("rm-v2", v2)):
        got = EpisodeStore.open(tmp_path).read_labels("ep", version)
        assert set(got) == set(cols)
        for k in cols:
            np.testing.assert_array_equal(got[k], cols[k])
            assert got[k].dtype == cols[k].dtype
    assert _raw_digest(tmp_path) == before


def test_writing_a_version_twice_needs_overwrite_and_replaces_only_it(tmp_path: Path) -> None:
    store = EpisodeStore.open(tmp_path)
    write_episode(store, "ep", 3)
    store.write_labels("ep", "v1", {"reward": np.zeros(3, np.float32)})
    store.write_labels("ep", "v2", {"reward": np.ones(3, np.float32)})
    with pytest.raises(StoreError, match="label version 'v1' of episode 'ep' exists; pass overwrite=True"):
        store.write_labels("ep", "v1", {"reward": np.full(3, 7, np.float32)})
    np.testing.assert_array_equal(store.read_labels("ep", "v1")["reward"], 0)
    store.write_labels("ep", "v1", {"reward": np.full(3, 7, np.float32)}, overwrite=True)
    np.testing.assert_array_equal(store.read_labels("ep", "v1")["reward"], 7)
    np.testing.assert_array_equal(store.read_labels("ep", "v2")["reward"], 1)


@pytest.mark.parametrize(
    ("version", "cols", "match"),
    [
        ("../x", {"r": np.zeros(3, np.float32)}, "label_version '../x'"),
        ("v1", {"r": np.zeros(4, np.float32)}, r"column 'r' has shape \(4,\), the episode has T=3"),
        ("v1", {"r": np.zeros((3, 1), np.float32)}, r"column 'r' has shape \(3, 1\)"),
        ("v1", {"r": np.array(["a", "b", "c"])}, "column 'r' must be a float/int/bool numpy array"),
        ("v1", {}, "no columns"),
    ],
)
def test_bad_labels_are_refused(tmp_path: Path, version: str, cols: dict, match: str) -> None:
    store = EpisodeStore.open(tmp_path)
    write_episode(store, "ep", 3)
    with pytest.raises(SchemaError, match=match):
        store.write_labels("ep", version, cols)
    assert store.label_versions("ep") == []


def test_missing_or_corrupt_label_files_are_named(tmp_path: Path) -> None:
    store = EpisodeStore.open(tmp_path)
    write_episode(store, "ep", 3)
    with pytest.raises(StoreError, match=r"has no label version 'v9' \(has \[\]\)"):
        store.read_labels("ep", "v9")
    with pytest.raises(StoreError, match="no finished episode 'nope'"):
        store.write_labels("nope", "v1", {"r": np.zeros(3, np.float32)})
    store.write_labels("ep", "v1", {"r": np.zeros(3, np.float32)})
    path = tmp_path / "labels" / "ep" / "v1.parquet"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(StoreError, match=r"v1\.parquet: truncated or corrupt label file"):
        store.read_labels("ep", "v1")
