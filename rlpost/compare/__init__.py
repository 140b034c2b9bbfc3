"""The research harness: `rlpost compare` (RL vs curated imitation with controls, paired seeds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlpost.compare.config import METHODS, CompareConfig
from rlpost.compare.report import plot_curves, tables
from rlpost.compare.runner import run_compare
from rlpost.report import write_json

__all__ = ["METHODS", "CompareConfig", "compare"]


def compare(cfg: CompareConfig) -> tuple[str, dict[str, Any]]:
    """Run, then write ``compare.json`` (every number and the config), ``curves.png`` and
    ``tables.txt`` under ``cfg.out``; returns the tables' text and the JSON document."""
    result = run_compare(cfg)
    text, numbers = tables(result, cfg.bootstrap)
    result["tables"] = numbers
    out = Path(cfg.out)
    write_json(out / "compare.json", result)
    plot_curves(result, out / "curves.png")
    (out / "tables.txt").write_text(text + "\n")
    return text, result
