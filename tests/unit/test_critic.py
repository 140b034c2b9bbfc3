"""The refit critic: recovers returns it can see, seeded fits repeat, bad samples are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learner.critic import Critic, ValueSamples
from rlpost.policy.backbone import Prefix

T, EPISODES, WIDTH = 12, 30, 16


def _samples() -> tuple[ValueSamples, dict[tuple[str, int], np.ndarray]]:
    """Episodes whose features show the outcome (token 0's first channel ±1) and whose state is t/T:
    the return-to-go (steps to go, −1 more on failure) is a function of what the critic sees."""
    rng = np.random.default_rng(0)
    keys, states, targets, feats = [], [], [], {}
    for e in range(EPISODES):
        success = e % 2 == 0
        for t in range(T):
            key = (f"ep{e}", t)
            tokens = rng.normal(0, 0.1, (3, WIDTH)).astype(np.float32)
            tokens[0, 0] = 1.0 if success else -1.0
            feats[key] = tokens
            keys.append(key)
            states.append([t / T, 0.0])
            targets.append(-(T - 1 - t) / 20 - (0.0 if success else 1.0))
    return ValueSamples(keys, np.array(states, np.float32), np.array(targets, np.float32)), feats


def _prefix_fn(feats):
    def prefixes(keys):
        tokens = torch.from_numpy(np.stack([feats[k] for k in keys]))
        return Prefix(tokens, torch.ones(tokens.shape[:2], dtype=torch.bool))

    return prefixes


def test_the_critic_recovers_returns_it_can_see_on_held_out_episodes_and_repeats_with_its_seed():
    samples, feats = _samples()
    critic = Critic(WIDTH, 2, updates=600, batch_size=128, width=64)
    torch.manual_seed(123)
    rng_before = torch.get_rng_state()
    stats = critic.fit(samples, _prefix_fn(feats), seed=7)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's torch RNG did not move
    assert stats.episodes == EPISODES and stats.samples == EPISODES * T
    assert stats.heldout_ev > 0.9, stats
    pred = critic.predict(samples.keys, samples.state, _prefix_fn(feats))
    assert np.abs(pred - samples.target).mean() < 0.08
    again = Critic(WIDTH, 2, updates=600, batch_size=128, width=64)
    again.fit(samples, _prefix_fn(feats), seed=7)
    np.testing.assert_array_equal(again.predict(samples.keys, samples.state, _prefix_fn(feats)), pred)


def test_the_same_episodes_under_other_ids_give_the_same_fit():
    # practice episode ids are random (uuid4): a rerun of one comparison must fit the same critic
    samples, feats = _samples()
    renamed = {f"ep{e}": f"{(e * 7919) % 1000:03d}-x" for e in range(EPISODES)}  # another sort order
    keys = [(renamed[eid], t) for eid, t in samples.keys]
    other = ValueSamples(keys, samples.state, samples.target)
    other_feats = {(renamed[eid], t): v for (eid, t), v in feats.items()}
    a, b = (Critic(WIDTH, 2, updates=50, batch_size=64, width=32) for _ in range(2))
    stats_a = a.fit(samples, _prefix_fn(feats), seed=3)
    stats_b = b.fit(other, _prefix_fn(other_feats), seed=3)
    assert stats_a.heldout_ev == stats_b.heldout_ev
    np.testing.assert_array_equal(
        a.predict(samples.keys, samples.state, _prefix_fn(feats)),
        b.predict(other.keys, other.state, _prefix_fn(other_feats)),
    )


def test_bad_samples_and_predicting_unfit_are_refused():
    samples, feats = _samples()
    with pytest.raises(ValueError, match="NaN/Inf"):
        ValueSamples(samples.keys, samples.state, np.full(len(samples.keys), np.nan, np.float32))
    with pytest.raises(ValueError, match="must agree"):
        ValueSamples(samples.keys[:-1], samples.state, samples.target)
    with pytest.raises(RuntimeError, match="before the first fit"):
        Critic(WIDTH, 2).predict(samples.keys, samples.state, _prefix_fn(feats))
