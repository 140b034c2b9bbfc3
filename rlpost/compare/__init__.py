"""The research harness: `rlpost compare` (RL vs curated imitation with controls, paired seeds)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rlpost.compare.config import METHODS, CompareConfig
from rlpost.compare.pairing import pair_results, pair_table
from rlpost.compare.report import merge_results, plot_curves, pool_results, tables
from rlpost.compare.runner import run_compare
from rlpost.report import write_json

__all__ = ["METHODS", "CompareConfig", "compare", "merge", "pair", "pool"]


def compare(cfg: CompareConfig) -> tuple[str, dict[str, Any]]:
    """Run, then write ``compare.json`` (every number and the config), ``curves.png`` and
    ``tables.txt`` under ``cfg.out``; returns the tables' text and the JSON document."""
    return _write(run_compare(cfg), Path(cfg.out), cfg.bootstrap)


def merge(inputs: list[str | Path], out: str | Path, n_boot: int = 2000) -> tuple[str, dict[str, Any]]:
    """Merge finished comparisons (``compare.json`` files, or their folders) that share checkpoint,
    seeds and budgets into one, written under ``out`` like :func:`compare`'s output.

    Raises:
        FileNotFoundError: an input is missing.
        ValueError: an input is not a comparison's JSON, or the inputs would not pair.
    """
    results, names = _load(inputs, "compare-merge")
    return _write(merge_results(results, names), Path(out), n_boot)


def pool(inputs: list[str | Path], out: str | Path, n_boot: int = 2000) -> tuple[str, dict[str, Any]]:
    """Pool replications (the same comparison run again on other practice and evaluation seeds)
    into one, written under ``out`` like :func:`compare`'s output; see ``pool_results``.

    Raises:
        FileNotFoundError: an input is missing.
        ValueError: an input is not a comparison's JSON, or the inputs are not replications.
    """
    results, names = _load(inputs, "compare-pool")
    return _write(pool_results(results, names), Path(out), n_boot)


def pair(
    base: str | Path, other: str | Path, out: str | Path, n_boot: int = 2000
) -> tuple[str, dict[str, Any]]:
    """Each method of ``other`` against the same method of ``base``, seed by seed (see
    ``pair_results``); writes ``pair.json`` and ``pair.txt`` under ``out``.

    Raises:
        FileNotFoundError: an input is missing.
        ValueError: an input is not a comparison's JSON, or the two would not pair.
    """
    (b, o), names = _load([base, other], "compare-pair")
    result = pair_results(b, o, (names[0], names[1]), n_boot)
    text = pair_table(result)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "pair.json", result)
    (out / "pair.txt").write_text(text + "\n")
    return text, result


def _load(inputs: list[str | Path], verb: str) -> tuple[list[dict[str, Any]], list[str]]:
    paths = [Path(p) / "compare.json" if Path(p).is_dir() else Path(p) for p in inputs]
    results = []
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"{verb}: {p} does not exist")
        try:
            r = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{verb}: {p} is not valid JSON ({e})") from e
        if not isinstance(r, dict) or not {"config", "runs"} <= r.keys():
            raise ValueError(f"{verb}: {p} is not the compare.json of `rlpost compare`")
        results.append(r)
    return results, [str(p) for p in paths]


def _write(result: dict[str, Any], out: Path, n_boot: int) -> tuple[str, dict[str, Any]]:
    text, numbers = tables(result, n_boot)
    result["differences"] = numbers.pop("differences")  # every method minus control, both intervals
    result["tables"] = numbers
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "compare.json", result)
    plot_curves(result, out / "curves.png")
    (out / "tables.txt").write_text(text + "\n")
    return text, result
