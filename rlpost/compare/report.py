"""Tables, paired differences and learning curves from the records of `rlpost compare`.

Works on the JSON-able records ``run_compare`` returns (and writes), so a finished comparison
can be re-reported without re-running it.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

from rlpost.compare.config import (
    CONTROLS,
    DISTILL_MODE,
    OPTION_METHODS,
    PRIMARY_CONTROLS,
    RENAMED_OPTIONS,
    CompareConfig,
    best_of,
    distills,
)
from rlpost.compare.stats import EpisodeOutcomes, PairedDiff, paired_bootstrap
from rlpost.evaluation import wilson_interval
from rlpost.report import format_table

COLUMNS = (
    "method",
    "success",
    "ci95",
    "succ/h",
    "cycle_s",
    "takeovers/ep",
    "robot_h",
    "vs demo_only",
    "vs demo_only, seeds fixed",
    "succ/h vs demo_only",
    "vs curated",
    "vs takeovers_only",
    "vs takeovers_only, seeds fixed",
    "succ/h vs takeovers_only",
)
# A method's interval against a control resamples the training seeds too (hierarchical, the
# columns "vs <control>"); with the seeds held fixed (stratified) it is the second, labelled column.
INTERVALS = ("hierarchical", "stratified")


def select_runs(runs: list[dict], takeovers: bool, method: str, task: str | None) -> list[dict]:
    """The runs of one method under one operator setting (and task, unless None), by (task, seed)."""
    out = [
        r
        for r in runs
        if r["takeovers"] == takeovers and r["method"] == method and (task is None or r["task"] == task)
    ]
    return sorted(out, key=lambda r: (r["task"], r["seed"]))


def outcomes(runs: list[dict], tasks: list[str], round_index: int = -1) -> EpisodeOutcomes:
    """The evaluation episodes of ``round_index`` of these runs, aligned by (task, seed, env seed)."""
    succ, dur, strata, block = [], [], [], []
    for r in runs:
        rd = r["rounds"][round_index]
        order = np.argsort(rd["eval_seeds"])
        succ.append(np.asarray(rd["eval_success"], bool)[order])
        dur.append(np.asarray(rd["eval_duration_s"], float)[order])
        strata.append(np.full(len(order), tasks.index(r["task"]) * 10_000 + r["seed"]))
        block.append(np.full(len(order), tasks.index(r["task"])))
    stratum = np.concatenate(strata)
    return EpisodeOutcomes(np.concatenate(succ), np.concatenate(dur), stratum, stratum, np.concatenate(block))


def pool_rounds(per_round: list[EpisodeOutcomes]) -> EpisodeOutcomes:
    """Several rounds' evaluation episodes as one set, each (task, seed, round) its own stratum."""
    return EpisodeOutcomes(
        np.concatenate([o.success for o in per_round]),
        np.concatenate([o.duration_s for o in per_round]),
        np.concatenate([o.stratum + (r + 1) * 1_000_000 for r, o in enumerate(per_round)]),
        np.concatenate([o.stratum if o.run is None else o.run for o in per_round]),  # a run's rounds: one run
        None if per_round[0].block is None else np.concatenate([o.block for o in per_round]),
    )


def round_rows(
    picked: dict[str, list[dict]], tasks: list[str], n_boot: int
) -> tuple[list[dict[str, Any]], dict[str, dict[str, dict[str, PairedDiff]]]]:
    """Success per round (seeds pooled) of each method, and its paired difference against the
    primary controls over all rounds pooled: the final round alone is one snapshot of a head
    that can move several points from one round to the next."""
    per_round = {
        m: [outcomes(runs, tasks, r) for r in range(len(runs[0]["rounds"]))]
        for m, runs in picked.items()
        if runs
    }
    controls = {c: pool_rounds(per_round[c]) for c in PRIMARY_CONTROLS if c in per_round}
    rows, diffs = [], {}
    for m, per in per_round.items():
        row: dict[str, Any] = {"method": m}
        row.update({f"round {r + 1}": float(o.success.mean()) for r, o in enumerate(per)})
        pooled = pool_rounds(per)
        row["all rounds"] = float(pooled.success.mean())
        diffs[m] = {}
        for name, ctrl in controls.items():
            if name != m:
                diffs[m][name] = paired_bootstrap(pooled, ctrl, n_boot=n_boot, interval="hierarchical")
                row[f"all rounds vs {name}"] = diffs[m][name]["success"].text(2)
        rows.append(row)
    return rows, diffs


def method_row(
    runs: list[dict], tasks: list[str], method: str, controls: dict[str, EpisodeOutcomes], n_boot: int
) -> tuple[dict[str, Any], dict[str, dict[str, PairedDiff]]]:
    """One table row (final round, seeds pooled) and its paired differences against the controls."""
    o = outcomes(runs, tasks)
    k, n = int(o.success.sum()), len(o.success)
    lo, hi = wilson_interval(k, n)
    cycle = o.duration_s[o.success]
    eps = sum(rd["practice_episodes"] for r in runs for rd in r["rounds"])
    row: dict[str, Any] = {
        "method": method,
        "success": k / n,
        "ci95": f"[{lo:.2f}, {hi:.2f}]",
        "succ/h": k / (o.duration_s.sum() / 3600),
        "cycle_s": float(cycle.mean()) if len(cycle) else math.nan,
        "takeovers/ep": sum(rd["takeovers"] for r in runs for rd in r["rounds"]) / max(eps, 1),
        "robot_h": sum(rd["practice_robot_s"] for r in runs for rd in r["rounds"]) / 3600,
    }
    diffs: dict[str, dict[str, dict[str, PairedDiff]]] = {}
    for name, ctrl in controls.items():
        if name == method:
            continue
        d = {i: paired_bootstrap(o, ctrl, n_boot=n_boot, interval=i) for i in INTERVALS}
        diffs[name] = d
        row[f"vs {name}"] = d["hierarchical"]["success"].text(2)
        if name in PRIMARY_CONTROLS:
            row[f"vs {name}, seeds fixed"] = d["stratified"]["success"].text(2)
            row[f"succ/h vs {name}"] = d["hierarchical"]["succ_per_hour"].text(0)
    return row, diffs


# Settings that must agree for runs of two comparisons to be paired episode by episode.
PAIRING_KEYS = (
    "policy_checkpoint",
    "demos",
    "tasks",
    "seeds",
    "rounds",
    "episodes_per_round",
    "updates_per_round",
    "eval_episodes",
    "eval_seed",
    "practice_seed",
    "execute",
    "sim",
    "operator",
)


# Settings under which a method learns: a comparison that differs from the first in these
# joins a merge as variants of its methods (named after the difference), never under the plain name.
VARIANT_KEYS = ("learner", "reward_model", "practice_noise_scale", "critic", "critic_risk", "edit", "noise")
# settings only the critic methods read
CRITIC_KEYS = ("critic", "critic_risk", "edit", "noise")


# Options whose default changed after they were added: what a comparison that does not record
# them behaved as (every other option behaved as its current default).
PREDATED_VALUES: dict[str, Any] = {
    "learner.ema_decay": 0.0,  # the head's latest weights shipped before the average existed
}


def _variant_defaults() -> dict[str, Any]:
    """What a comparison run before an option of :data:`VARIANT_KEYS` existed behaved as,
    flattened to dotted names: the schema's defaults, and :data:`PREDATED_VALUES`."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(CompareConfig):
        if f.name in VARIANT_KEYS:
            value = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
            out[f.name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
    return out


def variant_settings(first: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """``other``'s learning settings that differ from ``first``'s (nested options flattened to
    dotted names), with ``other``'s values. An option one of them does not record (a comparison
    run before the option existed) counts as its default, which those runs behaved as; one the
    schema no longer has is compared only where both record it; one of :data:`OPTION_METHODS`
    only where ``other`` ran a method that uses it."""

    def flat(d: Any, prefix: str) -> dict[str, Any]:
        if not isinstance(d, dict):
            return {prefix: d}
        return {k: v for key, sub in d.items() for k, v in flat(sub, f"{prefix}.{key}").items()}

    def settings(cfg: dict[str, Any]) -> dict[str, Any]:
        recorded = {
            RENAMED_OPTIONS.get(k, k): v
            for key in VARIANT_KEYS
            if key in cfg
            for k, v in flat(cfg[key], key).items()
        }
        return defaults | recorded

    defaults = {k: v for key, d in _variant_defaults().items() for k, v in flat(d, key).items()}
    defaults |= PREDATED_VALUES
    a, b = settings(first), settings(other)
    ran = {m.split(" (")[0] for m in other.get("methods", [])}  # a merged variant by its method

    def matters(k: str) -> bool:
        group = k.rsplit(".", 1)[0]
        if k.split(".")[0] in CRITIC_KEYS:
            return any(best_of(m) or m in ("edit", "noise") for m in ran)
        if group == f"learner.{DISTILL_MODE}" and any(distills(m) for m in ran):
            return True
        return group not in OPTION_METHODS or bool(ran & set(OPTION_METHODS[group]))

    return {
        k.removeprefix("learner."): b.get(k)
        for k in sorted(a.keys() & b.keys())
        if a[k] != b[k] and matters(k)
    }


def short_value(v: Any) -> str:
    """A setting's value for a method's label: a path by its last three parts."""
    text = str(v)
    parts = text.replace("\\", "/").split("/")
    return "/".join(parts[-3:]) if len(parts) > 3 else text


def merge_results(results: list[dict[str, Any]], names: list[str] | None = None) -> dict[str, Any]:
    """One comparison from several run at different times (e.g. a method added later).

    Every method of each must have run on the same checkpoint, seeds and budgets (``PAIRING_KEYS``),
    so that their evaluations pair episode by episode; a method present in more than one keeps
    the runs of the first. A comparison whose methods learned under other settings
    (``VARIANT_KEYS``: the learner's options, the reward model, practice's noise scale) than the first's keeps its runs
    too, as variants named after what differs, e.g. ``steer (advantage=mc)``; the merged
    config's ``variants`` records each one's settings. The merged config lists the union of
    methods and operator settings.

    Raises:
        ValueError: fewer than two results, or settings that differ (named, with both values).
    """
    if len(results) < 2:
        raise ValueError("compare-merge: give at least two compare.json files")
    names = names or [f"#{i}" for i in range(len(results))]
    first = results[0]["config"]
    for name, r in zip(names[1:], results[1:], strict=True):
        for k in PAIRING_KEYS:
            if r["config"].get(k) != first.get(k):
                raise ValueError(
                    f"compare-merge: {name} ran with {k}={r['config'].get(k)!r}, {names[0]} with "
                    f"{first.get(k)!r}; their evaluations would not pair"
                )
    methods: list[str] = []
    takeovers: list[bool] = []
    runs: list[dict] = []
    variants: dict[str, dict[str, Any]] = {}
    for r in results:
        cfg = r["config"]
        differs = variant_settings(first, cfg)
        label = ", ".join(f"{k}={short_value(v)}" for k, v in differs.items())
        rename = {m: f"{m} ({label})" if label else m for m in cfg["methods"]}
        new = [rename[m] for m in cfg["methods"] if rename[m] not in methods]
        seen = {(x["task"], x["takeovers"], x["method"], x["seed"]) for x in runs}
        for x in r["runs"]:
            x = dict(x, method=rename[x["method"]])
            if x["method"] in new and (x["task"], x["takeovers"], x["method"], x["seed"]) not in seen:
                runs.append(x)
        methods += new
        variants.update({m: differs for m in new if differs})
        takeovers += [t for t in cfg["takeovers"] if t not in takeovers]
    config = dict(first, methods=methods, takeovers=takeovers, merged_from=names, variants=variants)
    return {"config": config, "runs": runs, "budgets": [r.get("budgets") for r in results]}


# Settings a replication may change: its seeds (which draw other practice and evaluation
# episodes) and how many of them; everything else must match for the pool to be one experiment.
REPLICATION_KEYS = ("seeds", "eval_episodes", "eval_seed", "practice_seed")


def pool_results(results: list[dict[str, Any]], names: list[str] | None = None) -> dict[str, Any]:
    """One comparison from replications: the same checkpoint, methods' settings and budgets run
    again on other practice and evaluation seeds. Each (replication, seed) stays its own stratum of
    the paired bootstrap (its episodes pair only with the same replication's other methods), so the
    pooled intervals use every paired episode. Seeds are renumbered 0, 1, ... in input order; the
    pooled config's ``pooled_from`` records each input's seeds and where its seeds start.

    Methods run in every replication are pooled; the others are left out and listed in the
    config's ``left_out`` (their episodes would not pair with the controls of every stratum).

    Raises:
        ValueError: fewer than two results; a setting other than :data:`REPLICATION_KEYS` differs
            (named, with both values); two inputs share both seeds (the same episodes twice);
            no method is in every replication.
    """
    if len(results) < 2:
        raise ValueError("compare-pool: give at least two compare.json files")
    names = names or [f"#{i}" for i in range(len(results))]
    first = results[0]["config"]
    keys = (set(first) | {k for r in results for k in r["config"]}) - set(REPLICATION_KEYS)
    # where and how it ran, not what ran; methods are matched below
    keys -= {"out", "methods", "merged_from", "logger", "progress", "threads", "bootstrap"}
    keys -= set(VARIANT_KEYS)  # compared option by option, an unrecorded one as what it behaved as
    for name, r in zip(names[1:], results[1:], strict=True):
        for k, v in variant_settings(first, r["config"]).items():
            raise ValueError(
                f"compare-pool: {name} ran with {k}={v!r}, {names[0]} did not; only "
                f"{', '.join(REPLICATION_KEYS)} may differ between replications"
            )
        for k in sorted(keys):
            if k in first and k in r["config"] and r["config"][k] != first[k]:
                raise ValueError(
                    f"compare-pool: {name} ran with {k}={r['config'][k]!r}, {names[0]} with "
                    f"{first[k]!r}; only {', '.join(REPLICATION_KEYS)} may differ between replications"
                )
    seen: dict[tuple[int, int], str] = {}
    for name, r in zip(names, results, strict=True):
        if "pooled_from" in r["config"]:
            raise ValueError(f"compare-pool: {name} is already a pool; pool the comparisons it was made from")
        key = (r["config"]["eval_seed"], r["config"]["practice_seed"])
        if key in seen:
            raise ValueError(
                f"compare-pool: {name} and {seen[key]} both ran eval_seed={key[0]}, practice_seed={key[1]}:"
                " the same episodes would count twice (use compare-merge to join methods of one run)"
            )
        seen[key] = name
    common = [m for m in first["methods"] if all(m in r["config"]["methods"] for r in results)]
    if not common:
        raise ValueError(f"compare-pool: no method ran in every one of {', '.join(names)}")
    every = dict.fromkeys(m for r in results for m in r["config"]["methods"])
    left_out = {
        m: [n for n, r in zip(names, results, strict=True) if m in r["config"]["methods"]]
        for m in every
        if m not in common
    }
    runs: list[dict] = []
    pooled_from: list[dict[str, Any]] = []
    offset = 0
    for name, r in zip(names, results, strict=True):
        cfg = r["config"]
        runs += [dict(x, seed=x["seed"] + offset) for x in r["runs"] if x["method"] in common]
        pooled_from.append(
            {"input": name, "first_seed": offset} | {k: cfg[k] for k in REPLICATION_KEYS if k in cfg}
        )
        offset += cfg["seeds"]
    config = dict(first, methods=common, seeds=offset, pooled_from=pooled_from, left_out=left_out)
    config.pop("eval_seed", None)
    config.pop("practice_seed", None)
    return {"config": config, "runs": runs, "budgets": [r.get("budgets") for r in results]}


def tables(result: dict[str, Any], n_boot: int = 2000) -> tuple[str, dict[str, Any]]:
    """Text tables per task and operator setting, and overall; and the numbers behind them."""
    cfg, runs = result["config"], result["runs"]
    tasks, methods = list(cfg["tasks"]), list(cfg["methods"])
    text, numbers, differences = [], {}, []
    scopes: list[str | None] = [*tasks, None] if len(tasks) > 1 else tasks
    for takeovers in cfg["takeovers"]:
        setting = "with takeovers" if takeovers else "no takeovers (self-practice)"
        for task in scopes:
            picked = {m: select_runs(runs, takeovers, m, task) for m in methods}
            controls = {c: outcomes(picked[c], tasks) for c in CONTROLS if picked.get(c)}
            rows, diffs = [], {}
            for m in methods:
                if not picked[m]:
                    continue
                row, d = method_row(picked[m], tasks, m, controls, n_boot)
                rows.append(row)
                diffs[m] = {c: {k: v.__dict__ for k, v in dd["hierarchical"].items()} for c, dd in d.items()}
                differences += [
                    difference_entry(task or "all", takeovers, m, c, pd)
                    for c, dd in d.items()
                    for by_metric in dd.values()
                    for pd in by_metric.values()
                ]
            title = f"{task or 'all tasks'} — {setting}: final round, {cfg['seeds']} seeds pooled"
            text.append(format_table(rows, [c for c in COLUMNS if any(c in r for r in rows)], title=title))
            per_round, round_diffs = round_rows(picked, tasks, n_boot)
            text.append(
                format_table(per_round, title=f"{task or 'all tasks'} — {setting}: success per round")
            )
            numbers[f"{task or 'all'}/{'takeovers' if takeovers else 'self'}"] = {
                "rows": rows,
                "diffs": diffs,
                "rounds": per_round,
                "round_diffs": {
                    m: {c: {k: v.__dict__ for k, v in dd.items()} for c, dd in d.items()}
                    for m, d in round_diffs.items()
                },
            }
    numbers["differences"] = differences
    return "\n\n".join(text), numbers


def difference_entry(task: str, takeovers: bool, method: str, control: str, d: PairedDiff) -> dict[str, Any]:
    """One method-minus-control difference as compare.json lists it under ``differences``."""
    return {
        "task": task,
        "setting": "takeovers" if takeovers else "self",
        "method": method,
        "control": control,
        "statistic": d.metric,
        "diff": d.diff,
        "lo": d.lo,
        "hi": d.hi,
        "seeds": d.seeds,
        "episodes": d.n,
        "interval": d.interval,
    }


def curves(result: dict[str, Any]) -> dict[str, dict[str, dict[str, list[float]]]]:
    """Per (task, setting) and method: robot hours, success and successes/hour per round (round 0:
    the pretrained policy), with 95% bands (Wilson for success, ±1.96 s.e. over seeds for succ/h)."""
    cfg, runs = result["config"], result["runs"]
    out: dict[str, dict[str, dict[str, list[float]]]] = {}
    for task in cfg["tasks"]:
        for takeovers in cfg["takeovers"]:
            key = f"{task}/{'takeovers' if takeovers else 'self'}"
            out[key] = {}
            base = select_runs(runs, takeovers, "pretrained", task)
            for m in cfg["methods"]:
                rs = select_runs(runs, takeovers, m, task)
                if not rs:
                    continue
                c: dict[str, list[float]] = {
                    k: [] for k in ("hours", "success", "lo", "hi", "sph", "sph_lo", "sph_hi")
                }
                n_rounds = len(rs[0]["rounds"])
                # round -1 is the anchor at 0 robot hours: the pretrained runs' first evaluation
                for r in range(-1 if base else 0, n_rounds):
                    src, ri = (base, 0) if r < 0 else (rs, r)
                    o = outcomes(src, list(cfg["tasks"]), ri)
                    k, n = int(o.success.sum()), len(o.success)
                    lo, hi = wilson_interval(k, n)
                    per_seed = [
                        sum(x["rounds"][ri]["eval_success"])
                        / (sum(x["rounds"][ri]["eval_duration_s"]) / 3600)
                        for x in src
                    ]
                    se = (
                        float(np.std(per_seed, ddof=1) / math.sqrt(len(per_seed)))
                        if len(per_seed) > 1
                        else 0.0
                    )
                    hours = (
                        0.0
                        if r < 0
                        else float(
                            np.mean([sum(rd["practice_robot_s"] for rd in x["rounds"][: r + 1]) for x in rs])
                            / 3600
                        )
                    )
                    c["hours"].append(hours)
                    c["success"].append(k / n)
                    c["lo"].append(lo)
                    c["hi"].append(hi)
                    c["sph"].append(float(np.mean(per_seed)))
                    c["sph_lo"].append(max(0.0, float(np.mean(per_seed)) - 1.96 * se))
                    c["sph_hi"].append(float(np.mean(per_seed)) + 1.96 * se)
                out[key][m] = c
    return out


def plot_curves(result: dict[str, Any], path: str | Path) -> Path:
    """Learning curves as one PNG: a row per (task, setting); success and successes/hour vs robot hours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = curves(result)
    fig, axes = plt.subplots(len(data), 2, figsize=(11, 3.2 * len(data)), squeeze=False)
    for row, (key, methods) in enumerate(data.items()):
        for m, c in methods.items():
            for col, (y, lo, hi, label) in enumerate(
                (("success", "lo", "hi", "success rate"), ("sph", "sph_lo", "sph_hi", "successes / hour"))
            ):
                ax = axes[row][col]
                (line,) = ax.plot(c["hours"], c[y], marker="o", label=m)
                ax.fill_between(c["hours"], c[lo], c[hi], color=line.get_color(), alpha=0.12)
                ax.set_title(f"{key}: {label}", fontsize=9)
                ax.set_xlabel("practice robot hours")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
