"""The LeRobot dataset format v3 ("v3.0"), as plain files: constants, features, stats, tasks.

The ``lerobot`` package cannot be installed beside rlpost's torch (see STACK.md), so this
module writes and reads the documented layout with pyarrow and PyAV instead::

    meta/info.json                                   codebase_version, fps, features, path templates, totals, splits
    meta/stats.json                                  per feature: min, max, mean, std, count
    meta/tasks.parquet                               task (string, the pandas index) -> task_index
    meta/episodes/chunk-000/file-000.parquet         one row per episode: index ranges, tasks, video spans, stats
    data/chunk-000/file-000.parquet                  one row per frame
    videos/<video_key>/chunk-000/file-000.mp4        episodes back to back (video mode)

rlpost's extra per-step fields travel as extra feature columns (``policy_action``,
``intervention``, ``policy_version``, ``t_ns``) and the full EpisodeMeta as JSON in the
episodes table column ``rlpost/meta``; LeRobot readers ignore both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rlpost.data.store_error import StoreError

CODEBASE_VERSION = "v3.0"
CHUNK_FILE = "chunk-{chunk_index:03d}/file-{file_index:03d}"
DATA_PATH = "data/" + CHUNK_FILE + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE + ".mp4"
EPISODES_PATH = "meta/episodes/" + CHUNK_FILE + ".parquet"
INFO_PATH, STATS_PATH, TASKS_PATH = "meta/info.json", "meta/stats.json", "meta/tasks.parquet"
IMAGE_PREFIX = "observation.images."
STATE_KEY, ACTION_KEY, REWARD_KEY = "observation.state", "action", "next.reward"
RLPOST_META_COLUMN = "rlpost/meta"
DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
# rlpost step fields kept as extra features: name -> (dtype, per-step width key or None for scalar)
EXTRA_FEATURES: dict[str, tuple[str, str | None]] = {
    "policy_action": ("float32", "A"),
    "intervention": ("bool", None),
    "policy_version": ("int64", None),
    "t_ns": ("int64", None),
}
INFO_KEYS = (
    "codebase_version", "robot_type", "total_episodes", "total_frames", "total_tasks", "chunks_size",
    "data_files_size_in_mb", "video_files_size_in_mb", "fps", "splits", "data_path", "video_path", "features",
)  # fmt: skip


def vector_column(arr: np.ndarray, dtype: pa.DataType) -> pa.Array:
    """[N, d] array as a fixed-size list column (what ``datasets.Sequence(length=d)`` stores)."""
    d = arr.shape[1]
    return pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1), type=dtype), d)


def column_to_numpy(col: pa.ChunkedArray | pa.Array, where: str) -> np.ndarray:
    """A scalar column as [N], a (fixed-size) list column as [N, d].

    Raises:
        StoreError: ragged list rows (names ``where``).
    """
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if (
        pa.types.is_list(arr.type)
        or pa.types.is_fixed_size_list(arr.type)
        or pa.types.is_large_list(arr.type)
    ):
        lengths = set(arr.value_lengths().to_pylist()) if len(arr) else {0}
        if len(lengths) > 1:
            raise StoreError(f"{where}: list column has rows of lengths {sorted(lengths)}")
        flat = arr.flatten().to_numpy(zero_copy_only=False)
        return flat.reshape(len(arr), lengths.pop() if len(arr) else 0)
    return arr.to_numpy(zero_copy_only=False)


def feature_stats(values: np.ndarray, *, image: bool = False) -> dict[str, list]:
    """LeRobot stats of one feature over N frames: min, max, mean, std, count.

    Images ([N, h, w, 3] uint8) get per-channel stats scaled to [0, 1], shaped [3, 1, 1]
    like LeRobot's; other features are [N] or [N, d] and get per-dimension stats.
    """
    if image:
        x = values.reshape(-1, 3).astype(np.float64) / 255.0
        shape: tuple[int, ...] = (3, 1, 1)
    else:
        x = values.astype(np.float64).reshape(len(values), -1)
        shape = x.shape[1:]
    with np.errstate(all="ignore"):  # NaN policy actions (no chunk ready) give NaN stats, honestly
        st = {
            "min": x.min(0) if len(x) else np.zeros(shape),
            "max": x.max(0) if len(x) else np.zeros(shape),
            "mean": x.mean(0) if len(x) else np.zeros(shape),
            "std": x.std(0) if len(x) else np.zeros(shape),
        }
    out = {k: np.asarray(v).reshape(shape).tolist() for k, v in st.items()}
    out["count"] = [len(values)]
    return out


def write_tasks(path: Path, tasks: list[str]) -> None:
    """``meta/tasks.parquet`` as pandas writes it: task strings as the index named "task"."""
    table = pa.table(
        {"task_index": pa.array(range(len(tasks)), pa.int64()), "task": pa.array(tasks, pa.string())}
    )
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {
                "name": "task",
                "field_name": "task",
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": None,
            },
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.3",
    }
    pq.write_table(table.replace_schema_metadata({"pandas": json.dumps(pandas_meta)}), path)


def read_tasks(path: Path) -> dict[int, str]:
    """task_index -> task from ``meta/tasks.parquet`` (written by pandas or by :func:`write_tasks`).

    Raises:
        StoreError: missing file, or no task_index column and string column.
    """
    table = read_parquet(path)
    strings = [
        n for n in table.column_names if n != "task_index" and pa.types.is_string(table.schema.field(n).type)
    ]
    if "task_index" not in table.column_names or not strings:
        raise StoreError(
            f"{path}: expected a task_index column and a task string column, got {table.column_names}"
        )
    name = "task" if "task" in strings else strings[0]  # "__index_level_0__" for an unnamed pandas index
    return dict(zip(table.column("task_index").to_pylist(), table.column(name).to_pylist(), strict=True))


def read_parquet(path: Path) -> pa.Table:
    """Read a parquet file; a missing or damaged one is a StoreError naming it."""
    if not path.exists():
        raise StoreError(f"{path}: file is missing")
    try:
        return pq.read_table(path)
    except (OSError, pa.ArrowException) as e:
        raise StoreError(f"{path}: truncated or corrupt parquet file: {e}") from e


def read_info(root: Path) -> dict[str, Any]:
    """``meta/info.json``, checked for the v3 layout.

    Raises:
        StoreError: missing or bad JSON, a codebase_version other than v3.x, or missing keys.
    """
    path = root / INFO_PATH
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise StoreError(f"{path}: not a LeRobot dataset (no meta/info.json)") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise StoreError(f"{path}: truncated or corrupt JSON: {e}") from e
    version = str(info.get("codebase_version", ""))
    if not version.startswith("v3."):
        raise StoreError(f"{path}: codebase_version {version!r} is not v3.x; convert it with LeRobot first")
    missing = [k for k in ("fps", "features", "data_path") if k not in info]
    if missing:
        raise StoreError(f"{path}: lacks keys {missing}")
    return info
