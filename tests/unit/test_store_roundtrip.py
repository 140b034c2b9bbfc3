"""The episode store keeps every field of every step and lists episodes in finish order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlpost.data import EpisodeStore, StoreConfig, StoreError
from rlpost.interfaces import EpisodeSink
from rlpost.schema import EpisodeMeta, StepRecord

CAMS = {"front": (8, 8), "wrist": (4, 6)}


def make_meta(eid: str, **kw: object) -> EpisodeMeta:
    fields = dict(task="tabletop", instruction="put the red block in the ring", robot_id="arm-1",
                  session_id="s1", source="autonomous", seed=7, start_ns=123, extra={"tag": "x"})  # fmt: skip
    fields.update(kw)
    return EpisodeMeta(episode_id=eid, **fields)  # type: ignore[arg-type]


def make_step(t: int, seed: int = 0, cams: dict[str, tuple[int, int]] = CAMS) -> StepRecord:
    rng = np.random.default_rng(seed * 100_003 + t)
    pa = rng.standard_normal(2).astype(np.float32)
    if t % 3 == 0:
        pa[:] = np.nan  # no fresh chunk ready: recorded honestly as NaN
    return StepRecord(
        images={c: rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for c, (h, w) in cams.items()},
        state=rng.standard_normal(3).astype(np.float32),
        action=rng.standard_normal(2).astype(np.float32),
        policy_action=pa,
        intervention=t % 4 == 1,
        policy_version=t // 2,
        t_ns=10**9 + t * 20_000_000,
        frame_index=t,
        reward=float(t) if t % 2 else float("nan"),
    )


def write_episode(
    store: EpisodeStore, eid: str, n: int, seed: int = 0, outcome: str = "success", **kw: object
):
    store.begin(make_meta(eid, **kw))
    for t in range(n):
        store.append(eid, make_step(t, seed))
    return store.finish(eid, outcome, "operator")


def assert_steps_equal(ep, steps: list[StepRecord]) -> None:
    for cam in steps[0].images:
        np.testing.assert_array_equal(ep.images[cam], np.stack([s.images[cam] for s in steps]))
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
        np.testing.assert_array_equal(
            getattr(ep, name), np.array([getattr(s, name) for s in steps]), err_msg=name
        )


@pytest.mark.parametrize("codec", ["raw", "zstd", "png"])
def test_every_step_field_and_meta_round_trips(tmp_path: Path, codec: str) -> None:
    store = EpisodeStore.open(tmp_path, StoreConfig(image_codec=codec))
    meta = write_episode(store, "ep-a", 7)
    ep = EpisodeStore.open(tmp_path).read_episode("ep-a")  # a fresh reader, nothing cached
    assert ep.meta == meta
    assert (meta.outcome, meta.marked_by, meta.length, meta.episode_index) == ("success", "operator", 7, 0)
    assert meta.duration_s == pytest.approx(6 * 0.02)
    assert meta.extra == {"tag": "x"} and meta.seed == 7 and meta.start_ns == 123
    dtypes = {"state": np.float32, "action": np.float32, "policy_action": np.float32, "intervention": np.bool_,
              "policy_version": np.int64, "t_ns": np.int64, "frame_index": np.int64, "reward": np.float32}  # fmt: skip
    for name, dt in dtypes.items():
        assert getattr(ep, name).dtype == dt, name
    assert ep.images["wrist"].shape == (7, 4, 6, 3) and ep.images["wrist"].dtype == np.uint8
    assert_steps_equal(ep, [make_step(t) for t in range(7)])


def test_episodes_are_indexed_in_finish_order_and_filtered(tmp_path: Path) -> None:
    store = EpisodeStore.open(tmp_path)
    store.begin(make_meta("slow"))
    store.append("slow", make_step(0))
    write_episode(store, "demo-1", 2, source="demo", task="drawer")
    write_episode(store, "fail-1", 3, outcome="failure")
    slow = store.finish("slow", "timeout", "env")
    assert [m.episode_id for m in store.episodes()] == ["demo-1", "fail-1", "slow"]
    assert [m.episode_index for m in store.episodes()] == [0, 1, 2] and slow.episode_index == 2
    assert [m.episode_id for m in store.episodes(source="demo")] == ["demo-1"]
    assert [m.episode_id for m in store.episodes(outcome="failure")] == ["fail-1"]
    assert [m.episode_id for m in store.episodes(task="tabletop", source="autonomous")] == ["fail-1", "slow"]
    assert store.episodes(robot_id="arm-9") == []


def test_read_frames_and_read_steps_return_the_requested_steps(tmp_path: Path) -> None:
    store = EpisodeStore.open(tmp_path)
    write_episode(store, "a", 6, seed=1)
    write_episode(store, "b", 4, seed=2)
    fr = store.read_frames("a", [5, 0, 5])
    assert_steps_equal(fr, [make_step(t, 1) for t in (5, 0, 5)])
    batch = store.read_steps([("b", 3), ("a", 2), ("b", 0)])
    assert_steps_equal(batch, [make_step(3, 2), make_step(2, 1), make_step(0, 2)])
    np.testing.assert_array_equal(batch.episode_index, [1, 0, 1])
    with pytest.raises(IndexError, match="'a' has 6 steps"):
        store.read_frames("a", [6])


def test_ids_cannot_be_reused_and_unknown_episodes_are_errors(tmp_path: Path) -> None:
    store = EpisodeStore.open(tmp_path)
    write_episode(store, "a", 2)
    with pytest.raises(StoreError, match="'a' is already finished"):
        store.begin(make_meta("a"))
    with pytest.raises(StoreError, match="'a' is not in flight"):
        store.finish("a", "success", "env")
    with pytest.raises(StoreError, match="no finished episode 'zzz'"):
        store.read_episode("zzz")
    store.begin(make_meta("b"))
    with pytest.raises(StoreError, match="already exists"):
        store.begin(make_meta("b"))


def test_in_flight_episodes_are_listed_and_invisible_to_episode_readers(tmp_path: Path) -> None:
    store = EpisodeStore.open(tmp_path)
    store.begin(make_meta("live"))
    store.append("live", make_step(0))
    reader = EpisodeStore.open(tmp_path)  # recovery must leave a live WAL alone
    assert [m.episode_id for m in reader.in_flight()] == ["live"]
    assert reader.episodes() == []
    store.append("live", make_step(1))
    store.finish("live", "success", "env")
    assert [m.length for m in reader.episodes()] == [2] and reader.in_flight() == []


def test_an_episode_with_no_steps_is_stored_empty(tmp_path: Path) -> None:
    store = EpisodeStore.open(tmp_path)
    store.begin(make_meta("empty"))
    meta = store.finish("empty", "aborted", "operator")
    ep = store.read_episode("empty")
    assert meta.length == 0 and ep.images == {} and ep.action.shape == (0, 0) and ep.t_ns.shape == (0,)


def test_store_is_an_episode_sink_and_accepts_ids_with_underscores(tmp_path: Path) -> None:
    store = EpisodeStore.open(tmp_path)
    assert isinstance(store, EpisodeSink)
    write_episode(store, "arm_1_ep_0", 2)
    assert (
        store.episodes()[0].episode_id == "arm_1_ep_0" and store.read_episode("arm_1_ep_0").meta.length == 2
    )


def test_open_without_create_refuses_a_directory_that_is_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no episode store"):
        EpisodeStore.open(tmp_path / "nothing", create=False)
