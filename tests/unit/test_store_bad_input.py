"""Bad steps are refused with errors naming episode, frame and field, and store nothing."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_store_roundtrip import assert_steps_equal, make_meta, make_step

from rlpost.data import EpisodeStore
from rlpost.schema import SchemaError, StepRecord


def _nan_action(s: StepRecord) -> StepRecord:
    a = s.action.copy()
    a[0] = np.nan
    return dataclasses.replace(s, action=a)


# mutation name -> (how to break a good step, the field the error must name)
MUTATIONS = {
    "nan_action": (_nan_action, "action"),
    "inf_state": (lambda s: dataclasses.replace(s, state=np.full(3, np.inf, np.float32)), "state"),
    "short_action": (lambda s: dataclasses.replace(s, action=np.zeros(1, np.float32)), "policy_action"),
    "wider_state": (lambda s: dataclasses.replace(s, state=np.zeros(4, np.float32)), "state"),
    "float64_action": (lambda s: dataclasses.replace(s, action=s.action.astype(np.float64)), "action"),
    "bigger_image": (lambda s: dataclasses.replace(s, images={**s.images, "front": np.zeros((9, 8, 3), np.uint8)}), "images['front']"),
    "float_image": (lambda s: dataclasses.replace(s, images={**s.images, "front": s.images["front"].astype(np.float32)}), "images['front']"),
    "missing_camera": (lambda s: dataclasses.replace(s, images={"front": s.images["front"]}), "cameras"),
    "skipped_frame": (lambda s: dataclasses.replace(s, frame_index=s.frame_index + 1), "frame_index"),
    "float_version": (lambda s: dataclasses.replace(s, policy_version=1.5), "policy_version"),
    "time_backwards": (lambda s: dataclasses.replace(s, t_ns=0), "t_ns"),
    "list_state": (lambda s: dataclasses.replace(s, state=[0.0, 0.0, 0.0]), "state"),
}  # fmt: skip


def test_nan_action_names_episode_frame_and_field_and_is_not_stored(tmp_path: Path) -> None:
    store = EpisodeStore.open(tmp_path)
    store.begin(make_meta("ep-nan"))
    store.append("ep-nan", make_step(0))
    store.append("ep-nan", make_step(1))
    with pytest.raises(SchemaError, match=r"episode 'ep-nan' frame 2: action contains 1 NaN"):
        store.append("ep-nan", _nan_action(make_step(2)))
    store.append("ep-nan", make_step(2))  # the episode carries on where it was
    store.finish("ep-nan", "success", "env")
    assert_steps_equal(store.read_episode("ep-nan"), [make_step(t) for t in range(3)])


def test_shape_differing_from_first_step_is_refused(tmp_path: Path) -> None:
    store = EpisodeStore.open(tmp_path)
    store.begin(make_meta("ep-shape"))
    store.append("ep-shape", make_step(0))
    bad = dataclasses.replace(make_step(1), state=np.zeros(5, np.float32))
    with pytest.raises(
        SchemaError,
        match=r"episode 'ep-shape' frame 1: state has shape \(5,\), the episode's first step had \(3,\)",
    ):
        store.append("ep-shape", bad)


def test_finish_refuses_running_or_unknown_outcomes(tmp_path: Path) -> None:
    store = EpisodeStore.open(tmp_path)
    store.begin(make_meta("ep"))
    with pytest.raises(SchemaError, match="outcome='running'"):
        store.finish("ep", "running", "env")
    with pytest.raises(SchemaError, match="marked_by='robot'"):
        store.finish("ep", "success", "robot")
    assert store.finish("ep", "success", "env").outcome == "success"


def test_unsafe_episode_ids_are_refused(tmp_path: Path) -> None:
    store = EpisodeStore.open(tmp_path)
    for bad in ("../x", "a/b", ".hidden", "x" * 201):
        with pytest.raises(SchemaError, match="episode_id"):
            store.begin(make_meta(bad))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=st.integers(0, 3), kinds=st.lists(st.sampled_from(sorted(MUTATIONS)), min_size=1, max_size=3))
def test_any_bad_step_is_refused_by_name_and_leaves_stored_steps_intact(
    prefix: int, kinds: list[str]
) -> None:
    with tempfile.TemporaryDirectory() as d:
        store = EpisodeStore.open(Path(d))
        store.begin(make_meta("ep-h"))
        for t in range(prefix):
            store.append("ep-h", make_step(t))
        for kind in kinds:
            breaker, field = MUTATIONS[kind]
            if prefix == 0 and kind in ("wider_state", "bigger_image", "missing_camera", "time_backwards"):
                continue  # nothing to be inconsistent with yet
            with pytest.raises(SchemaError) as err:
                store.append("ep-h", breaker(make_step(prefix)))
            msg = str(err.value)
            assert f"episode 'ep-h' frame {prefix}" in msg and field in msg, msg
        store.append("ep-h", make_step(prefix))
        store.finish("ep-h", "success", "env")
        assert_steps_equal(store.read_episode("ep-h"), [make_step(t) for t in range(prefix + 1)])
