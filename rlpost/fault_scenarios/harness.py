"""What every fault scenario uses: the record of one injection, a real robot-server subprocess, a
child process running one of :data:`rlpost.fault_scenarios.CHILDREN`, and bounded waiting.

It sits below the scenarios and below rlpost/faults.py (the bench that runs them), so neither
imports the other back.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from actors.config import BridgeConfig
from actors.zmq_robot import ZmqRobot
from rlpost.transport import Health


@dataclass(frozen=True)
class FaultRun:
    """One injection of one fault and what the system did about it."""

    fault: str
    survived: bool  # the session / process went on and every check of the scenario held
    unit: str  # what recorded and stored count: "steps" (robot steps) or "updates" (learner)
    recorded: int  # steps the robots executed (counted by their robot-servers) or updates applied
    stored: int  # steps in the store after recovery, or distinct update steps in the learner's log
    recovery_s: float  # from the fault until the system was back at work (see each scenario)
    detail: str = ""  # what the scenario saw (end reason, restarts, resumed step, error text)


# ------------------------------------------------------------------------------ processes
class RobotServerProcess:
    """A simulated robot behind a real `robot-server` subprocess; it outlives actor-side faults."""

    def __init__(self, robot_id: str, log_dir: Path, port: int = 0, max_steps: int = 40) -> None:
        self.robot_id, self.max_steps, self.log_dir = robot_id, max_steps, log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self._err: IO[str] = open(log_dir / f"robot-server-{robot_id}.log", "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "actors.robot_server", "--driver", "tabletop", "--robot-id", robot_id,
             "--set", "image_size=32", "--set", f"max_steps={max_steps}", "--port", str(port)],
            stdout=subprocess.PIPE, stderr=self._err, text=True,
        )  # fmt: skip
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if "listening on" not in line:
            raise RuntimeError(f"robot-server {robot_id!r} did not start (see {self._err.name}): {line!r}")
        self.endpoint = line.split()[-1]
        self.port = int(self.endpoint.rsplit(":", 1)[1])
        self._client: ZmqRobot | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def health(self) -> Health:
        """The server's own counters (steps executed, resets) over a separate connection."""
        if self._client is None:
            self._client = ZmqRobot(
                self.endpoint, BridgeConfig(timeout_s=10.0), f"fault-probe-{self.robot_id}"
            )
        return self._client.health()

    def signal(self, sig: signal.Signals) -> None:
        os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL and reap the server; the probe's socket is dropped with it."""
        if self.proc.poll() is None:
            self.signal(signal.SIGKILL)
        self.proc.wait(30)
        if self._client is not None:
            self._client.close()
            self._client = None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._client is not None:
            self._client.close()
            self._client = None
        self._err.close()


def child_command(kind: str, args: dict[str, Any]) -> list[str]:
    """The argv that runs :func:`child_main` for ``kind`` in a fresh Python process."""
    return [sys.executable, "-m", "rlpost.faults", kind, json.dumps(args)]


def wait_until(cond: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.02) -> float:
    """Poll ``cond`` until true; returns the seconds waited.

    Raises:
        TimeoutError: not true within ``timeout_s``; names ``what``.
    """
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError(f"fault bench: {what} did not happen within {timeout_s:.0f} s")
        time.sleep(every_s)
    return time.monotonic() - t0
