"""Hindsight subgoals: the target is where the gripper next changed its command."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlpost.data.chunk_dataset import ChunkDataset
from rlpost.data.subgoals import SubgoalSpec, subgoal_targets
from rlpost.policy.backbone import Prefix
from rlpost.policy.subgoal import SubgoalHead
from rlpost.schema import SchemaError
from tests.support.episodes import hand_built_episode as _episode


def test_each_step_targets_the_state_at_the_next_grip_change_and_the_last_state_after_the_last():
    # grip: open open close close close open open -> changes at k=2 (close) and k=5 (open)
    grip = np.array([-1, -1, 1, 1, 1, -1, -1], np.float32)
    action = np.stack([np.zeros(7), np.zeros(7), grip], 1).astype(np.float32)
    state = np.stack([np.arange(7) * 10.0, np.arange(7) * 100.0, np.zeros(7)], 1).astype(np.float32)
    got = subgoal_targets(action, state, SubgoalSpec(gripper_dim=2, state_dims=[0, 1]))
    want_k = [2, 2, 5, 5, 5, 6, 6]
    np.testing.assert_array_equal(got, state[want_k][:, :2])


def test_an_episode_that_never_changes_grip_targets_its_last_state():
    action = np.full((4, 2), -1.0, np.float32)
    state = np.arange(8, dtype=np.float32).reshape(4, 2)
    got = subgoal_targets(action, state, SubgoalSpec(gripper_dim=-1, state_dims=[1]))
    np.testing.assert_array_equal(got, np.full((4, 1), 7.0))


def test_chunk_batches_carry_the_subgoal_and_bad_dims_are_refused():
    eps = [_episode("a", 5), _episode("b", 3)]  # actions increase, so the last dim is > 0 from t=1
    data = ChunkDataset(eps, horizon=2, subgoal=SubgoalSpec(gripper_dim=0, state_dims=[0]))
    batch = data.get(np.arange(len(data)))
    assert batch.subgoal is not None and batch.subgoal.shape == (8, 1)
    assert ChunkDataset(eps, horizon=2).get(np.arange(2)).subgoal is None
    with pytest.raises(SchemaError, match="state_dims"):
        ChunkDataset(eps, horizon=2, subgoal=SubgoalSpec(gripper_dim=0, state_dims=[3]))
    with pytest.raises(SchemaError, match="gripper_dim=5"):
        ChunkDataset(eps, horizon=2, subgoal=SubgoalSpec(gripper_dim=5, state_dims=[0]))


def test_the_readout_ignores_padded_prefix_tokens():
    torch.manual_seed(0)
    head = SubgoalHead(width=16, out_dim=2)
    tokens = torch.randn(1, 5, 16)
    mask = torch.tensor([[True, True, True, False, False]])
    a = head(Prefix(tokens, mask))
    tokens2 = tokens.clone()
    tokens2[:, 3:] = 100.0  # padding changes, real tokens do not
    torch.testing.assert_close(head(Prefix(tokens2, mask)), a)


def test_the_subgoal_loss_can_be_limited_to_the_first_steps_of_an_episode():
    from rlpost.pretrain import SubgoalAux, SubgoalAuxConfig

    torch.manual_seed(0)
    aux = SubgoalAux(width=16, targets=np.array([[0.0, 0.0], [1.0, 1.0]], np.float32))
    prefix = Prefix(torch.randn(3, 4, 16), torch.ones(3, 4, dtype=torch.bool))
    subgoal = np.array([[0.0, 0.0], [1.0, 1.0], [50.0, 50.0]], np.float32)  # the last one is way off
    keep = np.array([True, True, False])
    limited = aux.loss(prefix, subgoal, keep)
    torch.testing.assert_close(limited, aux.loss(prefix.index([0, 1]), subgoal[:2]))
    assert aux.loss(prefix, subgoal) > 10 * limited  # the far target dominates when kept
    with pytest.raises(ValueError, match="first_steps"):
        SubgoalAuxConfig(weight=1.0, first_steps=-1)
