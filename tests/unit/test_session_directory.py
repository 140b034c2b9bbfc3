"""The session directory's bookkeeping: one session per directory, runs recorded, resume only onto one."""

from __future__ import annotations

import json
import logging

import pytest

from rlpost.session import SessionError
from rlpost.session.directory import SessionDirectory


def test_a_run_is_recorded_from_start_to_stop_and_resume_keeps_the_session_id(tmp_path):
    out = tmp_path / "s"
    first = SessionDirectory(out)
    sid = first.open({"robots": 2}, resume=False)
    logging.getLogger("rlpost.test").warning("into the session log")
    first.close({"episodes": 7}, "budget")
    doc = json.loads((out / "session.json").read_text())
    assert doc["session_id"] == sid and sid.startswith("session-")
    assert doc["config"] == {"robots": 2} and doc["runs"][0]["stopped_by"] == "budget"
    assert doc["runs"][0]["stopped"] >= doc["runs"][0]["started"]
    assert json.loads((out / "summary.json").read_text()) == {"episodes": 7}
    assert "into the session log" in (out / "session.log").read_text()
    logging.getLogger("rlpost.test").warning("after close")
    assert "after close" not in (out / "session.log").read_text()  # the handler is gone

    again = SessionDirectory(out)
    assert again.open({"robots": 4}, resume=True) == sid
    again.close({"episodes": 9}, "interrupt")
    doc = json.loads((out / "session.json").read_text())
    assert [r["stopped_by"] for r in doc["runs"]] == ["budget", "interrupt"]
    assert doc["config"] == {"robots": 4}  # the latest run's


def test_a_second_session_into_one_directory_and_resume_without_one_are_refused(tmp_path):
    out = tmp_path / "s"
    with pytest.raises(SessionError, match=r"resume=true but .* holds no session"):
        SessionDirectory(out).open({}, resume=True)
    d = SessionDirectory(out)
    d.open({}, resume=False)
    d.close({}, "budget")
    before = (out / "session.json").read_text()
    with pytest.raises(SessionError, match="already holds a session; pass resume=true"):
        SessionDirectory(out).open({}, resume=False)
    assert (out / "session.json").read_text() == before  # the refused run leaves the record alone


def test_closing_a_directory_that_was_never_opened_writes_nothing(tmp_path):
    SessionDirectory(tmp_path / "s").close({"episodes": 0}, "error")
    assert not (tmp_path / "s").exists()
