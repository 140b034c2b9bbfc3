"""LeRobot v3 export/import: the documented layout, and round trips that keep every field.

The ``lerobot`` package cannot be installed beside rlpost's torch (STACK.md), so these
tests check the files against the v3.0 layout itself: paths from the info.json
templates, info.json keys, feature specs and parquet columns.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_store_roundtrip import make_meta, make_step

from rlpost.data import EpisodeStore, StoreError
from rlpost.data.image_bench import synthetic_frames
from rlpost.data.lerobot_export import export_lerobot
from rlpost.data.lerobot_import import import_lerobot

FPS = 50
CAMS = {"front": (16, 16), "wrist": (8, 12)}
EXTRAS = ["policy_action", "intervention", "policy_version", "t_ns", "next.reward"]


def _fill(store: EpisodeStore, cams: dict = CAMS, frames: dict | None = None) -> list:
    specs = [("a", 4, "success", "put the red block in the ring"), ("b", 6, "failure", "open the drawer")]
    for k, (eid, n, outcome, instr) in enumerate(specs):
        store.begin(make_meta(eid, instruction=instr))
        for t in range(n):
            step = make_step(t, seed=k, cams=cams)
            if frames is not None:
                step = type(step)(
                    **{**step.__dict__, "images": {c: f[k * 10 + t] for c, f in frames.items()}}
                )
            store.append(eid, step)
        store.finish(eid, outcome, "operator")
    return store.episodes()


def _assert_same_store(src: EpisodeStore, dst: EpisodeStore, image_atol: float = 0.0) -> None:
    assert dst.episodes() == src.episodes()
    for meta in src.episodes():
        a, b = src.read_episode(meta.episode_id), dst.read_episode(meta.episode_id)
        for name in (
            "state",
            "action",
            "policy_action",
            "intervention",
            "policy_version",
            "t_ns",
            "frame_index",
            "reward",
        ):
            np.testing.assert_array_equal(getattr(b, name), getattr(a, name), err_msg=name)
        for cam in a.images:
            err = np.abs(a.images[cam].astype(np.int16) - b.images[cam]).mean()
            assert err <= image_atol, (cam, err)


@pytest.mark.parametrize(("mode", "codec"), [("image", "av1"), ("video", "h264_lossless")])
def test_lossless_export_then_import_gives_identical_meta_and_arrays(
    tmp_path: Path, mode: str, codec: str
) -> None:
    src = EpisodeStore.open(tmp_path / "src")
    _fill(src)
    out = export_lerobot(src, tmp_path / "lerobot", fps=FPS, image_mode=mode, video_codec=codec)
    dst = EpisodeStore.open(tmp_path / "dst")
    import_lerobot(out, dst)
    _assert_same_store(src, dst)


def test_av1_video_round_trip_is_within_the_stated_tolerance(tmp_path: Path) -> None:
    # Lossy: on rendered 64x64 frames the mean absolute error stays under 3 of 255 levels
    # (chroma subsampling moves single pixels at sharp colour edges much more).
    frames = {"front": synthetic_frames(20, 64, noise=0.0)}
    src = EpisodeStore.open(tmp_path / "src")
    _fill(src, cams={"front": (64, 64)}, frames=frames)
    out = export_lerobot(src, tmp_path / "lerobot", fps=FPS, image_mode="video", video_codec="av1")
    dst = EpisodeStore.open(tmp_path / "dst")
    import_lerobot(out, dst)
    _assert_same_store(src, dst, image_atol=3.0)


def test_export_writes_the_documented_v3_layout(tmp_path: Path) -> None:
    src = EpisodeStore.open(tmp_path / "src")
    metas = _fill(src)
    out = export_lerobot(src, tmp_path / "lerobot", fps=FPS, video_codec="h264")
    info = json.loads((out / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == FPS
    for key in ("robot_type", "total_episodes", "total_frames", "total_tasks", "chunks_size", "splits",
                "data_path", "video_path", "features", "data_files_size_in_mb", "video_files_size_in_mb"):  # fmt: skip
        assert key in info, key
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (2, 10, 2)
    assert info["splits"] == {"train": "0:2"}
    feats = info["features"]
    for key, dtype in (("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"),
                       ("index", "int64"), ("task_index", "int64")):  # fmt: skip
        assert feats[key] == {"dtype": dtype, "shape": [1], "names": None}
    assert feats["observation.state"]["shape"] == [3] and feats["action"]["shape"] == [2]
    assert feats["observation.images.wrist"]["dtype"] == "video"
    assert feats["observation.images.wrist"]["shape"] == [8, 12, 3]
    assert feats["observation.images.wrist"]["info"]["video.codec"] == "h264"
    assert set(EXTRAS) <= set(feats)

    data_path = out / info["data_path"].format(chunk_index=0, file_index=0)
    assert data_path == out / "data/chunk-000/file-000.parquet"
    data = pq.read_table(data_path)
    non_video = {k for k, ft in feats.items() if ft["dtype"] != "video"}
    assert set(data.column_names) == non_video
    assert pa.types.is_fixed_size_list(data.schema.field("action").type)
    np.testing.assert_array_equal(data.column("index").to_numpy(), np.arange(10))
    np.testing.assert_allclose(data.column("timestamp").to_numpy()[4:], np.arange(6) / FPS, rtol=1e-6)
    for cam in CAMS:
        video = out / info["video_path"].format(
            video_key=f"observation.images.{cam}", chunk_index=0, file_index=0
        )
        assert (
            video == out / f"videos/observation.images.{cam}/chunk-000/file-000.mp4"
            and video.stat().st_size > 0
        )

    eps = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [(e["episode_index"], e["length"], e["dataset_from_index"], e["dataset_to_index"]) for e in eps] == [
        (0, 4, 0, 4), (1, 6, 4, 10)]  # fmt: skip
    assert eps[1]["tasks"] == [metas[1].instruction]
    assert eps[1]["videos/observation.images.front/from_timestamp"] == pytest.approx(4 / FPS)
    assert eps[1]["data/chunk_index"] == 0 and eps[1]["data/file_index"] == 0
    assert "stats/action/mean" in eps[0]

    tasks = pq.read_table(out / "meta/tasks.parquet")
    assert tasks.column("task").to_pylist() == [m.instruction for m in metas]
    assert tasks.column("task_index").to_pylist() == [0, 1]
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["task"]
    stats = json.loads((out / "meta/stats.json").read_text())
    assert set(stats["action"]) == {"min", "max", "mean", "std", "count"} and stats["action"]["count"] == [10]
    assert np.array(stats["observation.images.front"]["mean"]).shape == (3, 1, 1)


def test_plain_lerobot_data_imports_with_documented_defaults(tmp_path: Path) -> None:
    src = EpisodeStore.open(tmp_path / "src")
    _fill(src)
    out = export_lerobot(src, tmp_path / "plain", fps=FPS, image_mode="image")
    _strip_rlpost_columns(out)
    dst = EpisodeStore.open(tmp_path / "dst")
    metas = import_lerobot(out, dst)
    assert [m.episode_id for m in metas] == ["plain-000000", "plain-000001"]
    m = metas[1]
    assert (m.source, m.outcome, m.marked_by, m.robot_id, m.session_id) == (
        "imported",
        "success",
        "none",
        "arm-1",
        "plain",
    )
    assert m.task == m.instruction == "open the drawer" and m.extra["lerobot_outcome"] == "assumed"
    got = dst.read_episode("plain-000001")
    want = [make_step(t, seed=1, cams=CAMS) for t in range(6)]
    np.testing.assert_array_equal(got.action, np.stack([s.action for s in want]))
    np.testing.assert_array_equal(got.images["wrist"], np.stack([s.images["wrist"] for s in want]))
    assert np.isnan(got.policy_action).all() and np.isnan(got.reward).all()
    assert not got.intervention.any() and (got.policy_version == -1).all()
    # from float32 timestamps: exact to float32 precision (well under 10 us in the first minutes)
    np.testing.assert_allclose(got.t_ns, np.arange(6) / FPS * 1e9, rtol=0, atol=1e4)


def test_non_v3_dataset_is_refused_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "old/meta").mkdir(parents=True)
    (tmp_path / "old/meta/info.json").write_text(
        json.dumps({"codebase_version": "v2.1", "fps": 30, "features": {}})
    )
    with pytest.raises(StoreError, match=r"info\.json: codebase_version 'v2.1' is not v3.x"):
        import_lerobot(tmp_path / "old", EpisodeStore.open(tmp_path / "dst"))


def test_truncated_data_file_is_named(tmp_path: Path) -> None:
    src = EpisodeStore.open(tmp_path / "src")
    _fill(src)
    out = export_lerobot(src, tmp_path / "lr", fps=FPS, image_mode="image")
    data = out / "data/chunk-000/file-000.parquet"
    data.write_bytes(data.read_bytes()[:-100])
    with pytest.raises(StoreError, match=r"file-000\.parquet: truncated or corrupt parquet"):
        import_lerobot(out, EpisodeStore.open(tmp_path / "dst"))


def _strip_rlpost_columns(root: Path) -> None:
    """Turn an rlpost export into plain LeRobot data: no extra features, pandas-style unnamed task index."""
    info = json.loads((root / "meta/info.json").read_text())
    for k in EXTRAS:
        del info["features"][k]
    (root / "meta/info.json").write_text(json.dumps(info))
    data_path = root / "data/chunk-000/file-000.parquet"
    pq.write_table(pq.read_table(data_path).drop_columns(EXTRAS), data_path)
    ep_path = root / "meta/episodes/chunk-000/file-000.parquet"
    pq.write_table(pq.read_table(ep_path).drop_columns(["rlpost/meta"]), ep_path)
    tasks = pq.read_table(root / "meta/tasks.parquet")
    pq.write_table(tasks.rename_columns(["task_index", "__index_level_0__"]), root / "meta/tasks.parquet")
