"""Versioned per-step labels beside the raw episodes; raw files are never rewritten.

Layout: ``labels/<episode_id>/<label_version>.parquet``, one float/int/bool column of
length T per label (e.g. ``progress``, ``success_prob``, ``value``, ``reward``).
Parquet with page checksums, published by an atomic rename (or a hard link when the
version must not exist yet, so two labelers racing on one version cannot both win).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rlpost.data.durable_files import atomic_write
from rlpost.data.store_error import StoreError
from rlpost.schema import SCHEMA_VERSION, SchemaError

LABELS_DIR = "labels"
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
_LABEL_DTYPES = {np.dtype(t) for t in (np.float32, np.float64, np.int32, np.int64, np.bool_)}


def check_label_version(label_version: str) -> None:
    """Raise SchemaError unless ``label_version`` is a safe file name like ``rm-v3`` or ``2026-11-02.1``."""
    if not isinstance(label_version, str) or not _VERSION_RE.match(label_version):
        raise SchemaError(
            f"label_version {label_version!r} must be 1-128 characters of letters, digits, '.', '_', '+', '-'"
            " and start with a letter or digit"
        )


def label_path(root: Path, episode_id: str, label_version: str) -> Path:
    """Where a label version of an episode lives."""
    return root / LABELS_DIR / episode_id / f"{label_version}.parquet"


def write_label_file(
    root: Path,
    episode_id: str,
    label_version: str,
    columns: dict[str, np.ndarray],
    length: int,
    *,
    overwrite: bool,
) -> Path:
    """Validate and publish one label version of one episode.

    Raises:
        SchemaError: bad version name, no columns, or a column that is not 1-D [length] numeric/bool.
        StoreError: the version exists and ``overwrite`` is False.
    """
    check_label_version(label_version)
    where = f"labels {label_version!r} of episode {episode_id!r}"
    if not columns:
        raise SchemaError(f"{where}: no columns given")
    arrays = {}
    for name, col in columns.items():
        if not isinstance(name, str) or not name:
            raise SchemaError(f"{where}: column names must be non-empty strings, got {name!r}")
        if not isinstance(col, np.ndarray) or col.dtype not in _LABEL_DTYPES:
            got = col.dtype if isinstance(col, np.ndarray) else type(col).__name__
            raise SchemaError(f"{where}: column {name!r} must be a float/int/bool numpy array, got {got}")
        if col.shape != (length,):
            raise SchemaError(f"{where}: column {name!r} has shape {col.shape}, the episode has T={length}")
        arrays[name] = pa.array(col)
    table = pa.table(arrays).replace_schema_metadata(
        {
            "rlpost.episode_id": episode_id,
            "rlpost.label_version": label_version,
            "rlpost.schema_version": str(SCHEMA_VERSION),
        }
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, write_page_checksum=True)
    path = label_path(root, episode_id, label_version)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        atomic_write(path, sink.getvalue().to_pybytes(), overwrite=overwrite)
    except FileExistsError as e:
        raise StoreError(
            f"{path}: label version {label_version!r} of episode {episode_id!r} exists; "
            "pass overwrite=True to replace that version"
        ) from e
    return path


def read_label_file(root: Path, episode_id: str, label_version: str, length: int) -> dict[str, np.ndarray]:
    """Read one label version: column -> array [T].

    Raises:
        StoreError: missing version, truncated or corrupt file, or wrong length; names the file.
    """
    check_label_version(label_version)
    path = label_path(root, episode_id, label_version)
    if not path.exists():
        have = list_label_versions(root, episode_id)
        raise StoreError(
            f"{path}: episode {episode_id!r} has no label version {label_version!r} (has {have})"
        )
    try:
        table = pq.read_table(path, page_checksum_verification=True)
    except (OSError, pa.ArrowException) as e:
        raise StoreError(f"{path}: truncated or corrupt label file: {e}") from e
    out = {name: table.column(name).to_numpy() for name in table.column_names}
    bad = {k: v.shape for k, v in out.items() if v.shape != (length,)}
    if bad:
        raise StoreError(f"{path}: columns {bad} do not match the episode length T={length}")
    return out


def list_label_versions(root: Path, episode_id: str) -> list[str]:
    """Label versions of an episode, sorted by name."""
    d = root / LABELS_DIR / episode_id
    if not d.is_dir():
        return []
    return sorted(p.stem for p in d.glob("*.parquet") if not p.name.startswith("."))
