"""A real `rlpost robot-server` subprocess of the tabletop sim on a free loopback port."""

from __future__ import annotations

import os
import subprocess
import sys

SIM = ["--set", "image_size=32", "--set", "max_steps=20"]


def start_server(port: int = 0) -> tuple[subprocess.Popen, str]:
    """Start it (``port`` 0: any free one); returns the process and its endpoint."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "actors.robot_server", "--driver", "tabletop", *SIM, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    line = proc.stdout.readline()  # "robot-server robot-0 listening on tcp://127.0.0.1:PORT"
    assert "listening on" in line, f"robot-server did not start: {line!r}"
    return proc, line.split()[-1]
