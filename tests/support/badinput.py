"""How many bad-input cases each family of tests tried, and what became of each (issue 10's table).

Tests marked ``badinput`` call :func:`tally` once per generated case, after asserting
what happened to it, so the counts come from the run itself. ``pytest -m badinput``
prints the table at the end (hook imported by tests/conftest.py);
``python -m tests.support.badinput_report`` runs those tests and prints it with a JSON copy.
"""

from __future__ import annotations

import collections
from typing import Literal

# refused: a clear error naming what and where. handled: no error because the system made it
# safe as designed (clipped an action, kept the intact prefix of a torn WAL). undetected: the
# damage loaded without an error (bytes the format has no checksum for); reported, not hidden.
# Anything else (another exception type, lost data) fails the test and never reaches the tally.
Outcome = Literal["refused", "handled", "undetected"]

TALLY: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)


def tally(family: str, outcome: Outcome) -> None:
    """Count one case of ``family`` (call it after the case's assertions passed)."""
    TALLY[family][outcome] += 1


def rows() -> list[dict[str, object]]:
    return [
        {
            "family": f,
            "tried": sum(c.values()),
            "refused": c["refused"],
            "handled": c["handled"],
            "undetected": c["undetected"],
        }
        for f, c in sorted(TALLY.items())
    ]


def table() -> str:
    r = rows()
    width = max([len("family"), *(len(str(x["family"])) for x in r)])
    cols = ("tried", "refused", "handled", "undetected")
    lines = [f"{'family':<{width}}" + "".join(f"  {c:>10}" for c in cols), "-" * (width + 12 * len(cols))]
    lines += [f"{x['family']:<{width}}" + "".join(f"  {x[c]:>10}" for c in cols) for x in r]
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # the pytest hook's signature
    if TALLY:
        terminalreporter.write_sep(
            "=", "bad input cases: refused with a clear error / handled safely / undetected"
        )
        terminalreporter.write_line(table())
