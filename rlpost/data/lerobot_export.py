"""Export finished episodes from an rlpost store to a LeRobot v3 dataset directory."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rlpost.data.episode_files import Episode
from rlpost.data.episode_store import EpisodeStore
from rlpost.data.image_codec import encode_frame
from rlpost.data.lerobot_format import (
    ACTION_KEY,
    CODEBASE_VERSION,
    DATA_PATH,
    DEFAULT_FEATURES,
    EPISODES_PATH,
    IMAGE_PREFIX,
    INFO_PATH,
    REWARD_KEY,
    RLPOST_META_COLUMN,
    STATE_KEY,
    STATS_PATH,
    TASKS_PATH,
    VIDEO_PATH,
    feature_stats,
    vector_column,
    write_tasks,
)
from rlpost.data.meta_codec import meta_to_dict
from rlpost.data.video_codec import VideoCodec, encode_video, video_feature_info

log = logging.getLogger(__name__)


def export_lerobot(
    store: EpisodeStore,
    out_dir: str | Path,
    *,
    fps: int,
    episode_ids: list[str] | None = None,
    image_mode: Literal["video", "image"] = "video",
    video_codec: VideoCodec = "av1",
    robot_type: str | None = None,
) -> Path:
    """Write finished episodes as a LeRobot v3 dataset (single data/video file per kind).

    ``timestamp`` is ``frame_index / fps`` (LeRobot checks timestamps against fps); the
    robot's own clock is kept exactly in the extra ``t_ns`` column.

    Args:
        store: The source store.
        out_dir: Empty or missing directory to write.
        fps: Control rate of the episodes, frames per second.
        episode_ids: Episodes to export, in this order (default: all, in finish order).
        image_mode: "video" (mp4 per camera, LeRobot's default) or "image" (PNG bytes in parquet).
        video_codec: "av1" (LeRobot's default, lossy), "h264" (lossy) or "h264_lossless".
        robot_type: ``robot_type`` for info.json (default: the first episode's robot_id).

    Returns:
        ``out_dir`` as a Path.

    Raises:
        ValueError: ``out_dir`` is not empty, nothing to export, or episodes differ in
            cameras, image sizes or dimensions (one LeRobot dataset has one feature set).
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out}: export directory is not empty")
    ids = episode_ids if episode_ids is not None else [m.episode_id for m in store.episodes()]
    if not ids:
        raise ValueError(f"{store.root}: no episodes to export")
    eps = [store.read_episode(i) for i in ids]
    first = eps[0]
    sig = _signature(first)
    for ep in eps[1:]:
        if _signature(ep) != sig:
            raise ValueError(
                f"episode {ep.meta.episode_id!r} has cameras/dims {_signature(ep)}, "
                f"episode {first.meta.episode_id!r} has {sig}; export them to separate datasets"
            )
    tasks = list(dict.fromkeys(ep.meta.instruction for ep in eps))
    features = _features(first, fps, image_mode, video_codec)
    total = sum(ep.meta.length for ep in eps)
    cams = list(first.images)

    frame_cols: dict[str, list[pa.Array]] = {k: [] for k, ft in features.items() if ft["dtype"] != "video"}
    episode_rows: list[dict[str, object]] = []
    offset = 0
    for ep_index, ep in enumerate(eps):
        t = ep.meta.length
        cols = _frame_columns(ep, ep_index, offset, tasks.index(ep.meta.instruction), fps, image_mode)
        for k, v in cols.items():
            frame_cols[k].append(v)
        row: dict[str, object] = {
            "episode_index": ep_index,
            "tasks": [ep.meta.instruction],
            "length": t,
            "data/chunk_index": 0,
            "data/file_index": 0,
            "dataset_from_index": offset,
            "dataset_to_index": offset + t,
            "meta/episodes/chunk_index": 0,
            "meta/episodes/file_index": 0,
            RLPOST_META_COLUMN: json.dumps(meta_to_dict(ep.meta), sort_keys=True),
        }
        if image_mode == "video":
            for cam in cams:
                key = IMAGE_PREFIX + cam
                row |= {f"videos/{key}/chunk_index": 0, f"videos/{key}/file_index": 0}
                row |= {
                    f"videos/{key}/from_timestamp": offset / fps,
                    f"videos/{key}/to_timestamp": (offset + t) / fps,
                }
        for key, values, is_image in _stat_sources(ep):
            for stat, v in feature_stats(values, image=is_image).items():
                row[f"stats/{key}/{stat}"] = v
        episode_rows.append(row)
        offset += t

    data_path = out / DATA_PATH.format(chunk_index=0, file_index=0)
    data_path.parent.mkdir(parents=True)
    data = pa.table({k: pa.concat_arrays(v) for k, v in frame_cols.items()})
    pq.write_table(data, data_path)
    ep_path = out / EPISODES_PATH.format(chunk_index=0, file_index=0)
    ep_path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(episode_rows), ep_path)
    write_tasks(out / TASKS_PATH, tasks)
    if image_mode == "video":
        for cam in cams:
            frames = np.concatenate([ep.images[cam] for ep in eps])
            encode_video(
                out / VIDEO_PATH.format(video_key=IMAGE_PREFIX + cam, chunk_index=0, file_index=0),
                frames,
                fps,
                video_codec,
            )
    stats = {key: feature_stats(np.concatenate([v for k2, v, _ in _all(eps) if k2 == key]), image=img)
             for key, _, img in _stat_sources(first)}  # fmt: skip
    (out / STATS_PATH).write_text(json.dumps(stats, indent=2))
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type if robot_type is not None else first.meta.robot_id,
        "total_episodes": len(eps),
        "total_frames": total,
        "total_tasks": len(tasks),
        "chunks_size": 1000,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 500,
        "fps": fps,
        "splits": {"train": f"0:{len(eps)}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if image_mode == "video" else None,
        "features": features,
    }
    (out / INFO_PATH).write_text(json.dumps(info, indent=4))
    log.info("exported %d episodes (%d frames) to %s", len(eps), total, out)
    return out


def _signature(ep: Episode) -> tuple:
    return (
        tuple((c, a.shape[1:]) for c, a in sorted(ep.images.items())),
        ep.state.shape[1],
        ep.action.shape[1],
    )


def _features(ep: Episode, fps: int, image_mode: str, codec: VideoCodec) -> dict[str, dict]:
    s_dim, a_dim = ep.state.shape[1], ep.action.shape[1]
    feats: dict[str, dict] = {}
    if s_dim:
        feats[STATE_KEY] = {
            "dtype": "float32",
            "shape": [s_dim],
            "names": [f"state_{i}" for i in range(s_dim)],
        }
    feats[ACTION_KEY] = {"dtype": "float32", "shape": [a_dim], "names": [f"action_{i}" for i in range(a_dim)]}
    for cam, frames in ep.images.items():
        shape = list(frames.shape[1:])
        ft = {"dtype": image_mode, "shape": shape, "names": ["height", "width", "channels"]}
        if image_mode == "video":
            ft["info"] = video_feature_info(codec, fps, tuple(shape))
        feats[IMAGE_PREFIX + cam] = ft
    feats["policy_action"] = {
        "dtype": "float32",
        "shape": [a_dim],
        "names": [f"action_{i}" for i in range(a_dim)],
    }
    feats["intervention"] = {"dtype": "bool", "shape": [1], "names": None}
    feats["policy_version"] = {"dtype": "int64", "shape": [1], "names": None}
    feats["t_ns"] = {"dtype": "int64", "shape": [1], "names": None}
    feats[REWARD_KEY] = {"dtype": "float32", "shape": [1], "names": None}
    return feats | DEFAULT_FEATURES


def _frame_columns(
    ep: Episode, ep_index: int, offset: int, task_index: int, fps: int, image_mode: str
) -> dict:
    t = ep.meta.length
    cols: dict[str, pa.Array] = {}
    if ep.state.shape[1]:
        cols[STATE_KEY] = vector_column(ep.state, pa.float32())
    cols[ACTION_KEY] = vector_column(ep.action, pa.float32())
    if image_mode == "image":
        img_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
        for cam, frames in ep.images.items():
            rows = [{"bytes": encode_frame(f, "png"), "path": None} for f in frames]
            cols[IMAGE_PREFIX + cam] = pa.array(rows, type=img_type)
    cols["policy_action"] = vector_column(ep.policy_action, pa.float32())
    cols["intervention"] = pa.array(ep.intervention, pa.bool_())
    cols["policy_version"] = pa.array(ep.policy_version, pa.int64())
    cols["t_ns"] = pa.array(ep.t_ns, pa.int64())
    cols[REWARD_KEY] = pa.array(ep.reward, pa.float32())
    cols["timestamp"] = pa.array((ep.frame_index / fps).astype(np.float32))
    cols["frame_index"] = pa.array(ep.frame_index, pa.int64())
    cols["episode_index"] = pa.array(np.full(t, ep_index, np.int64))
    cols["index"] = pa.array(np.arange(offset, offset + t, dtype=np.int64))
    cols["task_index"] = pa.array(np.full(t, task_index, np.int64))
    return cols


def _stat_sources(ep: Episode) -> list[tuple[str, np.ndarray, bool]]:
    out = [(IMAGE_PREFIX + c, f, True) for c, f in ep.images.items()]
    if ep.state.shape[1]:
        out.append((STATE_KEY, ep.state, False))
    out += [(ACTION_KEY, ep.action, False), ("policy_action", ep.policy_action, False)]
    out += [("intervention", ep.intervention, False), ("policy_version", ep.policy_version, False)]
    out += [(REWARD_KEY, ep.reward, False), ("frame_index", ep.frame_index, False)]
    return out


def _all(eps: list[Episode]) -> list[tuple[str, np.ndarray, bool]]:
    return [s for ep in eps for s in _stat_sources(ep)]
