"""How many bad-input cases each family of tests tried, and what became of each (issue 10's table).

Tests marked ``badinput`` call :func:`tally` once per generated case, after asserting
what happened to it, so the counts come from the run itself. ``pytest -m badinput``
prints the table at the end (hook imported by tests/conftest.py);
``python -m tests.badinput_report`` runs those tests and prints it with a JSON copy.
"""

from __future__ import annotations

import collections
from typing import Literal

# refused: a clear error naming what and where. handled: no error because the system made it
# safe as designed (clipped or held an action, kept the intact prefix of a torn WAL, a flip in
# bytes the format cannot check). Anything else fails the test, so it never reaches the tally.
Outcome = Literal["refused", "handled"]

TALLY: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)


def tally(family: str, outcome: Outcome) -> None:
    """Count one case of ``family`` (call it after the case's assertions passed)."""
    TALLY[family][outcome] += 1


def rows() -> list[dict[str, object]]:
    return [
        {"family": f, "tried": sum(c.values()), "refused": c["refused"], "handled": c["handled"]}
        for f, c in sorted(TALLY.items())
    ]


def table() -> str:
    r = rows()
    width = max([len("family"), *(len(str(x["family"])) for x in r)])
    lines = [f"{'family':<{width}}  {'tried':>6}  {'refused':>7}  {'handled':>7}", "-" * (width + 28)]
    lines += [f"{x['family']:<{width}}  {x['tried']:>6}  {x['refused']:>7}  {x['handled']:>7}" for x in r]
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ARG001 (pytest hook)
    if TALLY:
        terminalreporter.write_sep("=", "bad input: cases tried / refused with a clear error / handled safely")
        terminalreporter.write_line(table())
