"""`rlpost compare-pair`: one method under two settings, paired seed by seed and episode by episode."""

from __future__ import annotations

import dataclasses
import json

from rlpost.cli import main
from rlpost.compare.runner import RoundRecord, RunRecord
from tests.support.compare_results import N, comparison


def _two_round_run(method: str, seed: int, rates: tuple[float, float]) -> dict:
    rounds = [
        RoundRecord(
            i + 1, 10, 50.0, 5, 0, 0, 100, [j < int(r * N) for j in range(N)], [10.0] * N, list(range(N))
        )
        for i, r in enumerate(rates)
    ]
    return dataclasses.asdict(RunRecord("tabletop", False, method, seed, f"self-{method}-s{seed}", rounds))


def test_each_method_is_paired_with_itself_seed_by_seed(tmp_path, capsys):
    for d in ("latest", "averaged"):
        (tmp_path / d).mkdir()
    base = comparison(tmp_path / "latest", {"demo_only": 0.4, "awfm": 0.5}, learner={"ema_decay": 0.0})
    comparison(  # given below as its folder
        tmp_path / "averaged", {"awfm": 0.7, "steer": 0.5, "demo_only": 0.4}, learner={"ema_decay": 0.995}
    )
    assert main(["compare-pair", f"out={tmp_path / 'p'}", base, str(tmp_path / "averaged")]) == 0
    text = capsys.readouterr().out
    assert "ran with ema_decay=0.995" in text  # what the other comparison changed
    assert "steer" in text.split("not paired")[1]  # run in one comparison only: named, not paired
    result = json.loads((tmp_path / "p" / "pair.json").read_text())
    assert (tmp_path / "p" / "pair.txt").read_text().strip() == text.split("\nwrote ")[0].strip()
    awfm = result["diffs"]["tabletop/self/awfm"]["final"]["success"]
    assert abs(awfm["diff"] - 0.2) < 1e-9 and awfm["lo"] > 0  # the same 200 states, 40 more successes
    assert awfm["n"] == 2 * N  # two seeds
    same = result["diffs"]["tabletop/self/demo_only"]["final"]["success"]
    assert same["diff"] == same["lo"] == same["hi"] == 0.0  # identical outcomes pair to exactly zero
    assert result["differs"] == {"ema_decay": 0.995}


def test_round_one_and_all_rounds_pair_per_round(tmp_path, capsys):
    cfg = {"seeds": 1, "rounds": 2}
    docs = []
    for d, rates in (("a", (0.5, 0.5)), ("b", (0.7, 0.5))):
        (tmp_path / d).mkdir()
        path = comparison(tmp_path / d, {"awfm": 0.0}, **cfg)
        doc = json.loads((tmp_path / d / "compare.json").read_text())
        doc["runs"] = [_two_round_run("awfm", 0, rates)]
        (tmp_path / d / "compare.json").write_text(json.dumps(doc))
        docs.append(path)
    assert main(["compare-pair", f"out={tmp_path / 'p'}", *docs]) == 0
    d = json.loads((tmp_path / "p" / "pair.json").read_text())["diffs"]["tabletop/self/awfm"]
    assert abs(d["round_1"]["success"]["diff"] - 0.2) < 1e-9
    assert d["final"]["success"]["diff"] == 0.0
    assert abs(d["all_rounds"]["success"]["diff"] - 0.1) < 1e-9 and d["all_rounds"]["success"]["n"] == 2 * N
    assert "same learning settings" in capsys.readouterr().out


def test_comparisons_that_would_not_pair_are_refused_naming_the_setting(tmp_path, capsys):
    for d in ("a", "b", "c"):
        (tmp_path / d).mkdir()
    a = comparison(tmp_path / "a", {"awfm": 0.5})
    b = comparison(tmp_path / "b", {"awfm": 0.5}, eval_seed=600_000)
    c = comparison(tmp_path / "c", {"steer": 0.5})
    assert main(["compare-pair", f"out={tmp_path / 'p'}", a, b]) == 1
    assert "eval_seed=600000" in capsys.readouterr().err
    assert main(["compare-pair", f"out={tmp_path / 'p'}", a, c]) == 1
    assert "share no method" in capsys.readouterr().err
    assert main(["compare-pair", f"out={tmp_path / 'p'}", a]) == 2  # one input
    assert "usage: rlpost compare-pair" in capsys.readouterr().err
    assert main(["compare-pair", f"out={tmp_path / 'p'}", a, str(tmp_path / "missing")]) == 1
    assert not (tmp_path / "p").exists()


def test_runs_pair_on_the_seeds_both_comparisons_ran(tmp_path):
    for d in ("five", "three"):
        (tmp_path / d).mkdir()
    a = comparison(tmp_path / "five", {"awfm": 0.5}, seeds=5)
    b = comparison(tmp_path / "three", {"awfm": 0.6}, seeds=3, learner={"ema_decay": 0.995})
    assert main(["compare-pair", f"out={tmp_path / 'p'}", a, b]) == 0
    row = json.loads((tmp_path / "p" / "pair.json").read_text())["rows"][0]
    assert row["seeds"] == 3 and row["method"] == "awfm"
