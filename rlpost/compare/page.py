"""Study pages: ``docs/results/<name>/README.md`` rendered from the comparison committed beside it.

A study folder holds ``compare.json`` (what `rlpost compare` wrote, every number and the config)
and ``study.json`` (the page's title, the question it answers and the commands that ran it)::

    {"title": "...", "question": "...", "commands": ["rlpost compare ..."]}

`rlpost compare-page docs/results/<name>` writes the page (and ``best_of_n.png`` when the
comparison ran best-of-N methods); tests/unit/test_study_pages.py renders every committed page
again and fails if its text differs, so a number on a page is never typed by hand.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rlpost.compare.config import best_of
from rlpost.compare.critic_acting import uses_critic
from rlpost.compare.report import COLUMNS

STUDY_FILE = "study.json"
PAGE_FILE = "README.md"
CURVE_FILE = "best_of_n.png"
# the table columns a page shows (the rest stay in compare.json)
PAGE_COLUMNS = tuple(c for c in COLUMNS if c not in ("cycle_s", "takeovers/ep", "robot_h"))
EDIT_COLUMNS = ("q_base", "q_edited", "edit_rms")  # the edit method's actor fits
NOISE_COLUMNS = ("q_prior", "q_actor", "noise_rms")  # the noise method's
CRITIC_COLUMNS = (
    "auc_matched",
    "candidate_spread",
    "candidate_gain",
    "disagreement",
    "heldout_loss",
    "windows",
)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.3g}" if abs(v) < 10 else f"{v:.0f}"
    return str(v)


def markdown_table(rows: list[dict[str, Any]], columns: tuple[str, ...] | list[str]) -> str:
    cols = [c for c in columns if any(c in r for r in rows)]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(_cell(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(out)


def read_study(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(compare.json, study.json) of a study folder.

    Raises:
        FileNotFoundError: either file is missing.
        ValueError: study.json lacks its title, question or commands.
    """
    doc = json.loads((folder / "compare.json").read_text())
    study = json.loads((folder / STUDY_FILE).read_text())
    missing = [k for k in ("title", "question", "commands") if k not in study]
    if missing:
        raise ValueError(f"{folder / STUDY_FILE}: lacks {missing}")
    return doc, study


def critic_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Per best-of-N method, setting and round: the critic's diagnostics, averaged over seeds."""
    rows = []
    runs = [r for r in doc["runs"] if uses_critic(r["method"])]
    keys = sorted({(r["method"], r["takeovers"], r["task"]) for r in runs}, key=str)
    for method, takeovers, task in keys:
        picked = [r for r in runs if (r["method"], r["takeovers"], r["task"]) == (method, takeovers, task)]
        for i in range(len(picked[0]["rounds"])):
            fits = [r["rounds"][i].get("critic", {}) for r in picked]
            row: dict[str, Any] = {"method": method, "task": task, "takeovers": takeovers, "round": i + 1}
            for group, cols in (("critic", CRITIC_COLUMNS), ("edit", EDIT_COLUMNS), ("noise", NOISE_COLUMNS)):
                for c in cols:
                    vals = [f[f"{group}/{c}"] for f in fits if f"{group}/{c}" in f]
                    if vals or group == "critic":
                        row[c] = sum(vals) / len(vals) if vals else math.nan
            rows.append(row)
    return rows


def best_of_curve(doc: dict[str, Any], table: str) -> list[tuple[int, float, str]]:
    """(N, final-round success, ci95) of ``pretrained`` (N = 1) and every best-of-N method of one table."""
    rows = doc["tables"][table]["rows"]
    out = [(1, r["success"], r["ci95"]) for r in rows if r["method"] == "pretrained"]
    out += [(n, r["success"], r["ci95"]) for r in rows if (n := best_of(r["method"]))]
    return sorted(out)


def render_page(folder: str | Path) -> str:
    """The page's Markdown, from the folder's compare.json and study.json (see the module docstring)."""
    folder = Path(folder)
    doc, study = read_study(folder)
    cfg = doc["config"]
    lines = [f"# {study['title']}", "", study["question"], "", "```bash", *study["commands"], "```", ""]
    lines.append(
        f"{cfg['seeds']} training seeds, {cfg['rounds']} rounds of {cfg['episodes_per_round']} practice "
        f"episodes and {cfg['updates_per_round']} head updates, {cfg['eval_episodes']} evaluation episodes "
        "per seed and round (the same env seeds for every method). Intervals are 95%; "
        '"vs X" resamples training seeds, then episodes (hierarchical); "seeds fixed" resamples episodes only.'
    )
    for key, numbers in doc["tables"].items():
        task, setting = key.split("/")
        name = "with takeovers" if setting == "takeovers" else "without takeovers (self-practice)"
        lines += ["", f"## {task}, {name}: final round", "", markdown_table(numbers["rows"], PAGE_COLUMNS)]
        lines += ["", "Success per round:", "", markdown_table(numbers["rounds"], list(numbers["rounds"][0]))]
        curve = best_of_curve(doc, key)
        if len(curve) > 1:
            lines += [
                "",
                f"Best-of-N ({CURVE_FILE}): " + ", ".join(f"N={n}: {s:.2f} {ci}" for n, s, ci in curve),
            ]
    critic = critic_rows(doc)
    if critic:
        lines += ["", "## The critic, every round (held-out episodes, mean over seeds)", ""]
        lines += [
            markdown_table(critic, ["method", "task", "takeovers", "round", *CRITIC_COLUMNS, *EDIT_COLUMNS])
        ]
    lines += ["", f"_Rendered by `rlpost compare-page` from compare.json and {STUDY_FILE}; do not edit._", ""]
    return "\n".join(lines)


def plot_best_of_n(doc: dict[str, Any], path: Path) -> Path | None:
    """Final-round success against N (pretrained as N = 1), one line per table; None without best-of-N."""
    curves = {k: best_of_curve(doc, k) for k in doc["tables"] if "/" in k}
    curves = {k: c for k, c in curves.items() if len(c) > 1}
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for key, c in curves.items():
        ax.plot([n for n, _, _ in c], [s for _, s, _ in c], marker="o", label=key)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("N (chunks sampled, the critic picks one)")
    ax.set_ylabel("success, final round")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_page(folder: str | Path) -> Path:
    """Write the folder's README.md (and best_of_n.png when it applies)."""
    folder = Path(folder)
    page = folder / PAGE_FILE
    page.write_text(render_page(folder))
    doc, _ = read_study(folder)
    plot_best_of_n(doc, folder / CURVE_FILE)
    return page
