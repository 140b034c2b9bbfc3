"""The labeler writes versioned labels beside the raw data, never touching it, and skips nothing silently."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from reward_models.checkpoint import RewardCheckpoint
from reward_models.config import RewardDef, RewardModelConfig
from reward_models.features import EpisodeFeatures
from reward_models.labeler import Labeler
from reward_models.model import Calibration, RewardModel
from rlpost.data import EpisodeStore, StoreError
from rlpost.policy import VLA, CheckpointError
from rlpost.schema import EpisodeMeta, StepRecord

MODEL_CFG = RewardModelConfig(width=32, pool_tokens=2, heads=2, depth=1, window=3, stride=1, bins=11)


def _record(store: EpisodeStore, eid: str, n: int, outcome: str | None, interv: tuple[int, ...] = ()) -> None:
    rng = np.random.default_rng(abs(hash(eid)) % 2**32)
    store.begin(
        EpisodeMeta(
            episode_id=eid,
            task="tabletop",
            instruction="put the red block in the ring",
            robot_id="r",
            session_id="s",
            source="autonomous",
        )
    )
    for t in range(n):
        store.append(
            eid,
            StepRecord(
                images={"top": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)},
                state=rng.normal(size=2).astype(np.float32),
                action=np.zeros(2, np.float32),
                policy_action=np.zeros(2, np.float32),
                intervention=t in interv,
                policy_version=0,
                t_ns=t,
                frame_index=t,
            ),
        )
    if outcome is not None:
        store.finish(eid, outcome=outcome, marked_by="env")


def _raw_digest(root) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((root / "episodes").rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def setup(tmp_path, small_policy_cfg):
    store = EpisodeStore.open(tmp_path / "store")
    _record(store, "ok", 6, "success")
    _record(store, "bad", 5, "failure")
    _record(store, "rescued", 7, "success", interv=(2, 3))
    torch.manual_seed(0)
    backbone = VLA(small_policy_cfg()).backbone.freeze()
    feats = EpisodeFeatures(backbone, store)

    def ckpt(version: int) -> RewardCheckpoint:
        model = RewardModel(MODEL_CFG, backbone.width, 2).eval()
        return RewardCheckpoint(
            model, version, RewardDef(t_max=10, c_fail=10.0), Calibration(threshold=0.5), feats.fingerprint
        )

    return store, feats, ckpt


def test_labels_land_versioned_and_the_raw_episode_files_are_untouched(setup):
    store, feats, ckpt = setup
    before = _raw_digest(store.root)
    res = Labeler(ckpt(1), feats).label(["ok", "bad", "rescued"])
    assert res.label_version == "rm-v1" and res.labelled == ["ok", "bad", "rescued"]
    labels = store.read_labels("rescued", "rm-v1")
    assert set(labels) == {"progress", "success_prob", "value", "reward", "terminal", "auto_marked"}
    for name in ("progress", "success_prob", "value", "reward"):
        assert labels[name].dtype == np.float32 and labels[name].shape == (7,)
    # steps-to-go reward: -1 a step, -1 - C_fail before the takeover at step 2, 0 at the success
    np.testing.assert_allclose(labels["reward"] * 20, [-1, -11, -1, -1, -1, -1, 0], rtol=1e-5)
    assert labels["terminal"].tolist() == [False, True, False, False, False, False, True]
    np.testing.assert_allclose(store.read_labels("bad", "rm-v1")["reward"][-1] * 20, -11, rtol=1e-5)

    # a new model version adds a version beside the old one; the raw data never changes
    Labeler(ckpt(2), feats).label(["ok"])
    assert store.label_versions("ok") == ["rm-v1", "rm-v2"]
    assert store.label_versions("bad") == ["rm-v1"]
    assert _raw_digest(store.root) == before


def test_labelling_a_version_again_leaves_it_and_says_so_unless_overwrite(setup):
    store, feats, ckpt = setup
    labeler = Labeler(ckpt(1), feats)
    labeler.label(["ok"])
    first = store.read_labels("ok", "rm-v1")
    res = labeler.label(["ok", "bad"])
    assert res.already_labelled == ["ok"] and res.labelled == ["bad"]
    assert labeler.unlabelled() == ["rescued"]
    res = labeler.label(["ok"], overwrite=True)
    assert res.labelled == ["ok"]
    np.testing.assert_array_equal(store.read_labels("ok", "rm-v1")["progress"], first["progress"])


def test_an_episode_without_an_outcome_gets_labels_with_reward_nan_and_is_reported(tmp_path, setup):
    store, feats, ckpt = setup
    _record(store, "lost", 4, None)  # writer dies: recovered as aborted, extra["recovered"]
    store.close()
    store2 = EpisodeStore.open(store.root)
    feats2 = EpisodeFeatures(feats.cache.backbone, store2)
    res = Labeler(ckpt(1), feats2).label(["lost"])
    assert res.no_outcome == ["lost"]
    labels = store2.read_labels("lost", "rm-v1")
    assert np.isnan(labels["reward"]).all() and np.isfinite(labels["progress"]).all()


def test_unknown_episodes_and_another_backbone_are_errors(setup, small_policy_cfg):
    store, feats, ckpt = setup
    with pytest.raises(StoreError, match="nope"):
        Labeler(ckpt(1), feats).label(["nope"])
    torch.manual_seed(1)
    other = EpisodeFeatures(VLA(small_policy_cfg()).backbone.freeze(), store)
    with pytest.raises(CheckpointError, match="trained on backbone"):
        Labeler(ckpt(1), other)


def test_progress_delta_labels_pay_no_shaping_to_a_failure(setup):
    store, feats, ckpt = setup
    Labeler(ckpt(1), feats, RewardDef(kind="progress_delta")).label(["bad"])
    labels = store.read_labels("bad", "rm-v1")
    assert labels["reward"].sum() == pytest.approx(-labels["progress"][0] - 1.0, abs=1e-5)


def test_labeler_actor_labels_episodes_as_they_arrive(tmp_path, setup, small_policy_cfg):
    from reward_models.checkpoint import save_reward_checkpoint
    from reward_models.config import LabelConfig
    from reward_models.labeler import LabelerActor
    from rlpost.policy import save_checkpoint

    store, _, _ = setup
    vla = VLA(small_policy_cfg())
    save_checkpoint(vla, tmp_path / "policy")
    fingerprint = vla.backbone.freeze().fingerprint()
    model = RewardModel(MODEL_CFG, vla.backbone.width, 2)
    rm = RewardCheckpoint(model, 3, RewardDef(t_max=10, c_fail=10.0), Calibration(), fingerprint)
    path = save_reward_checkpoint(rm, tmp_path / "rm")
    actor = LabelerActor(
        LabelConfig(store=str(store.root), reward_model=str(path), policy_checkpoint=str(tmp_path / "policy"))
    )
    assert sorted(actor.label_new()) == ["bad", "ok", "rescued"]
    assert actor.label_new() == []
    _record(store, "late", 4, "timeout")
    assert actor.label_new() == ["late"] and actor.stats() == {"labelled_total": 4}
    assert store.label_versions("late") == ["rm-v3"]
