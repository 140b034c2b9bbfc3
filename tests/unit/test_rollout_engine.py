"""The rollout engine: one outcome rule, one set of operator rules, one recorder, a batched lockstep loop."""

from __future__ import annotations

import numpy as np
import pytest

from reward_models.practice_data import MixedConfig, collect_mixed
from rlpost.collect import CollectConfig, collect
from rlpost.data.episode_store import EpisodeStore
from rlpost.rollout import (
    NO_POLICY_VERSION,
    ChunkActor,
    EpisodePlan,
    EpisodeRecorder,
    env_outcome,
    run_lockstep,
    with_mark,
)
from rlpost.schema import OperatorCommand, SchemaError
from rlpost.sim import SimConfig, SimOperatorConfig, SimulatedOperator, make_robot

SIM = SimConfig(n_blocks=1, max_steps=40)


class ScriptedPerson:
    """A person's device that sends fixed commands at fixed steps (the engine's input, not a fake of it)."""

    def __init__(self, at: dict[int, list[str]], action: np.ndarray | None = None) -> None:
        self.at, self.action, self.t, self.queue = at, action, 0, []

    def reset(self, seed: int | None = None) -> None:
        self.t, self.queue = -1, []

    def observe(self, obs, info, *, terminated=False, truncated=False) -> None:
        self.t += 1  # the first observe sees the reset: commands for step 0
        self.queue += self._commands(self.t)

    def poll(self) -> list[OperatorCommand]:
        out, self.queue = self.queue, []
        return out

    def _commands(self, t: int) -> list[OperatorCommand]:
        return [
            OperatorCommand(k, "sim-0", "pat", seq=t, action=self.action if k == "human_action" else None)
            for k in self.at.get(t, [])
        ]


def zero_chunks(calls: list[int] | None = None, horizon: int = 8):
    def chunk_fn(obs):
        if calls is not None:
            calls.append(len(obs))
        return np.zeros((len(obs), horizon, 3), np.float32)

    return chunk_fn


def _robots(n: int):
    return [make_robot("tabletop", SIM) for _ in range(n)]


@pytest.mark.parametrize(
    "terminated, info, mark, stored",
    [
        (True, {"is_success": True}, "", "success"),
        (True, {"is_success": False}, "", "failure"),
        (False, {"is_success": False}, "", "timeout"),
        (False, {"is_success": False}, "failure", "timeout"),  # a failure mark keeps the truer timeout
        (True, {"is_success": True}, "failure", "failure"),  # a person's mark wins over the env
        (False, {"is_success": False}, "success", "success"),
    ],
)
def test_the_outcome_rule_marks_win_but_a_failure_mark_keeps_a_timeout(terminated, info, mark, stored):
    assert with_mark(env_outcome(terminated, info), mark) == stored


def test_robots_needing_a_chunk_share_one_batched_call_and_execute_k_of_h(tmp_path):
    calls: list[int] = []
    episodes = run_lockstep(_robots(3), ChunkActor(zero_chunks(calls), 4), [EpisodePlan(s) for s in range(3)])
    assert [e.length for e in episodes] == [40, 40, 40] and {e.outcome for e in episodes} == {"timeout"}
    assert calls == [3] * 10  # 40 steps / 4 executed per chunk, all three robots in each call


def test_a_takeover_preempts_the_plan_flags_the_steps_and_records_no_proposal(tmp_path):
    hold = np.array([0.1, 0.0, 1.0], np.float32)
    person = ScriptedPerson({5: ["take_over", "human_action"], 6: ["human_action"], 7: ["hand_back"]}, hold)
    calls: list[int] = []
    with EpisodeStore.open(tmp_path / "store") as store:
        (ep,) = run_lockstep(
            _robots(1),
            ChunkActor(zero_chunks(calls), 4),
            [EpisodePlan(0)],
            operators=[person],
            recorder=EpisodeRecorder(store, "tabletop", "s", policy_version=7),
        )
        stored = store.read_episode(ep.meta.episode_id)
    assert ep.takeovers == 1 and ep.human_steps == 2
    assert stored.intervention[5:8].tolist() == [True, True, False]
    np.testing.assert_array_equal(stored.action[6], hold)
    assert np.isnan(stored.policy_action[5:7]).all() and np.isfinite(stored.policy_action[7]).all()
    assert set(stored.policy_version.tolist()) == {7}
    # steps 0-3 and 4 (that plan dropped by the takeover at 5), then 33 steps from 7: 9 chunks
    assert len(calls) == 2 + 9


def test_an_operator_in_control_without_an_action_is_an_error_and_the_steps_are_kept(tmp_path):
    person = ScriptedPerson({3: ["take_over"]})
    with EpisodeStore.open(tmp_path / "store") as store:
        with pytest.raises(
            SchemaError, match=r"practice robot 0 step 3: the operator holds control but sent no"
        ):
            run_lockstep(
                _robots(1),
                ChunkActor(zero_chunks(), 4),
                [EpisodePlan(0)],
                operators=[person],
                recorder=EpisodeRecorder(store, "tabletop", "s"),
                where="practice",
            )
        (meta,) = store.episodes()
        assert meta.outcome == "aborted" and store.read_episode(meta.episode_id).action.shape == (3, 3)


def test_a_human_action_without_take_over_is_an_error():
    person = ScriptedPerson({2: ["human_action"]}, np.zeros(3, np.float32))
    with pytest.raises(
        SchemaError,
        match=r"eval robot 0 step 2: operator 'pat' sent human_action \(seq 2\) without take_over",
    ):
        run_lockstep(
            _robots(1), ChunkActor(zero_chunks(), 4), [EpisodePlan(0)], operators=[person], where="eval"
        )


@pytest.mark.parametrize("bad", [np.full((8, 3), np.nan, np.float32), np.zeros((8, 2), np.float32)])
def test_a_nonfinite_or_misshapen_plan_is_refused_naming_robot_and_step(bad):
    with pytest.raises(SchemaError, match="eval robot 0 step 0"):
        run_lockstep(_robots(1), ChunkActor(lambda obs: bad[None], 4), [EpisodePlan(0)], where="eval")


def test_the_simulated_operators_mark_is_stored_with_who_marked_it(tmp_path):
    robots = _robots(2)
    ops = [SimulatedOperator(r, SimOperatorConfig()) for r in robots]
    with EpisodeStore.open(tmp_path / "store") as store:
        episodes = run_lockstep(
            robots,
            ChunkActor(zero_chunks(), 4),
            [EpisodePlan(s, supervised=s % 2 == 0) for s in range(4)],
            operators=ops,
            recorder=EpisodeRecorder(store, "tabletop", "s"),
        )
        metas = {m.seed: m for m in store.episodes()}
    for e in episodes:
        assert (metas[e.seed].marked_by == "sim_operator") == (e.seed % 2 == 0)
        assert metas[e.seed].outcome == e.outcome
        assert e.takeovers == 0 or e.seed % 2 == 0  # unsupervised episodes have nobody to take over


def test_demos_and_scripted_practice_record_no_policy_version(tmp_path):
    collect(CollectConfig(episodes=2, out=str(tmp_path / "demos"), sim=SIM, progress=False))
    collect_mixed(
        MixedConfig(
            episodes=6,
            out=str(tmp_path / "mixed"),
            sim=SIM,
            mix={"stall": 1.0, "takeover": 1.0},
            progress=False,
        )
    )
    with EpisodeStore.open(tmp_path / "demos") as demos, EpisodeStore.open(tmp_path / "mixed") as mixed:
        for store in (demos, mixed):
            for meta in store.episodes():
                ep = store.read_episode(meta.episode_id)
                assert set(ep.policy_version.tolist()) == {NO_POLICY_VERSION}, meta.source
                if meta.source == "demo":
                    assert np.isnan(ep.policy_action).all()
                # a person's steps carry no proposal; the scripted behaviour's own steps do
                assert np.isnan(ep.policy_action[ep.intervention]).all()
                assert meta.source == "demo" or np.isfinite(ep.policy_action[~ep.intervention]).all()
