"""Run the bad-input tests and print the table of cases tried and refused per family.

    python -m tests.support.badinput_report [--json badinput.json]

The counts come from this run (see tests/badinput.py); a failing test makes the exit
status non-zero and the table is still printed for what ran.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

from tests import badinput


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tests.support.badinput_report", description=__doc__.splitlines()[0]
    )
    p.add_argument("--json", default="", help="also write the rows here")
    args = p.parse_args(argv)
    files = sorted(str(f) for f in Path(__file__).parent.glob("*/test_badinput_*.py"))
    status = pytest.main([*files, "-m", "badinput", "-q", "-p", "no:cacheprovider"])
    print()
    print(badinput.table())
    if args.json:
        Path(args.json).write_text(
            json.dumps({"rows": badinput.rows(), "pytest_status": int(status)}, indent=1)
        )
        print(f"wrote {args.json}")
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
