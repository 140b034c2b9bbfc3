"""`rlpost train-critic` on real stores, then `rlpost eval` acting best-of-N with the critic it wrote."""

from __future__ import annotations

import json
import math

from rlpost.cli import main
from rlpost.policy.chunk_critic import load_critic


def test_a_critic_fitted_on_stores_ranks_chunks_for_best_of_n_evaluation(assets, tmp_path, capsys):
    # the plain policy's own episodes, recorded by eval, join the demos and the scripted practice
    rollouts = tmp_path / "rollouts"
    args = [
        "eval",
        f"policy={assets['policy']}",
        "episodes=4",
        "num_envs=2",
        "sim.image_size=32",
        "sim.max_steps=30",
    ]
    assert main([*args, f"store={rollouts}"]) == 0
    from rlpost.data.episode_store import EpisodeStore

    with EpisodeStore.open(rollouts, create=False) as store:
        recorded = store.episodes()
    assert len(recorded) == 4 and {m.extra["eval"] for m in recorded} == {"100000..100003"}
    assert all(m.outcome in ("success", "failure", "timeout") and m.length > 0 for m in recorded)

    out = tmp_path / "critic"
    stores = f"stores=[{assets['demos']},{assets['mixed']},{rollouts}]"
    common = [
        "critic.updates=60",
        "critic.batch_size=32",
        "critic.width=32",
        "critic.heads=3",
        "progress=false",
    ]
    assert main(["train-critic", f"policy={assets['policy']}", stores, f"out={out}", *common]) == 0
    printed = capsys.readouterr().out
    assert "auc_matched" in printed and "candidate_spread" in printed
    doc = json.loads((out / "critic_fit.json").read_text())
    assert doc["sources"]["demo"] == 12 and doc["sources"]["autonomous"] == 12  # every episode of the stores
    fit = doc["fit"]
    assert fit["windows"] > 0 and fit["heldout_episodes"] == 4
    assert all(math.isfinite(fit[k]) for k in ("loss", "heldout_loss", "disagreement", "candidate_spread"))
    critic = load_critic(out / "critic.safetensors")
    assert critic.spec.chunk == 4 and critic.spec.heads == 3

    evaluation = tmp_path / "eval.json"
    args = [
        "eval",
        f"policy={assets['policy']}",
        "episodes=4",
        "num_envs=2",
        "sim.image_size=32",
        "sim.max_steps=30",
    ]
    assert (
        main(
            [
                *args,
                f"critic={out / 'critic.safetensors'}",
                "best_of=4",
                "critic_risk=1.0",
                f"out={evaluation}",
            ]
        )
        == 0
    )
    assert "best-of-4 by" in capsys.readouterr().out
    result = json.loads(evaluation.read_text())
    assert result["episodes"] == 4 and len(result["per_episode"]) == 4


def test_best_of_n_without_a_critic_or_with_a_missing_one_is_one_clear_line(assets, tmp_path, capsys):
    assert main(["eval", f"policy={assets['policy']}", "best_of=4"]) == 2
    assert "best_of=4 needs critic=<critic.safetensors>" in capsys.readouterr().err
    code = main(
        ["eval", f"policy={assets['policy']}", f"critic={tmp_path / 'none.safetensors'}", "best_of=2"]
    )
    assert code == 2 and "no such critic file" in capsys.readouterr().err
