"""Short registered names (policy=tiny, task=tabletop) and the error a typo gets."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def unknown_name_error(kind: str, name: str, choices: Iterable[str]) -> ValueError:
    """``ValueError: unknown task 'tabeltop'; did you mean 'tabletop'? (choices: [...])``."""
    choices = sorted(choices)
    near = difflib.get_close_matches(name, choices, n=1, cutoff=0.4)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    return ValueError(f"unknown {kind} {name!r}{hint} (choices: {choices})")
