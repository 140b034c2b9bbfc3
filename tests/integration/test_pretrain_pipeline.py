"""collect -> pretrain (and resume) -> eval through the `rlpost` command, on real files."""

from __future__ import annotations

import json

import pytest

from rlpost.cli import main
from rlpost.data.episode_store import EpisodeStore
from rlpost.metrics import read_metrics
from rlpost.policy import load_checkpoint

pytestmark = pytest.mark.slow

SMALL = [
    "batch_size=8",
    "policy.expert.width=64",
    "policy.expert.depth=1",
    "policy.tiny.width=64",
    "policy.tiny.vision_depth=1",
    "policy.tiny.fusion_depth=1",
    "logger.wandb_mode=disabled",
    "progress=false",
]


def test_collect_pretrain_resume_and_eval(tmp_path, capsys):
    store, run = tmp_path / "demos", tmp_path / "pre"
    assert (
        main(
            [
                "collect",
                "task=multistage",
                "episodes=6",
                f"out={store}",
                "progress=false",
                "expert.imperfect_rate=0.5",
            ]
        )
        == 0
    )
    with EpisodeStore.open(store) as s:
        metas = s.episodes()
        assert len(metas) == 6 and all(m.source == "demo" and m.outcome == "success" for m in metas)
        assert {m.extra["demo_kind"] for m in metas} - {"clean"}  # imperfect demos are tagged
        ep = s.read_episode(metas[0].episode_id)
        assert ep.policy_version.tolist() == [-1] * len(ep.action) and not ep.intervention.any()
        assert sorted(ep.images) == ["top", "wrist"]  # collect records both cameras by default
        assert {m.extra["demo_route"] for m in metas} == {"bottom"}  # the safe route by default

    # a run stopped at step 6 of 10 ...
    args = ["pretrain", f"store={store}", f"out={run}", "val_every=3", "ckpt_every=3", *SMALL]
    assert main([*args, "steps=6"]) == 0
    pc = load_checkpoint(run / "checkpoints" / "last").cfg
    # the sim's x, y and holding flag reach the expert, not the copycat dims
    assert pc.state_dim == 6 and pc.state_keep == [0, 1, 5] and pc.cameras == ["top", "wrist"]
    # ... continues from its checkpoint: steps 7..10 only, never repeating 1..6
    assert main([*args, "steps=10"]) == 0
    steps = [m["step"] for m in read_metrics(run)]
    assert steps == list(range(1, 11))
    assert json.loads((run / "policy" / "config.json").read_text())["extra"]["step"] == 10

    # eval's sim renders the policy's two cameras though sim.cameras defaults to the top view alone
    out = tmp_path / "eval.json"
    assert (
        main(
            [
                "eval",
                f"policy={run / 'policy'}",
                "task=multistage",
                "episodes=3",
                "num_envs=2",
                "progress=false",
                f"out={out}",
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert result["episodes"] == 3 and 0.0 <= result["success_rate"] <= 1.0
    assert sorted(e["seed"] for e in result["per_episode"]) == [100000, 100001, 100002]
    assert "success" in capsys.readouterr().out


def test_pretrain_refuses_a_store_without_successful_demos(tmp_path):
    EpisodeStore.open(tmp_path / "empty").close()
    with pytest.raises(ValueError, match="no successful episodes"):
        main(["pretrain", f"store={tmp_path / 'empty'}", f"out={tmp_path / 'run'}", "steps=1", *SMALL])
