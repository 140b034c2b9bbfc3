"""The rlpost command: subcommands listed, Hydra overrides checked against the dataclass schemas."""

from __future__ import annotations

import json

import pytest

from rlpost.cli import main
from rlpost.config import ConfigError, compose


def test_help_lists_the_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert "bench" in capsys.readouterr().out


def test_compose_returns_the_dataclass_with_overrides_applied():
    from rlpost.bench.policy_bench import PolicyBenchConfig

    cfg = compose("bench_policy", ["batch=3", "policy.horizon=16", "policy.expert.depth=2"])
    assert isinstance(cfg, PolicyBenchConfig)
    assert (cfg.batch, cfg.policy.horizon, cfg.policy.expert.depth) == (3, 16, 2)
    assert cfg.policy.backbone == "tiny" and cfg.policy.action_dim == 7


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("policy.horizn=3", "horizn"),  # typo in a key
        ("policy.horizon=abc", "horizon"),  # wrong type
        ("+policy.extra=1", "adding keys is not allowed"),  # Hydra would silently add it
        ("policy=tyni", "tyni"),  # unknown group option
        ("policy.backbone=hff", "did you mean 'hf'"),  # contradiction caught in __post_init__
    ],
)
def test_a_mistyped_override_is_an_error_not_a_silent_default(override, match):
    with pytest.raises(ConfigError, match=match):
        compose("bench_policy", [override])


def test_bench_policy_prints_the_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    overrides = ["repeats=2", "warmup=1", "policy.horizon=8", "policy.expert.depth=1", f"out={out}"]
    assert main(["bench", "policy", *overrides]) == 0
    text = capsys.readouterr().out
    for measure in ("encode", "chunk: cached", "chunk: naive", "backbone", "action_expert"):
        assert measure in text
    result = json.loads(out.read_text())
    assert {r["measure"] for r in result["rows"]} >= {
        "encode",
        "chunk: cached",
        "chunk: kv_each",
        "chunk: naive",
    }
    assert result["params"]["backbone"] > 0 and result["params"]["action_expert"] > 0
    best = {r["measure"].split(" ")[0]: r for r in result["rows"] if r["measure"].startswith("best-of-")}
    assert sorted(best) == ["best-of-1", "best-of-16", "best-of-4", "best-of-8"]
    assert best["best-of-1"]["vs_best_of_1"] == 1.0 and best["best-of-16"]["budget_ms"] == 1000.0
    assert "best-of-N acting" in text and "50 actions at 50 Hz" in text


def test_bad_config_exits_with_status_2_and_says_why(capsys):
    assert main(["bench", "policy", "batchh=2"]) == 2
    assert "batchh" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command, named",
    [
        (["eval", "policy={tmp}/no-policy"], "no-policy/config.json"),  # a missing checkpoint
        (
            ["learn", "store={tmp}/no-store", "policy={tmp}/no-policy"],
            "no episode store at",
        ),  # a missing store
    ],
)
def test_a_users_missing_input_is_one_line_naming_it_and_status_2_not_a_traceback(
    command, named, tmp_path, capsys
):
    args = [a.format(tmp=tmp_path) for a in command]
    assert main([*args, f"out={tmp_path / 'out'}"]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"rlpost {command[0]}: ") and named in last
    assert "Traceback" not in err


def test_bench_learner_times_a_critic_update_beside_a_head_update(tmp_path, capsys):
    out = tmp_path / "learner.json"
    args = [
        "backbones=[tiny]",
        "updates=2",
        "episodes=2",
        "steps_per_episode=8",
        "image_size=32",
        "batch_size=8",
    ]
    assert main(["bench", "learner", *args, f"out={out}"]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert (
        row["critic_updates_s"] > 0
        and row["critic_vs_head"] > 0
        and "critic_vs_head" in capsys.readouterr().out
    )
