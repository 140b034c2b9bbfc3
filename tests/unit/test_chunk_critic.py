"""The chunk critic: TD targets over chunks, known values recovered, best-of-N, its file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learner.chunk_critic import (
    ChunkCriticConfig,
    CriticEpisode,
    build_windows,
    episode_windows,
    fit_critic,
    matched_time_auc,
    td_targets,
)
from rlpost.policy import ObsBatch
from rlpost.policy.best_of_n import BestOfN, critic_inputs
from rlpost.policy.checkpoint import CheckpointError
from rlpost.policy.chunk_critic import ChunkCritic, ChunkQ, CriticSpec, load_critic, pool_prefix, save_critic
from tests.support.critic_data import hand_built_windows
from tests.support.policies import tiny_vla


def test_windows_of_a_known_chain_bootstrap_n_chunks_on_or_end_with_the_discounted_success():
    w = episode_windows(10, k=2, n=1, gamma=0.9, success=True, terminal=True)
    assert w.starts.tolist() == list(range(9))
    assert w.next_start.tolist() == [2, 3, 4, 5, 6, 7, 8, -1, -1]
    np.testing.assert_allclose(w.discount[:7], 0.81)
    np.testing.assert_allclose(w.terminal_value[7:], [0.9**2, 0.9**1])  # reward 1 at step 9
    two = episode_windows(10, k=2, n=2, gamma=0.9, success=True, terminal=True)
    assert two.next_start.tolist() == [4, 5, 6, 7, 8, -1, -1, -1, -1]
    np.testing.assert_allclose(two.discount[:5], 0.9**4)
    failed = episode_windows(10, k=2, n=1, gamma=0.9, success=False, terminal=True)
    assert np.all(failed.terminal_value == 0)
    cut = episode_windows(
        10, k=2, n=1, gamma=0.9, success=False, terminal=False
    )  # aborted: no terminal reward
    assert cut.starts.tolist() == list(range(8)) and cut.next_start.tolist()[-1] == 8
    assert episode_windows(1, k=2, n=1, gamma=0.9, success=True, terminal=True).starts.size == 0


def _spec(k: int, a_dim: int) -> CriticSpec:
    return CriticSpec(prefix_width=2, state_dim=1, action_dim=a_dim, chunk=k, heads=3, width=64, gamma=0.9)


def test_the_critic_recovers_known_chunk_values_and_backs_them_up_one_chunk():
    k, a = 2, 2
    cfg = ChunkCriticConfig(
        chunk=k, heads=3, width=64, gamma=0.9, updates=1500, batch_size=128, lr=1e-3, tau=0.05
    )
    one = hand_built_windows(400, k, a, seed=0, two_stage=False)
    critic, fit = fit_critic(one, _spec(k, a), cfg, seed=0, progress=False)
    q = critic.values(one.pooled, one.state, one.chunk).mean(0).numpy()
    # a good chunk is worth gamma^(k-1) = 0.9 (success at its last step), a bad one 0
    assert q[one.success].mean() == pytest.approx(0.9, abs=0.06)
    assert q[~one.success].mean() == pytest.approx(0.0, abs=0.06)
    assert fit.auc_matched > 0.97 and fit.heldout_episodes == 60

    two = hand_built_windows(400, k, a, seed=1, two_stage=True)
    critic, fit = fit_critic(two, _spec(k, a), cfg, seed=0, progress=False)
    first = two.next_row >= 0
    q0 = critic.values(two.pooled[first], two.state[first], two.chunk[first]).mean(0).numpy()
    # the max backup knows the head can pick the good chunk next: 0.9^2 * 0.9 from any first chunk
    assert q0.mean() == pytest.approx(0.9**3, abs=0.08)
    executed = fit_critic(
        two, _spec(k, a), ChunkCriticConfig(**{**cfg.__dict__, "backup": "executed"}), 0, False
    )[0]
    q0_exec = executed.values(two.pooled[first], two.state[first], two.chunk[first]).mean(0).numpy()
    # what was executed next succeeded half the time: the behaviour's value, about half as much
    assert q0_exec.mean() == pytest.approx(0.9**3 * two.success[first.numpy()].mean(), abs=0.1)


def test_td_targets_use_the_target_net_only_where_a_window_follows():
    data = hand_built_windows(20, 2, 2, seed=3, two_stage=True)
    net = ChunkQ(_spec(2, 2))
    y = td_targets(
        net, data, torch.arange(len(data)), ChunkCriticConfig(chunk=2, backup="executed", backup_risk=0.0)
    )
    last = data.next_row < 0
    assert torch.equal(y[last], data.terminal_value[last])
    assert torch.all(y[~last] <= data.discount[~last]) and torch.all(y[~last] > 0)


def test_matched_time_auc_compares_only_within_a_time_bin():
    t = np.array([0, 0, 100, 100])
    success = np.array([True, False, True, False])
    # late steps worth less overall, but within each bin the success ranks higher: AUC 1
    assert matched_time_auc(np.array([0.9, 0.8, 0.2, 0.1]), t, success, 25) == 1.0
    assert matched_time_auc(np.array([0.8, 0.9, 0.1, 0.2]), t, success, 25) == 0.0
    assert np.isnan(matched_time_auc(np.array([0.5, 0.5]), np.array([0, 0]), np.array([True, True]), 25))


def _critic_for(vla, k: int = 4, heads: int = 3) -> ChunkCritic:
    torch.manual_seed(1)
    spec = CriticSpec(
        prefix_width=vla.backbone.width,
        state_dim=vla.cfg.policy_state_dim,
        action_dim=vla.cfg.action_dim,
        chunk=k,
        heads=heads,
        width=32,
        backbone_fingerprint=vla.backbone.fingerprint(),
    )
    return ChunkCritic(spec, ChunkQ(spec).eval())


def _obs(b: int, seed: int = 0) -> ObsBatch:
    rng = np.random.default_rng(seed)
    return ObsBatch(
        images={"top": rng.integers(0, 255, (b, 32, 32, 3), dtype=np.uint8)},
        state=rng.normal(size=(b, 6)).astype(np.float32),
        instructions=["put the red block in the ring"] * b,
    )


def test_best_of_n_executes_the_candidate_the_critic_scores_highest():
    vla = tiny_vla().eval()
    critic = _critic_for(vla)
    batch = _obs(3)
    pick = BestOfN(vla, critic, n=8, risk=1.0).choose(batch, torch.Generator().manual_seed(7))
    # the same candidates, scored independently
    with torch.no_grad():
        prefix = vla.encode(batch)
        cands = vla.candidates(prefix, batch.state, 8, torch.Generator().manual_seed(7))
        pooled = pool_prefix(prefix).repeat_interleave(8, 0)
        s, c = critic_inputs(
            vla, torch.from_numpy(batch.state).repeat_interleave(8, 0), cands.flatten(0, 1), 4
        )
        q = critic.values(pooled, s, c).view(3, 3, 8)
    want = (q.mean(0) - q.std(0)).argmax(1)
    assert torch.equal(pick.index, want)
    assert torch.equal(pick.chunks, cands[torch.arange(3), want])
    assert pick.chunks.shape == (3, vla.cfg.horizon, vla.cfg.action_dim) and torch.isfinite(pick.chunks).all()


def test_best_of_one_is_the_plain_policy_on_the_same_noise():
    vla = tiny_vla().eval()
    batch = _obs(4, seed=2)
    plain = vla.act_batch(batch, generator=torch.Generator().manual_seed(3))
    one = BestOfN(vla, _critic_for(vla), n=1).choose(batch, torch.Generator().manual_seed(3))
    assert torch.equal(one.chunks, plain)


def test_best_of_n_refuses_a_critic_for_another_policy_shape():
    vla = tiny_vla()
    with pytest.raises(ValueError, match="critic scores 9 actions"):
        BestOfN(vla, _critic_for(vla, k=9), n=4)
    other = _critic_for(vla)
    other = ChunkCritic(CriticSpec(**{**other.spec.__dict__, "backbone_fingerprint": "f" * 16}), other.net)
    with pytest.raises(CheckpointError, match="reads features of backbone ffff"):
        BestOfN(vla, other, n=4)
    with pytest.raises(ValueError, match="n=0"):
        BestOfN(vla, _critic_for(vla), n=0)


def test_a_critic_file_round_trips_and_a_damaged_one_is_refused(tmp_path):
    vla = tiny_vla()
    critic = _critic_for(vla)
    path = save_critic(critic, tmp_path / "critic.safetensors")
    back = load_critic(path)
    assert back.spec == critic.spec
    x = (
        torch.randn(5, 2 * vla.backbone.width),
        torch.randn(5, vla.cfg.policy_state_dim),
        torch.randn(5, 4, 3),
    )
    assert torch.equal(back.values(*x), critic.values(*x))
    with pytest.raises(CheckpointError, match="no such critic file"):
        load_critic(tmp_path / "missing.safetensors")
    raw = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated critic file"):
        load_critic(tmp_path / "cut.safetensors")
    from rlpost.policy import save_head

    with pytest.raises(CheckpointError, match="not an rlpost chunk critic"):
        load_critic(save_head(vla, tmp_path / "head.safetensors"))


def test_build_windows_reads_features_once_per_window_and_samples_the_heads_candidates():
    vla = tiny_vla().eval()
    vla.backbone.freeze()
    rng = np.random.default_rng(0)
    eps = [
        CriticEpisode(
            f"e{i}",
            rng.normal(size=(11, 6)).astype(np.float32),
            rng.normal(size=(11, 3)).astype(np.float32),
            i % 2 == 0,
            True,
        )
        for i in range(3)
    ]
    images = {f"e{i}": _obs(11, seed=i) for i in range(3)}
    asked: list[int] = []

    def prefixes(keys):
        asked.append(len(keys))
        rows = [(images[e], t) for e, t in keys]
        return vla.encode(
            ObsBatch(
                {"top": np.stack([b.images["top"][t] for b, t in rows])},
                np.stack([b.state[t] for b, t in rows]),
                [b.instructions[t] for b, t in rows],
            )
        )

    cfg = ChunkCriticConfig(chunk=4, candidates=3)
    data = build_windows(eps, vla, prefixes, cfg, torch.Generator().manual_seed(0), batch=10, progress=False)
    assert len(data) == 3 * 8 and sum(asked) == len(data)  # windows t = 0..7 of 11 steps
    assert data.candidates.shape == (24, 3, 4, 3) and torch.isfinite(data.candidates).all()
    assert data.next_row[0] == 4 and data.next_row[4] == -1  # t=4 ends within one chunk (4 + 4 > 7)
    with pytest.raises(ValueError, match="longer than the policy's chunk"):
        build_windows(eps, vla, prefixes, ChunkCriticConfig(chunk=9), torch.Generator(), progress=False)


def test_compare_takes_best_of_any_n_and_refuses_a_critic_that_scores_other_than_the_executed_actions():
    from rlpost.compare import CompareConfig
    from rlpost.compare.config import best_of

    assert [best_of(m) for m in ("best_of_8_distill", "best_of_16", "best_of_x", "awfm", "best_of_0")] == [
        8,
        16,
        None,
        None,
        None,
    ]
    assert CompareConfig(methods=["pretrained", "best_of_16"]).methods == ["pretrained", "best_of_16"]
    with pytest.raises(ValueError, match="best_of_x"):
        CompareConfig(methods=["best_of_x"])
    with pytest.raises(ValueError, match=r"critic\.chunk=4 must equal execute=8"):
        CompareConfig(methods=["best_of_4"], execute=8)


def test_windows_every_stride_steps_bootstrap_from_windows_of_the_same_grid():
    w = episode_windows(11, k=4, n=1, gamma=0.9, success=True, terminal=True, stride=4)
    assert w.starts.tolist() == [0, 4] and w.next_start.tolist() == [4, -1]  # t=4: 4+4 > last start 4
    np.testing.assert_allclose(w.terminal_value[1], 0.9**6)  # success at step 10
    cut = episode_windows(11, k=4, n=1, gamma=0.9, success=False, terminal=False, stride=2)
    # cut short (aborted): the window at 4 bootstraps from the last one (6), which has no target itself
    assert cut.starts.tolist() == [0, 2, 4] and cut.next_start.tolist() == [4, 6, 6]
    np.testing.assert_allclose(cut.discount, [0.9**4, 0.9**4, 0.9**2])
    with pytest.raises(ValueError, match=r"stride=3 must divide critic\.chunk=4"):
        ChunkCriticConfig(chunk=4, stride=3)
