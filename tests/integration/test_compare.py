"""`rlpost compare` end to end at a tiny scale: every method runs, budgets are equal and checked
from the store, and the table, JSON and learning-curve PNG are written."""

from __future__ import annotations

import json

import pytest

from learner.chunk_critic import ChunkCriticConfig
from learner.edit_actor import EditConfig
from learner.noise_actor import NoiseConfig
from rlpost.cli import main
from rlpost.compare import METHODS, CompareConfig, compare
from rlpost.compare.config import method_mode
from rlpost.compare.runner import RoundRecord, RunRecord, TaskBench, check_budgets, run_compare
from rlpost.data import EpisodeStore
from rlpost.metrics import LoggerConfig
from rlpost.sim import SimOperatorConfig
from tests.support.session_assets import SIM

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def tiny_cfg(assets, out, **kw) -> CompareConfig:
    base = dict(
        out=str(out),
        policy_checkpoint=assets["policy"],
        demos=assets["demos"],
        reward_model=assets["rm"],
        seeds=2,
        rounds=2,
        episodes_per_round=3,
        updates_per_round=3,
        eval_episodes=4,
        num_envs=4,
        sim=SIM,
        operator=SimOperatorConfig(triggers=("stall",), stall_window=3),
        bootstrap=50,
        threads=1,
        progress=False,
        logger=LoggerConfig(wandb_mode="disabled"),
        critic=ChunkCriticConfig(updates=20, batch_size=16, width=32, heads=3, candidates=2),
        edit=EditConfig(updates=10, batch_size=16, width=16),
        noise=NoiseConfig(updates=5, batch_size=8, width=16),
    )
    base.update(kw)
    cfg = CompareConfig(**base)
    cfg.learner.batch_size = 8
    return cfg


def test_every_method_gets_the_same_practice_budget_and_the_outputs_are_written(assets, tmp_path):
    cfg = tiny_cfg(assets, tmp_path / "cmp")
    text, result = compare(cfg)
    runs = result["runs"]
    assert len(runs) == len(METHODS) * 2 * 2  # methods x seeds x {takeovers, self-practice}
    # the same practice episodes per run, counted from the store by session
    budgets = result["budgets"]["tabletop"]
    assert {b["episodes"] for b in budgets.values()} == {cfg.rounds * cfg.episodes_per_round}
    assert len(budgets) == len(runs)
    # paired: every run evaluated on the same env seeds
    seeds = {tuple(r["rounds"][-1]["eval_seeds"]) for r in runs}
    assert seeds == {tuple(range(cfg.eval_seed, cfg.eval_seed + cfg.eval_episodes))}
    # self-practice runs never saw an operator; operator runs recorded their takeovers as such
    assert all(
        rd["takeovers"] == rd["human_steps"] == 0 for r in runs if not r["takeovers"] for rd in r["rounds"]
    )
    with EpisodeStore.open(tmp_path / "cmp" / "tabletop" / "store", create=False) as store:
        learner_runs = [r for r in runs if method_mode(r["method"])]
        assert all(r["rounds"][-1]["updates"] == cfg.rounds * cfg.updates_per_round for r in learner_runs)
        demo_sessions = {m.session_id for m in store.episodes() if m.source == "demo"}
        assert demo_sessions and not demo_sessions & set(budgets)
    # best-of-N acts with a critic refit every round on the demos and its own practice; the head stays
    best = [r for r in runs if r["method"] == "best_of_8"]
    assert len(best) == 4 and all(rd["updates"] == 0 for r in best for rd in r["rounds"])
    critics = [r for r in runs if r["method"].startswith("best_of_8") or r["method"] in ("edit", "noise")]
    assert len(critics) == 16  # best-of-8 with and without distillation, the edit and the noise actor
    edits = [rd["critic"] for r in runs if r["method"] == "edit" for rd in r["rounds"]]
    assert all(e["edit/edit_rms"] >= 0 and e["edit/q_edited"] >= 0 for e in edits)
    noises = [rd["critic"] for r in runs if r["method"] == "noise" for rd in r["rounds"]]
    assert all(n["noise/noise_rms"] >= 0 and 0 <= n["noise/q_actor"] <= 1 for n in noises)
    fits = [rd["critic"] for r in critics for rd in r["rounds"]]
    assert all(f["critic/windows"] > 0 and "critic/auc_matched" in f for f in fits)
    assert all(not rd["critic"] for r in runs if r not in critics for rd in r["rounds"])
    # a study page renders from that compare.json alone, its best-of-N curve and critic rows included
    study = {"title": "Every method", "question": "Which wins?", "commands": ["rlpost compare ..."]}
    (tmp_path / "cmp" / "study.json").write_text(json.dumps(study))
    assert main(["compare-page", str(tmp_path / "cmp")]) == 0
    page = (tmp_path / "cmp" / "README.md").read_text()
    assert (
        page.startswith("# Every method") and "| best_of_8 |" in page and "## The critic, every round" in page
    )
    assert (
        "Best-of-N (best_of_n.png): N=1: " in page and (tmp_path / "cmp" / "best_of_n.png").stat().st_size > 0
    )
    for name in ("compare.json", "curves.png", "tables.txt"):
        assert (tmp_path / "cmp" / name).stat().st_size > 0
    doc = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert doc["config"]["methods"] == list(METHODS)
    rows = doc["tables"]["tabletop/takeovers"]["rows"]
    assert [r["method"] for r in rows] == list(METHODS)
    assert "vs demo_only" in text and "vs curated" in text
    # every run's rounds reach the metrics log (wandb too: its steps only ever increase)
    rows = [json.loads(line) for line in (tmp_path / "cmp" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows]
    assert steps == sorted(set(steps)) and len(rows) == len(runs) * cfg.rounds
    assert {k.split("/")[1] for r in rows for k in r if k.startswith("compare/")} == set(budgets)


def test_a_run_whose_store_disagrees_with_its_report_is_refused(assets, tmp_path):
    cfg = tiny_cfg(
        assets, tmp_path / "cmp2", methods=["pretrained", "demo_only"], seeds=1, rounds=1, takeovers=[False]
    )
    result = run_compare(cfg)
    bench = TaskBench(cfg, "tabletop")
    fake = RunRecord("tabletop", False, "demo_only", 0, "self-demo_only-s0")
    fake.rounds.append(RoundRecord(1, 99, 1.0, 0, 0, 0, 0, [], [], []))
    with pytest.raises(RuntimeError, match="stored 3 practice episodes, its run reported 99"):
        check_budgets(bench, [fake])
    assert result["budgets"]["tabletop"]["self-demo_only-s0"]["episodes"] == 3


def test_cli_refuses_rl_methods_without_a_reward_model(tmp_path, capsys):
    code = main(["compare", f"out={tmp_path}", "reward_model=", "policy=x"])
    err = capsys.readouterr().err
    assert (
        code == 2
        and "['awfm', 'adv_conditioned', 'steer', 'steer_distill', 'fpo']" in err
        and "reward_model=" in err
    )
