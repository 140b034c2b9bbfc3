"""Hand-built `rlpost compare` results: runs whose evaluations succeed at chosen rates."""

from __future__ import annotations

import dataclasses

from rlpost.compare.runner import RoundRecord, RunRecord
from rlpost.report import write_json

N = 200  # evaluation episodes per run


def run_record(method: str, seed: int, success_rate: float, takeovers: bool = False) -> dict:
    """A one-round run whose evaluation succeeds on the first ``success_rate`` share of the seeds."""
    k = int(success_rate * N)
    rd = RoundRecord(1, 10, 50.0, 5, 0, 0, 100, [i < k for i in range(N)], [10.0] * N, list(range(N)))
    sid = f"{'operator' if takeovers else 'self'}-{method}-s{seed}"
    return dataclasses.asdict(RunRecord("tabletop", takeovers, method, seed, sid, [rd]))


def comparison(path, methods: dict[str, float], **config) -> str:
    """A compare.json at ``path`` whose methods succeed at the given rates (``config`` overrides its settings)."""
    cfg = {
        "policy_checkpoint": "pt/policy",
        "demos": "demos",
        "tasks": ["tabletop"],
        "methods": list(methods),
        "takeovers": [False],
        "seeds": 2,
        "rounds": 1,
        "episodes_per_round": 10,
        "updates_per_round": 100,
        "eval_episodes": N,
        "eval_seed": 500_000,
        "practice_seed": 1_000_000,
        "execute": 4,
        "sim": {"n_blocks": 1},
        "operator": {},
    } | config
    runs = [
        run_record(m, s, rate, takeovers=t)
        for m, rate in methods.items()
        for s in range(cfg["seeds"])
        for t in cfg["takeovers"]
    ]
    write_json(path / "compare.json", {"config": cfg, "runs": runs, "budgets": {}})
    return str(path / "compare.json")
