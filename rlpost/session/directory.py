"""A practice session's directory bookkeeping: the ``session.json`` marker (session id, one entry
per run with its start and stop, the latest run's config), ``session.log`` and ``summary.json``.

The layout of the whole directory is the package docstring's (:mod:`rlpost.session`).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any

from rlpost.report import write_json
from rlpost.session.robots import SessionError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class SessionDirectory:
    """``open`` claims (or, on resume, re-opens) ``out`` for a run; ``close`` records how it ended."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.marker = out / "session.json"
        self.session_id = ""
        self.opened = False
        self._log_handler: logging.Handler | None = None

    def open(self, config: dict[str, Any], resume: bool) -> str:
        """Record a new run (with ``config``) and start logging to ``session.log``; returns the
        session id (new, or the resumed session's).

        Raises:
            SessionError: ``out`` holds a session and ``resume`` is false, or ``resume`` without one.
        """
        if self.marker.exists() and not resume:
            raise SessionError(f"{self.out} already holds a session; pass resume=true to continue it")
        if resume and not self.marker.exists():
            raise SessionError(f"resume=true but {self.out} holds no session (no session.json)")
        self.out.mkdir(parents=True, exist_ok=True)
        doc = (
            json.loads(self.marker.read_text())
            if self.marker.exists()
            else {"session_id": f"session-{uuid.uuid4().hex[:8]}", "runs": []}
        )
        self.session_id = doc["session_id"]
        doc["runs"].append({"started": time.time()})
        doc["config"] = config
        write_json(self.marker, doc)
        self.opened = True
        self._log_handler = logging.FileHandler(self.out / "session.log")
        self._log_handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logging.getLogger().addHandler(self._log_handler)
        return self.session_id

    def close(self, summary: dict[str, Any], stopped_by: str) -> None:
        """Write ``summary.json``, the run's stop time and cause into the marker; stop logging to
        ``session.log``. Does nothing if the directory was never opened (a refused start)."""
        if not self.opened:
            return
        write_json(self.out / "summary.json", summary)
        doc = json.loads(self.marker.read_text())
        doc["runs"][-1].update({"stopped": time.time(), "stopped_by": stopped_by})
        write_json(self.marker, doc)
        if self._log_handler is not None:
            logging.getLogger().removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None
