"""The learner on a store whose right answer is known, plus resume, frozen backbone and bad data."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from learner.config import LearnerConfig, ReplayConfig
from learner.head_publisher import published_versions
from learner.learner import Learner
from learner.rules.steer_distill import SteerDistillConfig
from rlpost.data.episode_store import EpisodeStore
from rlpost.policy import VLA, ObsBatch, load_checkpoint, load_head_file, save_checkpoint
from rlpost.schema import EpisodeMeta, SchemaError, StepRecord

GOOD, BAD = 0.6, -0.6  # the two action modes
T = 10


def _write_episode(
    store: EpisodeStore,
    rng,
    eid: str,
    mode: float,
    outcome: str,
    source: str = "autonomous",
    image: np.ndarray | None = None,
    timed_state: bool = False,
):
    """One episode of constant action ``mode``; its frames are random unless ``image`` is given;
    its state is zero, or (t/T, 0) with ``timed_state``."""
    meta = EpisodeMeta(eid, "twomode", "move", "r0", "s0", source)
    store.begin(meta)
    for t in range(T):
        store.append(
            eid,
            StepRecord(
                images={"top": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) if image is None else image},
                state=np.array([t / T if timed_state else 0.0, 0.0], np.float32),
                action=np.full(2, mode, np.float32),
                policy_action=np.full(2, mode, np.float32),
                intervention=False,
                policy_version=0,
                t_ns=t,
                frame_index=t,
            ),
        )
    store.finish(eid, outcome, "env")
    # steps-to-go labels: successes reach 0, failures pay −1 at the end and look bad all along
    reward = np.full(T, -1 / 20, np.float32)
    if outcome == "success":
        reward[-1] = 0.0
        value = -(T - 1 - np.arange(T, dtype=np.float32)) / 20
    else:
        reward[-1] = -1.0
        value = np.full(T, -0.9, np.float32)
    store.write_labels(eid, "rm-v1", {"reward": reward, "value": value, "progress": np.zeros(T, np.float32)})


@pytest.fixture(scope="module")
def two_mode_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("twomode")
    rng = np.random.default_rng(0)
    with EpisodeStore.open(root / "store") as store:
        for i in range(12):
            good = i % 2 == 0
            _write_episode(store, rng, f"ep{i:02d}", GOOD if good else BAD, "success" if good else "failure")
    return root / "store"


@pytest.fixture(scope="module")
def one_view_store(tmp_path_factory):
    """The two modes under one unchanging view: which mode a chunk takes is up to the flow's
    noise alone (with a fresh random frame per step the head memorises each frame's mode, and
    there is no choice left in the noise for a steering net to learn)."""
    root = tmp_path_factory.mktemp("oneview")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    with EpisodeStore.open(root / "store") as store:
        for i in range(12):
            good = i % 2 == 0
            _write_episode(
                store, rng, f"ep{i:02d}", GOOD if good else BAD, "success" if good else "failure", image=image
            )
    return root / "store", image


@pytest.fixture
def policy_dir(tmp_path, small_policy_cfg):
    torch.manual_seed(0)
    return save_checkpoint(VLA(small_policy_cfg(horizon=4)), tmp_path / "policy")


def _good_fraction(vla: VLA, n: int = 96, image: np.ndarray | None = None) -> float:
    rng = np.random.default_rng(1)
    batch = ObsBatch(
        {
            "top": rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8)
            if image is None
            else np.stack([image] * n)
        },
        np.zeros((n, 2), np.float32),
        ["move"] * n,
    )
    chunks = vla.act_batch(batch, generator=torch.Generator().manual_seed(0)).numpy()
    return float((chunks.mean(axis=(1, 2)) > 0).mean())


def _train(store_root, policy_dir, run_dir, **overrides) -> Learner:
    # the update rules' known answers, on the weights they train: no averaging of what ships
    cfg = LearnerConfig(batch_size=64, lr=3e-3, publish_every=150, ema_decay=0.0, **overrides)
    with EpisodeStore.open(store_root) as store:
        learner = Learner(cfg, store, policy_dir, run_dir)
        learner.train(300)
    return learner


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "lo", "hi"),
    [("awfm", 0.85, 1.0), ("bc_all", 0.2, 0.8), ("curated", 0.95, 1.0), ("adv_conditioned", 0.85, 1.0)],
)
def test_modes_on_two_action_modes_with_known_advantages(two_mode_store, policy_dir, tmp_path, mode, lo, hi):
    extra = {"beta": 0.5} if mode == "awfm" else {}
    learner = _train(
        two_mode_store,
        policy_dir,
        tmp_path / mode,
        mode=mode,
        replay=ReplayConfig(demo_fraction=0.0),
        **extra,
    )
    frac = _good_fraction(learner.vla)
    assert lo <= frac <= hi, f"{mode}: {frac:.2f} of sampled chunks in the good mode"
    # what ships: the published head, loaded into a fresh copy of the policy, acts the same way
    actor = load_checkpoint(learner.last)
    assert published_versions(tmp_path / mode / "heads") == [1, 2]
    assert (
        load_head_file(tmp_path / mode / "heads" / "head-000002.safetensors").version
        == actor.head_version
        == 2
    )


def test_backbone_is_bit_identical_after_training_and_only_the_head_has_optimizer_state(
    two_mode_store, policy_dir, tmp_path
):
    before = {k: v.clone() for k, v in load_checkpoint(policy_dir).backbone.state_dict().items()}
    cfg = LearnerConfig(batch_size=16, publish_every=10)
    with EpisodeStore.open(two_mode_store) as store:
        learner = Learner(cfg, store, policy_dir, tmp_path / "run")
        learner.train(20)
    for k, v in learner.vla.backbone.state_dict().items():
        assert torch.equal(v, before[k]), k
    head_ids = {id(p) for p in learner.vla.head_parameters()}
    assert all(id(p) in head_ids for g in learner.opt.param_groups for p in g["params"])
    assert learner.cache.stats.hit_rate > 0.9  # 12 episodes encoded once, then reused


def test_warmup_ramps_the_learning_rate_and_a_resume_continues_the_ramp(two_mode_store, policy_dir, tmp_path):
    cfg = LearnerConfig(batch_size=8, lr=1e-3, warmup_updates=4, publish_every=2)
    run = tmp_path / "run"
    with EpisodeStore.open(two_mode_store) as store:
        first = Learner(cfg, store, policy_dir, run)
        first.replay.refresh()
        lrs = []
        for _ in range(2):
            lrs.append(first.update()["learner/lr"])
            assert first.opt.param_groups[0]["lr"] == lrs[-1]
        first.checkpoint_and_publish()
        second = Learner(cfg, store, policy_dir, run)  # resumes at step 2: the ramp goes on
        second.replay.refresh()
        lrs += [second.update()["learner/lr"] for _ in range(4)]
    assert lrs == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])
    with pytest.raises(ValueError, match="warmup_updates"):
        LearnerConfig(warmup_updates=-1)


def test_resume_continues_the_same_step_and_version_without_repeating_or_skipping(
    two_mode_store, policy_dir, tmp_path
):
    cfg = LearnerConfig(batch_size=16, publish_every=5)
    run = tmp_path / "run"
    with EpisodeStore.open(two_mode_store) as store:
        first = Learner(cfg, store, policy_dir, run)
        first.train(12)  # published 1, 2 at steps 5, 10; steps 11-12 not checkpointed
        assert (first.step, first.version) == (12, 2)
        second = Learner(cfg, store, policy_dir, run)  # as after a crash
        assert (second.step, second.version) == (10, 2)
        for k, v in load_checkpoint(run / "checkpoints" / "last").state_dict().items():
            assert torch.equal(v, second.shipped.state_dict()[k])  # the checkpoint holds what shipped
        second.train(10)
    assert (second.step, second.version) == (20, 4)
    assert published_versions(run / "heads") == [1, 2, 3, 4]


def _head(vla: VLA) -> dict[str, np.ndarray]:
    return {k: v for k, v in vla.head_state().items() if k.startswith("expert.")}


def test_with_ema_the_averaged_head_ships_and_a_resume_restores_it_and_the_live_head(
    two_mode_store, policy_dir, tmp_path
):
    cfg = LearnerConfig(batch_size=16, lr=1e-3, publish_every=5, ema_decay=0.9)
    run = tmp_path / "run"
    with EpisodeStore.open(two_mode_store) as store:
        first = Learner(cfg, store, policy_dir, run)
        start = _head(load_checkpoint(policy_dir))
        assert all(
            np.array_equal(v, start[k]) for k, v in _head(first.shipped).items()
        )  # starts where training does
        first.replay.refresh()
        before = _head(first.shipped)
        first.update()
        live = _head(first.vla)
        for k, v in _head(first.shipped).items():  # one step: 0.9 * average + 0.1 * live
            np.testing.assert_allclose(v, 0.9 * before[k] + 0.1 * live[k], rtol=1e-5, atol=1e-7, err_msg=k)
        first.train(9)  # published 1, 2 at steps 5, 10
        shipped, live = _head(first.shipped), _head(first.vla)
        assert any(not np.array_equal(v, live[k]) for k, v in shipped.items())
        published = load_head_file(run / "heads" / "head-000002.safetensors")
        assert published.version == 2
        assert all(np.array_equal(published.tensors[k], v) for k, v in shipped.items())
        ckpt = load_checkpoint(run / "checkpoints" / "last")  # the checkpoint is what shipped
        assert ckpt.head_version == 2 and all(np.array_equal(v, shipped[k]) for k, v in _head(ckpt).items())
        second = Learner(cfg, store, policy_dir, run)  # resumes both: averaged and live weights
        assert (second.step, second.version) == (10, 2)
        assert all(np.array_equal(v, shipped[k]) for k, v in _head(second.shipped).items())
        assert all(np.array_equal(v, live[k]) for k, v in _head(second.vla).items())
        plain = Learner(dataclasses.replace(cfg, ema_decay=0.0), store, policy_dir, tmp_path / "plain")
        assert plain.shipped is plain.vla
    with pytest.raises(ValueError, match="ema_decay"):
        LearnerConfig(ema_decay=1.0)


@pytest.mark.parametrize("mode", ["fpo", "steer", "steer_distill", "adv_conditioned"])
def test_every_mode_with_its_extra_parts_ships_an_averaged_head_that_acts(
    two_mode_store, policy_dir, tmp_path, mode
):
    cfg = LearnerConfig(mode=mode, batch_size=8, lr=1e-3, publish_every=4, ema_decay=0.5)
    with EpisodeStore.open(two_mode_store) as store:
        learner = Learner(cfg, store, policy_dir, tmp_path / "run")
        learner.train(8)
    head = load_head_file(tmp_path / "run" / "heads" / "head-000002.safetensors")
    assert head.tensors.keys() == learner.shipped.head_state().keys()
    actor = load_checkpoint(policy_dir)  # a robot that started from the pretrained policy takes it
    actor.load_head(head.tensors, head.version)
    rng = np.random.default_rng(2)
    obs = ObsBatch(
        {"top": rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)},
        np.zeros((4, 2), np.float32),
        ["move"] * 4,
    )
    chunks = actor.act_batch(obs, generator=torch.Generator().manual_seed(0))
    assert chunks.shape == (4, 4, 2) and torch.isfinite(chunks).all()
    if mode == "steer_distill":  # what ships acts from plain noise: the averaged steering net adds nothing
        assert not learner.shipped.steer.mlp[-1].weight.any()
    if mode == "fpo":  # the reference of the ratio is the head the robots practise with
        ref = learner.rule.old_expert.state_dict()
        assert all(torch.equal(v, ref[k]) for k, v in learner.shipped.expert.state_dict().items())


@pytest.fixture(scope="module")
def visible_outcome_store(tmp_path_factory):
    """Practice episodes whose camera shows the outcome to come (bright: success, dark: failure)
    and whose state is t/T: the return-to-go is a function of the observation."""
    root = tmp_path_factory.mktemp("visible")
    rng = np.random.default_rng(0)
    with EpisodeStore.open(root / "store") as store:
        for i in range(20):
            good = i % 2 == 0
            shade = np.full((32, 32, 3), 220 if good else 30, np.uint8)
            outcome = "success" if good else "failure"
            _write_episode(
                store, rng, f"ep{i:02d}", GOOD if good else BAD, outcome, image=shade, timed_state=True
            )
    return root / "store"


def test_value_refit_learns_the_policys_own_returns_and_its_advantages_use_them(
    visible_outcome_store, policy_dir, tmp_path
):
    """With the outcome in view, the true value of this (deterministic) behaviour makes every
    n-step advantage ~0; the labels' value (flat −0.9 on failures) gives failures −k/20 and a
    jump at the end. The refit critic must land near the true value, and replay must use it."""
    from learner.advantages import nstep_advantage

    cfg = LearnerConfig(batch_size=16, publish_every=50, value="refit", critic_updates=500)
    with EpisodeStore.open(visible_outcome_store) as store:
        learner = Learner(cfg, store, policy_dir, tmp_path / "run")
        learner.refresh()
        failures = [v for v in learner.replay.views.values() if v.meta.outcome == "failure"]
        labels_adv = np.concatenate([nstep_advantage(v.reward, v.value, cfg.execute, True) for v in failures])
        assert np.abs(labels_adv).mean() > 0.15
        refit_adv = np.concatenate([v.adv for v in learner.replay.views.values()])
        assert np.abs(refit_adv).mean() < 0.05, np.abs(refit_adv).mean()
        fitted_on = learner._critic_episodes
        learner.train(2)  # nothing new: no second fit
        assert learner._critic_episodes == fitted_on == 20
    with pytest.raises(ValueError, match=r"learner\.value"):
        LearnerConfig(value="bogus")
    with pytest.raises(ValueError, match="uses a value"):
        LearnerConfig(value="refit", advantage="progress_delta")


def test_a_nan_in_a_batch_is_caught_with_a_clear_error(tmp_path, policy_dir):
    rng = np.random.default_rng(0)
    with EpisodeStore.open(tmp_path / "store") as store:
        _write_episode(store, rng, "ok", GOOD, "success")
        _write_episode(store, rng, "bad", BAD, "failure")
        store.write_labels(
            "bad", "rm-v2", {"reward": np.full(T, np.nan, np.float32), "value": np.zeros(T, np.float32)}
        )
        learner = Learner(LearnerConfig(batch_size=8), store, policy_dir, tmp_path / "run")
        with pytest.raises(SchemaError, match="episode bad give NaN/Inf advantages"):
            learner.train(1)


def test_modes_that_rank_by_advantage_wait_for_labels(tmp_path, policy_dir):
    rng = np.random.default_rng(0)
    with EpisodeStore.open(tmp_path / "store") as store:
        _write_episode(store, rng, "labelled", GOOD, "success")
        meta = EpisodeMeta("unlabelled", "twomode", "move", "r0", "s0", "autonomous")
        store.begin(meta)
        step = StepRecord(
            images={"top": np.zeros((32, 32, 3), np.uint8)},
            state=np.zeros(2, np.float32),
            action=np.zeros(2, np.float32),
            policy_action=np.zeros(2, np.float32),
            intervention=False,
            policy_version=0,
            t_ns=0,
            frame_index=0,
        )
        store.append("unlabelled", step)
        store.finish("unlabelled", "failure", "env")
        learner = Learner(LearnerConfig(batch_size=8), store, policy_dir, tmp_path / "run")
        learner.replay.refresh()
        assert learner.replay.stats.pending == 1 and learner.replay.stats.episodes == 1
        bc = Learner(LearnerConfig(mode="bc_all", batch_size=8), store, policy_dir, tmp_path / "run_bc")
        bc.replay.refresh()
        assert bc.replay.stats.episodes == 2


def test_rlpost_learn_trains_publishes_and_resumes_from_the_command_line(
    two_mode_store, policy_dir, tmp_path, capsys
):
    from rlpost.cli import main

    args = [
        "learn",
        f"store={two_mode_store}",
        f"policy={policy_dir}",
        f"out={tmp_path / 'run'}",
        "learner.mode=awfm",
        "learner.batch_size=16",
        "learner.publish_every=4",
        "logger.wandb_mode=disabled",
        "progress=false",
    ]
    assert main([*args, "updates=6"]) == 0  # versions 1 (step 4) and 2 (final, step 6)
    assert published_versions(tmp_path / "run" / "heads") == [1, 2]
    assert main([*args, "updates=8"]) == 0  # resumes at step 6: version 3 at step 8
    assert published_versions(tmp_path / "run" / "heads") == [1, 2, 3]
    assert "head_version" in capsys.readouterr().out


def test_steer_distill_alternates_its_phases_and_each_trains_only_its_part(
    two_mode_store, policy_dir, tmp_path
):
    cfg = LearnerConfig(
        mode="steer_distill",
        batch_size=8,
        lr=1e-2,
        publish_every=4,
        steer_distill=SteerDistillConfig(fraction=0.5),
    )
    with EpisodeStore.open(two_mode_store) as store:
        learner = Learner(cfg, store, policy_dir, tmp_path / "run")
        learner.replay.refresh()
        phases = []
        for _ in range(4):
            expert0 = {k: v.clone() for k, v in learner.vla.expert.state_dict().items()}
            steer0 = {k: v.clone() for k, v in learner.vla.steer.state_dict().items()}
            distilling = learner.rule.distilling(learner.step)
            phases.append(distilling)
            learner.update()
            expert_moved = any(
                not torch.equal(v, expert0[k]) for k, v in learner.vla.expert.state_dict().items()
            )
            steer_moved = any(
                not torch.equal(v, steer0[k]) for k, v in learner.vla.steer.state_dict().items()
            )
            assert (expert_moved, steer_moved) == (distilling, not distilling), learner.step
        assert phases == [False, False, True, True]
        learner.checkpoint_and_publish()
    # what ships acts from plain noise: the steering net's output is exactly zero
    shipped = load_head_file(tmp_path / "run" / "heads" / "head-000001.safetensors").tensors
    assert not np.any(shipped["steer.mlp.4.weight"]) and not np.any(shipped["steer.mlp.4.bias"])
    assert learner.rule.teacher is None


@pytest.mark.slow
def test_steering_and_its_distillation_pick_the_good_mode_that_imitation_leaves_to_chance(
    one_view_store, policy_dir, tmp_path
):
    """From a head that imitates both modes, the steering net learns to start the flow where the
    good mode comes out, and steer_distill puts that choice into the expert: the published head
    alone, acting from plain noise, prefers it."""
    store, image = one_view_store
    no_demos = ReplayConfig(demo_fraction=0.0)
    both = _train(store, policy_dir, tmp_path / "bc", mode="bc_all", replay=no_demos)
    start = _good_fraction(both.vla, image=image)
    steered = _train(store, both.last, tmp_path / "st", mode="steer", beta=0.5, replay=no_demos)
    learner = _train(store, both.last, tmp_path / "sd", mode="steer_distill", beta=0.5, replay=no_demos)
    # a learner that starts from another's checkpoint (head version 2) continues its versions
    assert published_versions(tmp_path / "sd" / "heads") == [3, 4]
    actor = load_checkpoint(learner.last)
    assert not actor.steer.mlp[-1].bias.any() and not actor.steer.mlp[-1].weight.any()
    fractions = (start, _good_fraction(steered.vla, image=image), _good_fraction(actor, image=image))
    assert fractions[1] >= start + 0.1 and fractions[2] >= max(0.85, start + 0.2), fractions
