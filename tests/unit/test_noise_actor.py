"""The noise actor (DSRL): bounded noise, the head reproduces its chunks, ascent through the frozen flow."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learner.chunk_critic import ChunkCriticConfig, CriticEpisode, build_windows
from learner.noise_actor import NoiseConfig, fit_noise_actor
from rlpost.policy import ObsBatch
from rlpost.policy.chunk_critic import ChunkCritic, ChunkQ, CriticSpec
from rlpost.policy.noise_actor import NoiseActor, NoisePolicy, NoiseSpec, load_noise_actor, save_noise_actor
from tests.support.policies import tiny_vla


def _obs(b: int, seed: int = 0) -> ObsBatch:
    rng = np.random.default_rng(seed)
    return ObsBatch(
        {"top": rng.integers(0, 255, (b, 32, 32, 3), dtype=np.uint8)},
        rng.normal(size=(b, 6)).astype(np.float32),
        ["put the red block in the ring"] * b,
    )


def _spec(vla, bound: float = 2.0) -> NoiseSpec:
    c = vla.cfg
    return NoiseSpec(vla.backbone.width, c.policy_state_dim, c.horizon, c.action_dim, bound=bound, width=32)


def test_noise_is_finite_and_bounded_for_any_features_and_reproduces_its_chunk():
    vla = tiny_vla().eval()
    torch.manual_seed(0)
    actor = NoiseActor(_spec(vla, bound=1.5))
    for scale in (0.0, 1.0, 1e6):
        w = actor(
            scale * torch.randn(8, 2 * vla.backbone.width), scale * torch.randn(8, vla.cfg.policy_state_dim)
        )
        assert torch.isfinite(w).all() and w.abs().max() <= 1.5
    batch = _obs(3)
    chunks, noise = NoisePolicy(vla, actor, explore=0.3).act(batch, torch.Generator().manual_seed(1))
    with torch.no_grad():
        again = vla.sample(vla.encode(batch), batch.state, noise=noise)
    assert torch.equal(again, chunks)
    with pytest.raises(ValueError, match="explore=-1"):
        NoisePolicy(vla, actor, explore=-1.0)


def test_the_actor_raises_the_critics_score_through_the_frozen_flow_and_the_vla_stays_bit_identical():
    vla = tiny_vla().eval()
    vla.backbone.freeze()
    weights = {k: v.clone() for k, v in vla.state_dict().items()}
    rng = np.random.default_rng(0)
    episodes = [
        CriticEpisode(
            f"e{i}",
            rng.normal(size=(12, 6)).astype(np.float32),
            rng.normal(size=(12, 3)).astype(np.float32),
            i % 2 == 0,
            True,
        )
        for i in range(4)
    ]
    obs = {f"e{i}": _obs(12, seed=i) for i in range(4)}

    def prefixes(keys):
        rows = [(obs[e], t) for e, t in keys]
        b = ObsBatch(
            {"top": np.stack([o.images["top"][t] for o, t in rows])},
            np.stack([o.state[t] for o, t in rows]),
            [o.instructions[t] for o, t in rows],
        )
        return vla.encode(b)

    data = build_windows(
        episodes,
        vla,
        prefixes,
        ChunkCriticConfig(chunk=4, candidates=2),
        torch.Generator().manual_seed(0),
        progress=False,
    )
    torch.manual_seed(3)
    spec = CriticSpec(vla.backbone.width, vla.cfg.policy_state_dim, 3, 4, heads=3, width=32)
    critic = ChunkCritic(spec, ChunkQ(spec).eval())  # some critic: the actor must climb whatever it says
    _, fit = fit_noise_actor(
        vla,
        prefixes,
        data,
        critic,
        _spec(vla),
        NoiseConfig(updates=60, batch_size=16, lr=3e-3, penalty=0.0),
        0,
    )
    assert fit.q_actor > fit.q_prior and np.isfinite(fit.noise_rms)
    assert all(torch.equal(v, weights[k]) for k, v in vla.state_dict().items())
    assert all(p.requires_grad for p in vla.expert.parameters())  # the head's flags are restored


def test_a_noise_actor_file_round_trips_and_a_bad_one_is_refused(tmp_path):
    from rlpost.policy.checkpoint import CheckpointError

    vla = tiny_vla()
    path = save_noise_actor(NoiseActor(_spec(vla)), tmp_path / "noise.safetensors")
    assert load_noise_actor(path).spec == _spec(vla)
    (tmp_path / "cut.safetensors").write_bytes(path.read_bytes()[:64])
    with pytest.raises(CheckpointError, match="corrupt or truncated noise actor file"):
        load_noise_actor(tmp_path / "cut.safetensors")
    with pytest.raises(ValueError, match=r"makes noise \[4, 3\]"):
        NoisePolicy(vla, NoiseActor(NoiseSpec(vla.backbone.width, vla.cfg.policy_state_dim, 4, 3, width=8)))
