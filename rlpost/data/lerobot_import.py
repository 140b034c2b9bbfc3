"""Import a LeRobot v3 dataset directory into an rlpost store (through the normal writer path)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa

from rlpost.data.episode_store import EpisodeStore
from rlpost.data.image_codec import decode_frame
from rlpost.data.lerobot_format import (
    ACTION_KEY,
    EPISODES_PATH,
    IMAGE_PREFIX,
    REWARD_KEY,
    RLPOST_META_COLUMN,
    STATE_KEY,
    TASKS_PATH,
    column_to_numpy,
    read_info,
    read_parquet,
    read_tasks,
)
from rlpost.data.meta_codec import meta_from_dict
from rlpost.data.store_error import StoreError
from rlpost.data.video_codec import decode_video
from rlpost.schema import EpisodeMeta, Outcome, StepRecord

log = logging.getLogger(__name__)


def import_lerobot(
    src_dir: str | Path,
    store: EpisodeStore,
    *,
    session_id: str | None = None,
    outcome: Outcome = "success",
) -> list[EpisodeMeta]:
    """Import every episode of a LeRobot v3 dataset into ``store``.

    Episodes exported by rlpost come back with their EpisodeMeta and extra step fields.
    Plain LeRobot episodes get ``source="imported"``, ``policy_action`` NaN,
    ``intervention`` False, ``policy_version`` -1, ``t_ns`` from ``timestamp``, reward
    from ``next.reward`` (else NaN), task and instruction from the episode's task string,
    ``robot_id`` from ``robot_type``, episode id ``<dataset dir name>-<episode_index>``.
    LeRobot has no outcome field; its datasets are demonstrations, so ``outcome``
    defaults to "success" and the meta's extra records ``lerobot_outcome: assumed``.

    Args:
        src_dir: The dataset directory (holding ``meta/info.json``).
        store: Destination store; each episode goes through begin/append/finish.
        session_id: For plain LeRobot episodes (default: the dataset directory name).
        outcome: Outcome for plain LeRobot episodes.

    Returns:
        The stored metas, in the dataset's episode order.

    Raises:
        StoreError: not a v3 dataset, or a missing, truncated or inconsistent file (named).
    """
    src = Path(src_dir)
    info = read_info(src)
    fps = int(info["fps"])
    features: dict[str, dict] = info["features"]
    cams = {
        k: (k.removeprefix(IMAGE_PREFIX), ft["dtype"])
        for k, ft in features.items()
        if ft["dtype"] in ("video", "image")
    }
    tasks = read_tasks(src / TASKS_PATH)
    ep_files = sorted((src / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    if not ep_files:
        raise StoreError(
            f"{src / EPISODES_PATH.format(chunk_index=0, file_index=0)}: no episodes parquet files"
        )
    episodes = pa.concat_tables([read_parquet(p) for p in ep_files], promote_options="default").to_pylist()
    episodes.sort(key=lambda r: r["episode_index"])
    data_cache: dict[Path, dict[str, np.ndarray | pa.ChunkedArray]] = {}
    out = []
    for row in episodes:
        ep = int(row["episode_index"])
        data_path = src / info["data_path"].format(
            chunk_index=row["data/chunk_index"], file_index=row["data/file_index"]
        )
        if data_path not in data_cache:
            data_cache.clear()  # one data file at a time bounds memory
            table = read_parquet(data_path)
            data_cache[data_path] = {n: table.column(n) for n in table.column_names}
        cols = data_cache[data_path]
        sel = np.flatnonzero(column_to_numpy(cols["episode_index"], str(data_path)) == ep)
        sel = sel[np.argsort(column_to_numpy(cols["frame_index"], str(data_path))[sel], kind="stable")]
        if len(sel) != int(row["length"]):
            raise StoreError(
                f"{data_path}: episode {ep} has {len(sel)} frames, the episodes table says {row['length']}"
            )

        def col(
            name: str, sel: np.ndarray = sel, path: Path = data_path, cols: dict = cols
        ) -> np.ndarray | None:
            return (
                column_to_numpy(cols[name].take(pa.array(sel)), f"{path} column {name!r}")
                if name in cols
                else None
            )

        images = {}
        for key, (cam, kind) in cams.items():
            if kind == "video":
                vpath = src / info["video_path"].format(
                    video_key=key,
                    chunk_index=row[f"videos/{key}/chunk_index"],
                    file_index=row[f"videos/{key}/file_index"],
                )
                start = round(float(row[f"videos/{key}/from_timestamp"]) * fps)
                images[cam] = decode_video(vpath, fps, start, start + len(sel))
            else:
                shape = tuple(features[key]["shape"])
                blobs = cols[key].take(pa.array(sel)).combine_chunks().field("bytes").to_pylist()
                images[cam] = np.stack(
                    [decode_frame(b, "png", shape, f"{data_path} {key} row {i}") for i, b in enumerate(blobs)]
                )
        meta = _meta(row, src, info, tasks, ep, session_id, outcome)
        t = len(sel)
        state = col(STATE_KEY)
        state = np.zeros((t, 0), np.float32) if state is None else state.astype(np.float32).reshape(t, -1)
        action = col(ACTION_KEY).astype(np.float32).reshape(t, -1)
        policy_action = col("policy_action")
        policy_action = (
            np.full_like(action, np.nan) if policy_action is None else policy_action.astype(np.float32)
        )
        intervention = _or(col("intervention"), np.zeros(t, bool))
        policy_version = _or(col("policy_version"), np.full(t, -1, np.int64))
        t_ns = _or(col("t_ns"), np.round(col("timestamp").astype(np.float64) * 1e9).astype(np.int64))
        reward = _or(col(REWARD_KEY), np.full(t, np.nan, np.float32))
        store.begin(meta)
        for i in range(t):
            store.append(
                meta.episode_id,
                StepRecord(
                    images={c: np.ascontiguousarray(f[i]) for c, f in images.items()},
                    state=state[i], action=action[i], policy_action=policy_action[i],
                    intervention=bool(intervention[i]), policy_version=int(policy_version[i]),
                    t_ns=int(t_ns[i]), frame_index=i, reward=float(reward[i]),
                ),
            )  # fmt: skip
        out.append(store.finish(meta.episode_id, meta.outcome, meta.marked_by))
    log.info("imported %d episodes from %s", len(out), src)
    return out


def _or(value: np.ndarray | None, default: np.ndarray) -> np.ndarray:
    return default if value is None else value.reshape(default.shape).astype(default.dtype)


def _meta(
    row: dict, src: Path, info: dict, tasks: dict[int, str], ep: int, session_id: str | None, outcome: Outcome
) -> EpisodeMeta:
    raw = row.get(RLPOST_META_COLUMN)
    if raw:
        where = f"{src / 'meta' / 'episodes'} episode {ep} column {RLPOST_META_COLUMN!r}"
        try:
            d = json.loads(raw)
        except json.JSONDecodeError as e:
            raise StoreError(f"{where}: not JSON: {e}") from e
        # Running meta for begin(); finish() sets the stored outcome again.
        return meta_from_dict({**d, "length": 0, "episode_index": -1}, where)
    task_list = row.get("tasks") or []
    task = str(task_list[0]) if task_list else tasks.get(0, "")
    return EpisodeMeta(
        episode_id=f"{src.name}-{ep:06d}",
        task=task,
        instruction=task,
        robot_id=str(info.get("robot_type") or "unknown"),
        session_id=session_id if session_id is not None else src.name,
        source="imported",
        outcome=outcome,
        marked_by="none",
        extra={"lerobot_dataset": src.name, "lerobot_episode_index": str(ep), "lerobot_outcome": "assumed"},
    )
