"""`rlpost compare-merge`: comparisons run apart, on the same checkpoint and seeds, become one table."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from rlpost.cli import main
from rlpost.compare.runner import RoundRecord, RunRecord
from tests.support.compare_results import N, comparison


def test_a_method_run_later_is_paired_with_the_controls_of_the_first_run(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = comparison(tmp_path / "a", {"pretrained": 0.4, "demo_only": 0.4, "curated": 0.3})
    comparison(tmp_path / "b", {"demo_only": 0.9, "steer_distill": 0.6})  # demo_only again: a's is kept
    # the second given as its folder
    assert main(["compare-merge", f"out={tmp_path / 'm'}", a, str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    merged = json.loads((tmp_path / "m" / "compare.json").read_text())
    assert merged["config"]["methods"] == ["pretrained", "demo_only", "curated", "steer_distill"]
    rows = {r["method"]: r for r in merged["tables"]["tabletop/self"]["rows"]}
    assert rows["demo_only"]["success"] == pytest.approx(0.4)
    # the episodes pair seed by seed: 0.6 vs 0.4 on the same 400 episodes, a clear +0.2
    diff = merged["tables"]["tabletop/self"]["diffs"]["steer_distill"]["demo_only"]["success"]
    assert diff["diff"] == pytest.approx(0.2) and 0.1 < diff["lo"] < 0.2 < diff["hi"] < 0.3
    assert "steer_distill" in out and (tmp_path / "m" / "curves.png").exists()
    assert np.isclose(rows["curated"]["success"], 0.3)


def test_methods_that_learned_under_other_settings_join_as_named_variants_not_under_the_plain_name(
    tmp_path, capsys
):
    for d in "abcd":
        (tmp_path / d).mkdir()
    learner = {"mode": "awfm", "advantage": "nstep", "beta": 1.0}
    a = comparison(tmp_path / "a", {"demo_only": 0.4, "steer": 0.4}, learner=learner, reward_model="x/rm-v1")
    # b also records an option a predates (not a difference: a's runs behaved as its default), under
    # its old name (learner.distill_fraction, now learner.steer_distill.fraction)
    b = comparison(
        tmp_path / "b",
        {"steer": 0.6},
        learner=dict(learner, advantage="mc", distill_fraction=0.5, ema_decay=0.0),
        reward_model="x/rm-v1",
        practice_noise_scale=1.0,  # a top-level setting a predates
    )
    c = comparison(tmp_path / "c", {"steer": 0.5}, learner=learner, reward_model="runs/big/reward/rm-v1")
    # d records an option a predates at a value other than a's runs behaved as: a difference
    # (ema_decay's default became 0.995 after it was added; a comparison without it shipped the
    # latest weights, 0, which b records: no difference)
    d = comparison(
        tmp_path / "d", {"steer": 0.7}, learner=dict(learner, ema_decay=0.995), reward_model="x/rm-v1"
    )
    assert main(["compare-merge", f"out={tmp_path / 'm'}", a, b, c, d]) == 0
    merged = json.loads((tmp_path / "m" / "compare.json").read_text())
    mc, rm, ema = "steer (advantage=mc)", "steer (reward_model=big/reward/rm-v1)", "steer (ema_decay=0.995)"
    assert merged["config"]["methods"] == ["demo_only", "steer", mc, rm, ema]
    assert merged["config"]["variants"] == {
        mc: {"advantage": "mc"},
        rm: {"reward_model": "runs/big/reward/rm-v1"},
        ema: {"ema_decay": 0.995},
    }
    rows = {r["method"]: r["success"] for r in merged["tables"]["tabletop/self"]["rows"]}
    assert rows == pytest.approx({"demo_only": 0.4, "steer": 0.4, mc: 0.6, rm: 0.5, ema: 0.7})
    diff = merged["tables"]["tabletop/self"]["diffs"][mc]["demo_only"]["success"]
    assert diff["diff"] == pytest.approx(0.2)
    assert mc in capsys.readouterr().out


def test_comparisons_that_would_not_pair_are_refused_naming_the_setting(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = comparison(tmp_path / "a", {"demo_only": 0.4})
    b = comparison(tmp_path / "b", {"steer": 0.5}, eval_seed=7)
    assert main(["compare-merge", f"out={tmp_path / 'm'}", a, b]) == 1
    err = capsys.readouterr().err
    assert "eval_seed=7" in err and "would not pair" in err and not (tmp_path / "m").exists()


@pytest.mark.parametrize("content", ["{not json", '{"runs": []}'])
def test_a_broken_or_foreign_input_is_named(tmp_path, capsys, content):
    (tmp_path / "a").mkdir()
    a = comparison(tmp_path / "a", {"demo_only": 0.4})
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert main(["compare-merge", f"out={tmp_path / 'm'}", a, str(bad)]) == 1
    assert "bad.json" in capsys.readouterr().err


def test_usage_errors_exit_2(tmp_path, capsys):
    assert main(["compare-merge", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 2  # no out=
    assert "usage: rlpost compare-merge" in capsys.readouterr().err
    assert main(["compare-merge", "out=x", str(tmp_path / "missing.json"), str(tmp_path / "b.json")]) == 1
    assert "missing.json does not exist" in capsys.readouterr().err


def test_compare_records_absolute_paths_so_runs_from_other_working_directories_pair(tmp_path, monkeypatch):
    from rlpost.compare import CompareConfig
    from rlpost.compare.runner import recorded_config

    monkeypatch.chdir(tmp_path)
    cfg = CompareConfig(
        policy_checkpoint="exp/pretrain/policy",
        demos="exp/demos",
        reward_model="",
        out="cmp",
        methods=["demo_only"],
    )
    doc = recorded_config(cfg)
    assert doc["policy_checkpoint"] == str(tmp_path / "exp" / "pretrain" / "policy")
    assert doc["demos"] == str(tmp_path / "exp" / "demos") and doc["out"] == str(tmp_path / "cmp")
    assert doc["reward_model"] == ""  # unset stays unset
    assert doc["seeds"] == cfg.seeds


def test_with_takeovers_every_method_is_also_paired_against_the_takeovers_alone(tmp_path, capsys):
    for d in "ab":
        (tmp_path / d).mkdir()
    a = comparison(tmp_path / "a", {"demo_only": 0.4, "takeovers_only": 0.6}, takeovers=[True])
    b = comparison(tmp_path / "b", {"awfm": 0.75}, takeovers=[True])
    assert main(["compare-merge", f"out={tmp_path / 'm'}", a, b]) == 0
    assert "vs takeovers_only" in capsys.readouterr().out
    merged = json.loads((tmp_path / "m" / "compare.json").read_text())
    (table,) = [t for key, t in merged["tables"].items() if key.startswith("tabletop/")]
    diff = table["diffs"]["awfm"]["takeovers_only"]
    assert diff["success"]["diff"] == pytest.approx(0.15) and diff["success"]["lo"] > 0
    assert diff["succ_per_hour"]["diff"] > 0
    assert "takeovers_only" not in table["diffs"]["takeovers_only"]  # not against itself


# `rlpost compare-pool`: replications of one comparison on other seeds become one table.


def test_replications_pool_into_one_table_with_every_seed_its_own_stratum(tmp_path, capsys):
    for d in "abcd":
        (tmp_path / d).mkdir()
    methods = {"takeovers_only": 0.6, "awfm": 0.65}
    a = comparison(tmp_path / "a", dict(methods, curated=0.5), takeovers=[True])
    b = comparison(tmp_path / "b", methods, takeovers=[True], eval_seed=600_000, practice_seed=2_000_000)
    c = comparison(
        tmp_path / "c", methods, takeovers=[True], seeds=1, eval_seed=700_000, practice_seed=3_000_000
    )
    assert main(["compare-pool", f"out={tmp_path / 'p'}", a, b, c]) == 0
    out = capsys.readouterr().out
    pooled = json.loads((tmp_path / "p" / "compare.json").read_text())
    cfg = pooled["config"]
    assert cfg["seeds"] == 5 and cfg["methods"] == ["takeovers_only", "awfm"]
    assert [p["first_seed"] for p in cfg["pooled_from"]] == [0, 2, 4]
    assert [p["practice_seed"] for p in cfg["pooled_from"]] == [1_000_000, 2_000_000, 3_000_000]
    assert cfg["left_out"] == {"curated": [a]} and "left out" in out and "curated" in out
    assert sorted({r["seed"] for r in pooled["runs"]}) == [0, 1, 2, 3, 4]
    (table,) = pooled["tables"].values()
    diff = table["diffs"]["awfm"]["takeovers_only"]["success"]
    # every (replication, seed) pairs its own 200 episodes: 1000 paired episodes, +0.05 in each
    assert diff["n"] == 1000 and diff["diff"] == pytest.approx(0.05) and diff["lo"] > 0
    assert "5 seeds pooled" in out


def test_pool_refuses_the_same_seeds_twice_and_other_settings_naming_them(tmp_path, capsys):
    for d in "abcd":
        (tmp_path / d).mkdir()
    a = comparison(tmp_path / "a", {"demo_only": 0.4, "steer": 0.5})
    b = comparison(tmp_path / "b", {"demo_only": 0.4, "steer": 0.5}, seeds=3)  # seeds as a's
    assert main(["compare-pool", f"out={tmp_path / 'p'}", a, b]) == 1
    assert "same episodes would count twice" in capsys.readouterr().err
    c = comparison(tmp_path / "c", {"demo_only": 0.4}, eval_seed=9, updates_per_round=50)
    assert main(["compare-pool", f"out={tmp_path / 'p'}", a, c]) == 1
    err = capsys.readouterr().err
    assert "updates_per_round=50" in err and "only seeds" in err and not (tmp_path / "p").exists()
    # a learner option a predates: the value its runs behaved as pools, another value is named
    learner = {"mode": "awfm", "beta": 1.0}
    e = comparison(tmp_path / "d", {"demo_only": 0.4}, eval_seed=11, learner=dict(learner, ema_decay=0.0))
    a2 = comparison(tmp_path / "a", {"demo_only": 0.4}, learner=learner)
    assert main(["compare-pool", f"out={tmp_path / 'p'}", a2, e]) == 0
    capsys.readouterr()
    f = comparison(tmp_path / "c", {"demo_only": 0.4}, eval_seed=12, learner=dict(learner, ema_decay=0.995))
    assert main(["compare-pool", f"out={tmp_path / 'q'}", a2, f]) == 1
    assert "ema_decay=0.995" in capsys.readouterr().err and not (tmp_path / "q").exists()


def test_pool_needs_a_method_in_every_replication_and_no_pool_as_input(tmp_path, capsys):
    for d in "abcd":
        (tmp_path / d).mkdir()
    a = comparison(tmp_path / "a", {"demo_only": 0.4})
    b = comparison(tmp_path / "b", {"steer": 0.5}, eval_seed=9)
    assert main(["compare-pool", f"out={tmp_path / 'p'}", a, b]) == 1
    assert "no method ran in every one" in capsys.readouterr().err
    c = comparison(tmp_path / "c", {"demo_only": 0.5}, eval_seed=10)
    assert main(["compare-pool", f"out={tmp_path / 'p'}", a, c]) == 0
    capsys.readouterr()
    assert main(["compare-pool", f"out={tmp_path / 'q'}", str(tmp_path / "p"), b]) == 1
    assert "already a pool" in capsys.readouterr().err
    assert main(["compare-pool", f"out={tmp_path / 'q'}", a]) == 2
    assert "usage: rlpost compare-pool" in capsys.readouterr().err


def test_the_report_shows_success_per_round_and_pairs_all_rounds_against_the_controls(tmp_path):
    from rlpost.compare.report import tables

    def run(method: str, seed: int, rates: list[float]) -> dict:
        rounds = [
            RoundRecord(
                r + 1, 10, 50.0, 5, 0, 0, 100, [i < int(x * N) for i in range(N)], [10.0] * N, list(range(N))
            )
            for r, x in enumerate(rates)
        ]
        return dataclasses.asdict(
            RunRecord("tabletop", True, method, seed, f"operator-{method}-s{seed}", rounds)
        )

    (tmp_path / "a").mkdir()
    comparison(tmp_path / "a", {"takeovers_only": 0.0, "awfm": 0.0}, takeovers=[True], rounds=2)
    doc = json.loads((tmp_path / "a" / "compare.json").read_text())
    # the final round favours awfm by 0.2, the first round takeovers_only by 0.1: over both, +0.05
    doc["runs"] = [run("takeovers_only", s, [0.5, 0.5]) for s in range(2)] + [
        run("awfm", s, [0.4, 0.7]) for s in range(2)
    ]
    text, numbers = tables(doc, n_boot=200)
    assert "success per round" in text
    table = numbers["tabletop/takeovers"]
    per_round = {r["method"]: r for r in table["rounds"]}
    assert per_round["awfm"]["round 1"] == pytest.approx(0.4) and per_round["awfm"][
        "round 2"
    ] == pytest.approx(0.7)
    assert per_round["awfm"]["all rounds"] == pytest.approx(0.55)
    final = table["diffs"]["awfm"]["takeovers_only"]["success"]
    overall = table["round_diffs"]["awfm"]["takeovers_only"]["success"]
    assert final["diff"] == pytest.approx(0.2) and overall["diff"] == pytest.approx(0.05)
    assert overall["n"] == 2 * final["n"]  # both rounds' episodes, each (seed, round) a stratum


def test_a_column_the_first_row_lacks_is_still_printed():
    from rlpost.report import format_table

    # the per-round table of a comparison whose first method is a control lost the column
    text = format_table(
        [{"method": "takeovers_only", "all": 0.71}, {"method": "awfm", "all": 0.72, "vs": "+0.01"}]
    )
    header, _, first, second = text.splitlines()
    assert first.split() == ["takeovers_only", "0.71"]
    assert header.split() == ["method", "all", "vs"] and second.split()[-1] == "+0.01"


def test_an_option_only_some_methods_use_makes_variants_of_those_methods_only(tmp_path):
    # steer_target changes only steer and steer_distill: an awfm run that records another value
    # is not a variant of an awfm run that does not
    for d in "abc":
        (tmp_path / d).mkdir()
    learner = {"mode": "awfm", "ema_decay": 0.995}
    a = comparison(tmp_path / "a", {"demo_only": 0.4, "awfm": 0.5, "steer": 0.4}, learner=learner)
    now = dict(learner, steer={"target": "executed"})
    b = comparison(tmp_path / "b", {"awfm": 0.6}, learner=now, eval_seed=500_001)  # a replication
    c = comparison(tmp_path / "c", {"steer": 0.6}, learner=now)
    assert main(["compare-pool", f"out={tmp_path / 'p'}", a, b]) == 0  # awfm does not use the option
    assert main(["compare-merge", f"out={tmp_path / 'm'}", a, c]) == 0
    merged = json.loads((tmp_path / "m" / "compare.json").read_text())
    assert merged["config"]["methods"] == ["demo_only", "awfm", "steer", "steer (steer.target=executed)"]


def test_compare_json_lists_every_difference_with_both_intervals(tmp_path):
    for d in "ab":
        (tmp_path / d).mkdir()
    a = comparison(tmp_path / "a", {"demo_only": 0.4, "curated": 0.45}, seeds=3)
    b = comparison(tmp_path / "b", {"awfm": 0.6}, seeds=3)
    assert main(["compare-merge", f"out={tmp_path / 'm'}", a, b]) == 0
    doc = json.loads((tmp_path / "m" / "compare.json").read_text())
    keys = {
        "task",
        "setting",
        "method",
        "control",
        "statistic",
        "diff",
        "lo",
        "hi",
        "seeds",
        "episodes",
        "interval",
    }
    assert all(set(d) == keys for d in doc["differences"])
    awfm = {
        (d["control"], d["statistic"], d["interval"]): d
        for d in doc["differences"]
        if d["method"] == "awfm" and d["task"] == "tabletop" and d["setting"] == "self"
    }
    assert set(awfm) == {
        (c, s, i)
        for c in ("demo_only", "curated")
        for s in ("success", "succ_per_hour")
        for i in ("hierarchical", "stratified")
    }
    h = awfm[("demo_only", "success", "hierarchical")]
    assert h["diff"] == pytest.approx(0.2) and (h["seeds"], h["episodes"]) == (3, 3 * N)
    # the table's interval against a control is the hierarchical one; seeds fixed is its own column
    row = next(r for r in doc["tables"]["tabletop/self"]["rows"] if r["method"] == "awfm")
    assert row["vs demo_only"].startswith("+0.20 [") and "vs demo_only, seeds fixed" in row
