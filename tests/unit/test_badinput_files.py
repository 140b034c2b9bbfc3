"""Corrupt and truncated files, generated (random cut points, random byte flips): finished episode files,
write-ahead logs and checkpoints. Each is refused with an error naming the file, or (a WAL's torn tail)
recovered to its intact prefix; never another exception type, and never a finished episode lost."""

from __future__ import annotations

import json
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_store_roundtrip import assert_steps_equal, make_meta, make_step, write_episode

from rlpost.data import EpisodeStore, StoreError
from rlpost.data.wal import WAL_MAGIC, read_wal
from rlpost.policy import VLA, CheckpointError, load_checkpoint, load_head_file, save_checkpoint, save_head
from tests.support.badinput import tally

pytestmark = pytest.mark.badinput
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def damage(draw, size: int) -> tuple[str, int, int]:
    """("truncate", cut, 0) or ("flip", offset, xor mask)."""
    if draw(st.booleans()):
        return "truncate", draw(st.integers(0, size - 1)), 0
    return "flip", draw(st.integers(0, size - 1)), draw(st.integers(1, 255))


def apply(path: Path, how: tuple[str, int, int]) -> None:
    kind, at, mask = how
    data = bytearray(path.read_bytes())
    if kind == "truncate":
        del data[at:]
    else:
        data[at] ^= mask
    path.write_bytes(bytes(data))


# -- finished episodes -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("finished")
    with EpisodeStore.open(root) as store:
        write_episode(store, "ep-a", 5, seed=1)
        write_episode(store, "ep-b", 4, seed=2)
    return root


def test_a_damaged_file_of_a_finished_episode_is_named_and_other_episodes_stay_readable(finished_store):
    ep_dirs = {p.name.split("_", 1)[1]: p.name for p in (finished_store / "episodes").iterdir()}
    files_a = sorted(
        str(p.relative_to(finished_store / "episodes" / ep_dirs["ep-a"]))
        for p in (finished_store / "episodes" / ep_dirs["ep-a"]).rglob("*")
        if p.is_file()
    )

    @FAST
    @given(st.sampled_from(files_a), st.data())
    def one(rel, data):
        with tempfile.TemporaryDirectory() as d:
            root = Path(d) / "store"
            shutil.copytree(finished_store, root)
            path = root / "episodes" / ep_dirs["ep-a"] / rel
            apply(path, data.draw(damage(path.stat().st_size)))
            store = EpisodeStore.open(root)
            try:
                ep = store.read_episode("ep-a")
            except StoreError as e:
                assert ep_dirs["ep-a"] in str(e), str(e)  # names the file (or its episode's meta.json)
                outcome = "refused"
            else:
                # Only meta.json has no checksum of its own: a flip there may change a free-text field.
                assert rel == "meta.json", f"{rel} damaged but read without an error"
                assert_steps_equal(ep, [make_step(t, 1) for t in range(5)])
                outcome = "undetected"
            try:
                other = EpisodeStore.open(root).read_episode("ep-b")
            except StoreError as e:  # listing needs every meta.json: the damaged one is named ...
                assert rel == "meta.json" and f"{ep_dirs['ep-a']}/meta.json" in str(e), str(e)
                shutil.move(str(root / "episodes" / ep_dirs["ep-a"]), Path(d) / "quarantine")
                other = EpisodeStore.open(root).read_episode("ep-b")  # ... and nothing else is lost
            assert_steps_equal(other, [make_step(t, 2) for t in range(4)])
            tally("store: finished episode files (truncated/flipped)", outcome)

    one()


# -- write-ahead logs -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def orphan_wal(tmp_path_factory) -> tuple[Path, list[int]]:
    """A store with one finished episode and one in-flight episode (6 steps) whose writer went away."""
    root = tmp_path_factory.mktemp("wal")
    store = EpisodeStore.open(root)
    write_episode(store, "done", 3, seed=3)
    store.begin(make_meta("live"))
    for t in range(6):
        store.append("live", make_step(t, 4))
    store.close()  # releases the WAL's lock, as a killed writer would
    (wal,) = (root / "wal").glob("*.wal")
    data, ends, pos = wal.read_bytes(), [], len(WAL_MAGIC)
    while pos < len(data):
        pos += 8 + struct.unpack_from("<I", data, pos)[0]
        ends.append(pos)  # record i ends here (record 0 is the meta)
    assert len(ends) == 7
    return root, ends


def test_a_damaged_wal_is_refused_naming_it_or_recovered_to_its_intact_prefix(orphan_wal):
    template, ends = orphan_wal
    steps = [make_step(t, 4) for t in range(6)]

    @settings(max_examples=60, deadline=None)
    @given(st.data())
    def one(data):
        with tempfile.TemporaryDirectory() as d:
            root = Path(d) / "store"
            shutil.copytree(template, root)
            (wal,) = (root / "wal").glob("*.wal")
            how = data.draw(damage(wal.stat().st_size))
            apply(wal, how)
            kind, at, _ = how
            try:
                got = read_wal(wal)
            except StoreError as e:
                assert str(wal) in str(e), str(e)
                # Refusing is right unless the damage is a plain truncation after the meta record.
                assert not (kind == "truncate" and at >= ends[0]), f"a torn tail at {at} was refused: {e}"
                with pytest.raises(StoreError, match=wal.name):
                    EpisodeStore.open(root)  # recovery stops loudly rather than guess ...
                done = EpisodeStore.open(root, recover=False).read_episode("done")  # ... finished data intact
                assert_steps_equal(done, [make_step(t, 3) for t in range(3)])
                outcome = "refused"
            else:
                kept = len(got.steps)
                complete = sum(1 for e in ends[1:] if e <= at) if kind == "truncate" else 6
                if kind == "flip":  # only damage in the final record may be taken for a torn tail
                    assert kept == 6 or (kept == 5 and at >= ends[5]), (
                        f"flip at {at} dropped {6 - kept} steps"
                    )
                else:
                    assert kept == complete, f"cut at {at}: kept {kept} steps, {complete} were complete"
                for a, b in zip(got.steps, steps, strict=False):
                    np.testing.assert_array_equal(a.action, b.action)
                    np.testing.assert_array_equal(a.images["front"], b.images["front"])
                with EpisodeStore.open(root) as store:  # recovery turns it into an aborted episode
                    (meta,) = [m for m in store.episodes() if m.episode_id == "live"]
                    assert (meta.outcome, meta.length) == ("aborted", kept)
                    assert store.read_episode("done").meta.length == 3
                outcome = "handled"
            tally("store: write-ahead log (truncated/flipped)", outcome)

    one()


@pytest.mark.parametrize("record", range(1, 6))
def test_a_flipped_length_field_mid_wal_is_corruption_not_a_torn_tail(orphan_wal, record, tmp_path):
    """A length that runs past EOF looks torn, but intact records after it show it is not: no steps dropped."""
    template, ends = orphan_wal
    shutil.copytree(template, tmp_path / "store")
    (wal,) = (tmp_path / "store" / "wal").glob("*.wal")
    start = ends[record - 1]  # record i starts where record i - 1 ends
    apply(wal, ("flip", start + 3, 0x40))  # the length's high byte: now far past EOF
    with pytest.raises(StoreError, match=rf"{wal.name}: record at byte {start} is corrupt"):
        read_wal(wal)
    tally("store: write-ahead log (truncated/flipped)", "refused")


# -- checkpoints and head files -------------------------------------------------------------------------------
def test_a_damaged_checkpoint_or_head_file_is_refused_naming_the_file(tmp_path, small_policy_cfg):
    vla = VLA(small_policy_cfg())
    ckpt = save_checkpoint(vla, tmp_path / "template" / "ckpt")
    save_head(vla, tmp_path / "template" / "head-0.safetensors")
    targets = ["ckpt/config.json", "ckpt/model.safetensors", "head-0.safetensors"]
    sizes = {t: (tmp_path / "template" / t).stat().st_size for t in targets}
    assert ckpt.exists()

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.sampled_from(targets), st.data())
    def one(target, data):
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            shutil.copytree(tmp_path / "template", root / "t")
            path = root / "t" / target
            apply(path, data.draw(damage(sizes[target])))
            try:
                if target.startswith("head"):
                    load_head_file(path)
                else:
                    load_checkpoint(root / "t" / "ckpt")
            except CheckpointError as e:
                assert path.name in str(e), str(e)  # the damaged file is named
                outcome = "refused"
            else:
                outcome = "undetected"
            tally(f"checkpoints: {Path(target).name} (truncated/flipped)", outcome)

    one()


def test_a_parseable_but_wrong_config_json_is_refused_naming_the_files(tmp_path, small_policy_cfg):
    """Regression: a config.json whose numbers changed (a flipped digit) once crashed with a TypeError."""
    ckpt = save_checkpoint(VLA(small_policy_cfg()), tmp_path / "ckpt")
    raw = json.loads((ckpt / "config.json").read_text())
    raw["policy"]["expert"]["depth"] = 3  # the weights hold 2 blocks
    (ckpt / "config.json").write_text(json.dumps(raw))
    with pytest.raises(
        CheckpointError, match=r"model\.safetensors: weights do not fit config\.json: missing \["
    ):
        load_checkpoint(ckpt)
    del raw["policy"]["action_dim"]  # a damaged key name: the field falls back to its unset default
    (ckpt / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match=r"config\.json: config does not describe a policy"):
        load_checkpoint(ckpt)
    tally("checkpoints: config.json (truncated/flipped)", "refused")
