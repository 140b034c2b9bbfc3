"""Every committed study page is what `rlpost compare-page` renders from the comparison beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlpost.cli import main
from rlpost.compare.page import PAGE_FILE, STUDY_FILE, render_page

RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"
STUDIES = sorted(p.parent for p in RESULTS.glob(f"*/{STUDY_FILE}"))


@pytest.mark.parametrize("folder", STUDIES, ids=[p.name for p in STUDIES])
def test_a_committed_page_is_rendered_from_its_compare_json_not_typed(folder):
    assert (folder / PAGE_FILE).read_text() == render_page(folder), (
        f"{folder / PAGE_FILE} differs from its compare.json: run `rlpost compare-page {folder}`"
    )


def test_compare_page_names_what_is_missing(tmp_path, capsys):
    assert main(["compare-page", str(tmp_path)]) == 2
    assert "compare.json" in capsys.readouterr().err
