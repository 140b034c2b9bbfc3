"""`rlpost compare-pair`: what a setting does to each method, seed by seed.

``compare-merge`` pairs a variant (a method run under other learner options) with the plain
controls. The question "what does this option do to the method itself" (the averaged head
against the latest weights, a refit critic against the reward model's value) needs the same
method from two comparisons run on the same checkpoint, seeds and budgets: their evaluation
episodes start from the same states, so method m's run with seed s in one pairs episode by
episode with m's run with seed s in the other.
"""

from __future__ import annotations

from typing import Any

from rlpost.compare.report import (
    PAIRING_KEYS,
    outcomes,
    pool_rounds,
    select_runs,
    short_value,
    variant_settings,
)
from rlpost.compare.stats import paired_bootstrap
from rlpost.report import format_table


def _check_pairs(base: dict[str, Any], other: dict[str, Any], names: tuple[str, str]) -> None:
    for k in PAIRING_KEYS:
        if k == "seeds":  # how many: runs pair on the seeds both ran
            continue
        if other["config"].get(k) != base["config"].get(k):
            raise ValueError(
                f"compare-pair: {names[1]} ran with {k}={other['config'].get(k)!r}, {names[0]} with "
                f"{base['config'].get(k)!r}; their evaluations would not pair"
            )


def pair_results(
    base: dict[str, Any],
    other: dict[str, Any],
    names: tuple[str, str] = ("base", "other"),
    n_boot: int = 2000,
) -> dict[str, Any]:
    """``other`` − ``base`` for every (operator setting, task, method) both ran, on the seeds both
    ran: the final round, round 1 and all rounds pooled (each (seed, round) its own stratum of the
    paired bootstrap), success and successes per hour.

    Returns ``{"base", "other", "differs", "rows", "diffs", "unpaired"}``: ``differs`` is what the
    other comparison's methods learned under (the options that differ from the base's), ``rows``
    the table's rows, ``diffs`` the numbers behind them, ``unpaired`` the methods only one ran.

    Raises:
        ValueError: the comparisons differ in a setting their pairing needs (named), or share no
            method run under the same operator setting and task.
    """
    _check_pairs(base, other, names)
    bcfg, ocfg = base["config"], other["config"]
    tasks = list(bcfg["tasks"])
    rows: list[dict[str, Any]] = []
    diffs: dict[str, dict[str, dict[str, Any]]] = {}
    unpaired: list[str] = []
    for takeovers in [t for t in bcfg["takeovers"] if t in ocfg["takeovers"]]:
        setting = "with takeovers" if takeovers else "no takeovers"
        for task in tasks:
            for method in dict.fromkeys([*bcfg["methods"], *ocfg["methods"]]):
                b_runs = select_runs(base["runs"], takeovers, method, task)
                o_runs = select_runs(other["runs"], takeovers, method, task)
                seeds = sorted({r["seed"] for r in b_runs} & {r["seed"] for r in o_runs})
                if not seeds:
                    unpaired.append(f"{method} ({setting}, {task})")
                    continue
                b_runs = [r for r in b_runs if r["seed"] in seeds]
                o_runs = [r for r in o_runs if r["seed"] in seeds]
                n_rounds = len(b_runs[0]["rounds"])
                per_round = [
                    (outcomes(o_runs, tasks, i), outcomes(b_runs, tasks, i)) for i in range(n_rounds)
                ]
                final = paired_bootstrap(*per_round[-1], n_boot=n_boot)
                first = paired_bootstrap(*per_round[0], n_boot=n_boot)
                pooled = paired_bootstrap(
                    pool_rounds([o for o, _ in per_round]),
                    pool_rounds([b for _, b in per_round]),
                    n_boot=n_boot,
                )
                key = f"{task}/{'takeovers' if takeovers else 'self'}/{method}"
                diffs[key] = {
                    "final": {k: v.__dict__ for k, v in final.items()},
                    "round_1": {k: v.__dict__ for k, v in first.items()},
                    "all_rounds": {k: v.__dict__ for k, v in pooled.items()},
                }
                rows.append(
                    {
                        "setting": setting,
                        "task": task,
                        "method": method,
                        "seeds": len(seeds),
                        "base final": float(per_round[-1][1].success.mean()),
                        "other final": float(per_round[-1][0].success.mean()),
                        "final Δ": final["success"].text(3),
                        "final succ/h Δ": final["succ_per_hour"].text(0),
                        "round 1 Δ": first["success"].text(3),
                        "all rounds Δ": pooled["success"].text(3),
                        "all rounds succ/h Δ": pooled["succ_per_hour"].text(0),
                    }
                )
    if not rows:
        raise ValueError(
            f"compare-pair: {names[0]} and {names[1]} share no method run under the same operator "
            "setting and task on the same seeds"
        )
    return {
        "base": names[0],
        "other": names[1],
        "differs": variant_settings(bcfg, ocfg),
        "rows": rows,
        "diffs": diffs,
        "unpaired": unpaired,
    }


def pair_table(result: dict[str, Any]) -> str:
    """The text table of :func:`pair_results`, titled with what the other comparison changed."""
    differs = result["differs"]
    what = ", ".join(f"{k}={short_value(v)}" for k, v in differs.items()) or "the same learning settings"
    title = (
        f"{result['other']} − {result['base']}, same method and seed (paired 95%); "
        f"{result['other']} ran with {what}"
    )
    text = format_table(result["rows"], title=title)
    if result["unpaired"]:
        text += "\nnot paired (run in only one, or on no common seed): " + ", ".join(result["unpaired"])
    return text
