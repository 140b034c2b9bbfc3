"""Stored steps carry the chunk they came from: its first frame, its initial noise, the chunk as sampled."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from rlpost.compare.practice import practice
from rlpost.data import EpisodeStore
from rlpost.data.wal import decode_step, encode_step
from rlpost.evaluation import vla_chunk_fn
from rlpost.policy import ObsBatch, load_checkpoint
from rlpost.schema import SampledChunk, SchemaError, StepRecord
from rlpost.sim import SimConfig
from tests.support.policies import save_tiny_policy
from tests.support.store_records import meta, step


@pytest.fixture(scope="module")
def practised(tmp_path_factory):
    """Two episodes of the tiny policy (execute 3 of its 8 actions per chunk) in a store."""
    root = tmp_path_factory.mktemp("sampled")
    vla = load_checkpoint(save_tiny_policy(root / "policy"))
    with EpisodeStore.open(root / "store") as store:
        st = practice(
            vla_chunk_fn(vla, torch.Generator().manual_seed(1)),
            "tabletop",
            SimConfig(image_size=32, max_steps=10),
            [11, 12],
            store,
            operator=None,
            policy_version=0,
            execute=3,
            session_id="s",
        )
        episodes = [store.read_episode(e) for e in st.episode_ids]
    return vla, root / "store", episodes


def test_every_policy_step_names_its_chunk_and_each_chunk_is_stored_once_as_sampled(practised):
    _, _, episodes = practised
    for ep in episodes:
        t = np.arange(ep.meta.length)
        assert ep.chunk_start.tolist() == (t - t % 3).tolist()
        assert ep.chunks.start.tolist() == list(range(0, ep.meta.length, 3)) and ep.absent == ()
        assert ep.chunks.actions.shape == ep.chunks.noise.shape == (len(ep.chunks.start), 8, 3)
        for j, s in enumerate(ep.chunks.start):  # the executed part is what the policy proposed
            executed = ep.policy_action[s : s + 3]
            np.testing.assert_array_equal(ep.chunks.actions[j, : len(executed)], executed)


def test_the_recorded_noise_reproduces_the_recorded_chunk_through_the_head(practised):
    vla, _, episodes = practised
    for ep in episodes:
        starts = ep.chunks.start
        batch = ObsBatch(
            {c: ep.images[c][starts] for c in ep.images},
            ep.state[starts],
            [ep.meta.instruction] * len(starts),
        )
        with torch.no_grad():
            again = vla.sample(vla.encode(batch), batch.state, noise=torch.from_numpy(ep.chunks.noise))
        # replayed as one batch of K chunks where they were sampled two robots at a time
        assert float((again - torch.from_numpy(ep.chunks.actions)).abs().max()) <= 1e-5


def test_an_episode_written_before_schema_2_opens_with_the_chunk_fields_named_absent(practised, tmp_path):
    _, store_dir, episodes = practised
    old = tmp_path / "old"
    shutil.copytree(store_dir, old)
    ep_dir = next((old / "episodes").iterdir())
    doc = json.loads((ep_dir / "meta.json").read_text())
    for rel in ("chunk_start.npy", "chunks/start.npy", "chunks/noise.npy", "chunks/actions.npy"):
        (ep_dir / rel).unlink()
        del doc["files"][rel]
    del doc["chunks"]
    doc["schema_version"] = doc["meta"]["schema_version"] = 1
    (ep_dir / "meta.json").write_text(json.dumps(doc))
    with EpisodeStore.open(old, create=False) as store:
        ep = store.read_episode(doc["meta"]["episode_id"])
        frames = store.read_frames(ep.meta.episode_id, [0, 1])
    assert ep.absent == ("chunk_start", "chunks")
    assert np.all(ep.chunk_start == -1) and ep.chunks.start.size == 0 and np.all(frames.chunk_start == -1)
    np.testing.assert_array_equal(
        ep.action, next(e for e in episodes if e.meta.episode_id == ep.meta.episode_id).action
    )


def _with_chunk(t: int, start: int, h: int = 8, noise: np.ndarray | None = None) -> StepRecord:
    s = step(t)
    rng = np.random.default_rng(100 + t)
    chunk = SampledChunk(
        start,
        rng.standard_normal((h, 3)).astype(np.float32) if noise is None else noise,
        rng.standard_normal((h, 3)).astype(np.float32),
    )
    return StepRecord(**{**s.__dict__, "chunk_start": start, "sampled": chunk})


def test_the_wal_carries_the_sampled_chunk_and_reads_a_step_written_without_one():
    import msgpack

    s = _with_chunk(4, 3)
    back = decode_step(msgpack.unpackb(encode_step(s), raw=False), "wal")
    assert back.chunk_start == 3 and back.sampled is not None and back.sampled.start == 3
    np.testing.assert_array_equal(back.sampled.noise, s.sampled.noise)
    np.testing.assert_array_equal(back.sampled.actions, s.sampled.actions)
    payload = msgpack.unpackb(encode_step(step(2)), raw=False)
    del payload["chunk_start"], payload["sampled"]  # a WAL record of schema 1
    old = decode_step(payload, "wal")
    assert old.chunk_start == -1 and old.sampled is None


def test_a_bad_sampled_chunk_is_refused_naming_it(tmp_path):
    with pytest.raises(SchemaError, match="sampled noise contains 1 NaN"):
        bad = np.zeros((8, 3), np.float32)
        bad[2, 1] = np.nan
        _with_chunk(4, 4, noise=bad).validate("robot 1")
    with pytest.raises(SchemaError, match="sampled chunk starts at frame 2, the step says chunk_start=4"):
        s = _with_chunk(4, 4)
        StepRecord(**{**s.__dict__, "sampled": SampledChunk(2, s.sampled.noise, s.sampled.actions)}).validate(
            "r"
        )
    with pytest.raises(SchemaError, match="chunk_start=5 must be -1 or a frame at or before"):
        StepRecord(**{**step(4).__dict__, "chunk_start": 5}).validate("r")
    with EpisodeStore.open(tmp_path / "store") as store:
        store.begin(meta("e1"))
        store.append("e1", _with_chunk(0, 0))
        with pytest.raises(
            SchemaError, match="sampled chunk has shape \\(4, 3\\), the episode's first had \\(8, 3\\)"
        ):
            store.append("e1", _with_chunk(1, 1, h=4))
        with pytest.raises(SchemaError, match="a sampled chunk from frame 0 follows one from frame 0"):
            store.append("e1", _with_chunk(1, 0))
        store.append("e1", _with_chunk(1, 1))
        store.finish("e1", "success", "env")
        ep = store.read_episode("e1")
    assert ep.chunks.start.tolist() == [0, 1] and ep.chunk_start.tolist() == [0, 1]


def test_a_robot_actors_control_loop_stores_the_chunks_its_inference_worker_sampled(tmp_path):
    from actors.config import ControlConfig, SafetyConfig
    from actors.control_loop import ControlLoop
    from rlpost.sim import make_robot
    from tests.support.actor_fakes import ScriptedOperator

    vla = load_checkpoint(save_tiny_policy(tmp_path / "policy"))
    human = np.array([0.1, -0.2, 1.0], np.float32)
    op = ScriptedOperator({5: [("take_over", None), ("human_action", human)], 8: [("hand_back", None)]})
    with EpisodeStore.open(tmp_path / "store") as store:
        loop = ControlLoop(
            make_robot("tabletop", max_steps=16, image_size=32),
            vla,
            store,
            control=ControlConfig(realtime=False, execute=4, lead_steps=1, hz=50.0),
            safety=SafetyConfig(hold="zero", hold_keep_dims=(2,)),
            operators=[op],
            observers=[op],
            task="tabletop",
        )
        ep = store.read_episode(loop.run_episode(seed=0).meta.episode_id)
        loop.close()
    human_steps = ep.intervention
    assert human_steps[5:8].all() and np.all(ep.chunk_start[human_steps] == -1)
    policy_steps = np.flatnonzero(~human_steps)
    assert np.all(ep.chunk_start[policy_steps] >= 0) and np.all(ep.chunk_start[policy_steps] <= policy_steps)
    # every chunk that acted is stored once, at the frame it was sampled from, as it was sampled
    assert set(ep.chunks.start.tolist()) == set(ep.chunk_start[policy_steps].tolist())
    for j, s in enumerate(ep.chunks.start):
        rows = np.flatnonzero(ep.chunk_start == s)
        np.testing.assert_array_equal(ep.chunks.actions[j, rows - s], ep.policy_action[rows])
    batch = ObsBatch(
        {c: ep.images[c][ep.chunks.start] for c in ep.images},
        ep.state[ep.chunks.start],
        [ep.meta.instruction] * len(ep.chunks.start),
    )
    with torch.no_grad():
        again = vla.sample(vla.encode(batch), batch.state, noise=torch.from_numpy(ep.chunks.noise))
    assert float((again - torch.from_numpy(ep.chunks.actions)).abs().max()) <= 1e-5
