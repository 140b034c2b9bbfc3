"""Weight sources: a directory of head files (newest wins, checked) and in-memory offers."""

from __future__ import annotations

import numpy as np
import pytest

from actors.weights import HeadDirectory, LatestWeights
from rlpost.policy import VLA, CheckpointError, save_head


def test_head_directory_serves_the_newest_head_file_and_it_loads_into_a_vla(tmp_path, small_policy_cfg):
    vla = VLA(small_policy_cfg())
    src = HeadDirectory(tmp_path / "heads")
    assert src.latest_version() == -1  # no directory yet: nothing published
    for v in (1, 3, 2):
        vla.head_version = v
        save_head(vla, tmp_path / "heads" / f"head-{v}.safetensors")
    (tmp_path / "heads" / "notes.txt").write_text("not a head")
    assert src.latest_version() == 3
    other = VLA(small_policy_cfg())
    other.load_head(src.fetch(3), 3)
    for k, v in vla.head_state().items():
        np.testing.assert_array_equal(other.head_state()[k], v)


def test_head_file_whose_name_and_metadata_disagree_is_refused(tmp_path, small_policy_cfg):
    vla = VLA(small_policy_cfg())
    vla.head_version = 4
    save_head(vla, tmp_path / "head-5.safetensors")
    with pytest.raises(CheckpointError, match="says version 4, its name says 5"):
        HeadDirectory(tmp_path).fetch(5)
    (tmp_path / "head-6.safetensors").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="head-6"):
        HeadDirectory(tmp_path).fetch(6)


def test_latest_weights_keep_only_newer_offers():
    w = LatestWeights()
    assert w.offer({"a": np.zeros(1)}, 2) and not w.offer({"a": np.ones(1)}, 1)
    assert w.latest_version() == 2 and w.fetch(2)["a"][0] == 0
    with pytest.raises(KeyError, match="not held"):
        w.fetch(1)
