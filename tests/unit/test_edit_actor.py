"""The edit actor: bounded, finite, pulled toward the head's chunk, and it never touches the VLA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learner.chunk_critic import ChunkCriticConfig, fit_critic
from learner.edit_actor import EditConfig, fit_edit_actor
from rlpost.policy import ObsBatch
from rlpost.policy.checkpoint import CheckpointError
from rlpost.policy.chunk_critic import CriticSpec
from rlpost.policy.edit_actor import EditActor, EditedPolicy, EditSpec, load_edit_actor, save_edit_actor
from tests.support.critic_data import hand_built_windows
from tests.support.policies import tiny_vla


def test_edits_are_finite_and_within_the_bound_for_any_features():
    torch.manual_seed(0)
    actor = EditActor(EditSpec(prefix_width=8, state_dim=3, action_dim=2, chunk=4, bound=0.3, width=32))
    with torch.no_grad():  # a trained-looking net: weights far from the zero init
        for p in actor.parameters():
            p.normal_(0, 3.0)
    for scale in (0.0, 1.0, 1e3, 1e6):
        x = (scale * torch.randn(64, 16), scale * torch.randn(64, 3), scale * torch.randn(64, 4, 2))
        edit = actor(*x)
        assert edit.shape == (64, 4, 2) and torch.isfinite(edit).all() and edit.abs().max() <= 0.3


def test_the_actor_moves_the_chunk_where_the_critic_says_it_succeeds_and_the_penalty_holds_it():
    data = hand_built_windows(300, 2, 2, seed=0, two_stage=False)  # success iff the first action > 0
    spec = CriticSpec(prefix_width=2, state_dim=1, action_dim=2, chunk=2, heads=3, width=64, gamma=0.9)
    ccfg = ChunkCriticConfig(
        chunk=2, heads=3, width=64, gamma=0.9, updates=800, batch_size=128, lr=1e-3, tau=0.05
    )
    critic, _ = fit_critic(data, spec, ccfg, seed=0, progress=False)
    data.candidates[:] = -data.candidates.abs()  # every base chunk the head offers fails
    edit_spec = EditSpec(prefix_width=2, state_dim=1, action_dim=2, chunk=2, bound=3.0, width=64)
    before = [p.clone() for p in critic.net.parameters()]
    actor, fit = fit_edit_actor(
        data, critic, edit_spec, EditConfig(bound=3.0, penalty=0.01, updates=300, lr=3e-3), 0
    )
    assert fit.q_edited > fit.q_base + 0.3 and fit.edit_rms > 0.3
    with torch.no_grad():
        edit = actor(data.pooled, data.state, data.candidates[:, 0])
    assert float(edit[:, 0, 0].mean()) > 0.5  # it lifts the deciding action
    assert all(torch.equal(a, b) for a, b in zip(before, critic.net.parameters(), strict=True))
    _, held = fit_edit_actor(
        data, critic, edit_spec, EditConfig(bound=3.0, penalty=100.0, updates=300, lr=3e-3), 0
    )
    assert held.edit_rms < 0.05  # a strong pull keeps the head's chunk


def _obs(b: int) -> ObsBatch:
    rng = np.random.default_rng(0)
    return ObsBatch(
        {"top": rng.integers(0, 255, (b, 32, 32, 3), dtype=np.uint8)},
        rng.normal(size=(b, 6)).astype(np.float32),
        ["put the red block in the ring"] * b,
    )


def test_acting_edits_only_the_executed_actions_and_leaves_the_vla_bit_identical():
    vla = tiny_vla().eval()
    weights = {k: v.clone() for k, v in vla.state_dict().items()}
    spec = EditSpec(
        vla.backbone.width, vla.cfg.policy_state_dim, vla.cfg.action_dim, chunk=4, bound=0.5, width=32
    )
    torch.manual_seed(1)
    actor = EditActor(spec).eval()
    with torch.no_grad():
        actor.mlp[-1].weight.normal_(0, 1.0)
    edited, noise = EditedPolicy(vla, actor).act(_obs(3), torch.Generator().manual_seed(5))
    plain, plain_noise = vla.act_sampled(_obs(3), generator=torch.Generator().manual_seed(5))
    assert torch.equal(noise, plain_noise) and torch.equal(edited[:, 4:], plain[:, 4:])
    moved = vla.action_norm.normalize(edited[:, :4]) - vla.action_norm.normalize(plain[:, :4])
    assert 0 < float(moved.abs().max()) <= 0.5 + 1e-5
    assert all(torch.equal(v, weights[k]) for k, v in vla.state_dict().items())


def test_an_edit_actor_file_round_trips_and_a_bad_one_is_refused(tmp_path):
    vla = tiny_vla()
    spec = EditSpec(vla.backbone.width, vla.cfg.policy_state_dim, vla.cfg.action_dim, chunk=4, width=16)
    path = save_edit_actor(EditActor(spec), tmp_path / "edit.safetensors")
    assert load_edit_actor(path).spec == spec
    raw = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(raw[:100])
    with pytest.raises(CheckpointError, match="corrupt or truncated edit actor file"):
        load_edit_actor(tmp_path / "cut.safetensors")
    with pytest.raises(ValueError, match="edits 9 actions"):
        EditedPolicy(
            vla, EditActor(EditSpec(vla.backbone.width, vla.cfg.policy_state_dim, 3, chunk=9, width=16))
        )
