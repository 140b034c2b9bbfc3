"""collect demos + failures -> train-reward -> label -> reward-eval, through the `rlpost` command."""

from __future__ import annotations

import json

import pytest
import torch

from reward_models.practice_data import MixedConfig, collect_mixed
from rlpost.cli import main
from rlpost.data import EpisodeStore
from rlpost.policy import VLA, ExpertConfig, PolicyConfig, TinyBackboneConfig, save_checkpoint

pytestmark = pytest.mark.slow

SMALL_RM = [
    "steps=30",
    "batch_size=16",
    "val_every=15",
    "val_fraction=0.3",
    "model.width=32",
    "model.heads=2",
    "model.depth=1",
    "model.window=4",
    "threads=1",
    "logger.wandb_mode=disabled",
    "progress=false",
]


def test_train_label_and_eval_a_reward_model(tmp_path, capsys):
    store, policy, out = tmp_path / "store", tmp_path / "policy", tmp_path / "rm"
    assert main(["collect", "task=tabletop", "episodes=10", f"out={store}", "progress=false"]) == 0
    counts = collect_mixed(
        MixedConfig(
            task="tabletop", episodes=8, out=str(store), mix={"stall": 1.0, "wander": 1.0}, progress=False
        )
    )
    assert sum(n for c in counts.values() for o, n in c.items() if o != "success") >= 3
    torch.manual_seed(0)
    cfg = PolicyConfig(
        state_dim=6,
        action_dim=3,
        horizon=4,
        tiny=TinyBackboneConfig(image_size=32, width=32, grid=4, keypoints=4, vision_depth=1, fusion_depth=1),
        expert=ExpertConfig(width=32, depth=1),
    )
    save_checkpoint(VLA(cfg), policy)

    args = [f"store={store}", f"policy={policy}"]
    assert main(["train-reward", *args, f"out={out}", *SMALL_RM]) == 0
    assert (out / "rm-v1" / "model.safetensors").exists()
    assert "train-reward" in capsys.readouterr().out

    assert main(["label", *args, f"reward_model={out / 'rm-v1'}", "progress=false"]) == 0
    with EpisodeStore.open(store) as s:
        metas = s.episodes()
        assert all(s.label_versions(m.episode_id) == ["rm-v1"] for m in metas)
        labels = s.read_labels(metas[0].episode_id, "rm-v1")
        assert labels["progress"].shape == (metas[0].length,)
    assert main(["label", *args, f"reward_model={out / 'rm-v1'}", "progress=false"]) == 0
    assert "already_labelled" in capsys.readouterr().out

    result = tmp_path / "eval.json"
    argv = ["reward-eval", *args, f"reward_model={out / 'rm-v1'}", "include_trained=true", "bootstrap=10"]
    assert main([*argv, f"out={result}", "progress=false"]) == 0
    table = capsys.readouterr().out
    assert "voc_shuffled" in table and "success_auroc" in table
    m = json.loads(result.read_text())["tasks"]["tabletop"]
    assert m["episodes"] == 18 and -1 <= m["voc"] <= 1 and 0 <= m["success_auroc"] <= 1

    # Without include_trained every episode here was used for training or calibration.
    with pytest.raises(ValueError, match="no held-out episodes"):
        main(["reward-eval", *args, f"reward_model={out / 'rm-v1'}", "progress=false"])
