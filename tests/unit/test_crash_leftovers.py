"""What a crash leaves on disk is repaired on restart: a checkpoint swap cut in half, metrics of
updates lost with the process, and a step's reward that follows the step in its WAL."""

from __future__ import annotations

import os

import numpy as np

from rlpost.data import EpisodeStore
from rlpost.metrics import LoggerConfig, MetricsLogger, read_metrics
from rlpost.policy import VLA, load_checkpoint, save_checkpoint
from rlpost.policy.checkpoint import recover_checkpoint
from tests.support.store_records import meta, step


def test_a_checkpoint_killed_between_its_two_renames_is_restored(tmp_path, small_policy_cfg):
    last = save_checkpoint(VLA(small_policy_cfg()), tmp_path / "last")
    os.replace(last, tmp_path / ".last.old")  # the first rename of save_checkpoint's swap
    (tmp_path / ".last.tmp123").mkdir()  # a half-written new checkpoint
    assert recover_checkpoint(last)
    assert load_checkpoint(last) is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]
    assert not recover_checkpoint(last)  # nothing to do on a clean directory


def test_rewind_drops_metrics_logged_after_the_checkpoint_and_appending_continues(tmp_path):
    m = MetricsLogger(LoggerConfig(wandb_mode="disabled"), tmp_path, "t")
    for s in range(1, 8):
        m.log({"learner/loss": float(s)}, s)
    assert m.rewind(4) == 3
    m.log({"learner/loss": 5.5}, 5)
    m.close()
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3, 4, 5]


def test_a_reward_recorded_after_its_step_is_stored_with_it_even_after_a_crash(tmp_path):
    store = EpisodeStore.open(tmp_path)
    store.begin(meta("e"))
    store.append("e", step(0))
    store.set_reward("e", 0, 0.5)
    store.append("e", step(1))  # its reward never came: the process died
    store.close()
    with EpisodeStore.open(tmp_path) as reopened:  # recovery
        reward = reopened.read_episode("e").reward
    assert reward[0] == 0.5 and np.isnan(reward[1])
