"""Config schemas of the operator console (registered with Hydra by rlpost.cli)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ConsoleConfig:
    """The console a practice session serves (``console.*`` of ``rlpost practice``)."""

    enabled: bool = False  # configs/practice.yaml turns it on for `rlpost practice`
    host: str = "127.0.0.1"  # loopback: reach it from elsewhere through an SSH tunnel
    port: int = 0  # 0: a free port (printed at start, and written to <out>/console.json)
    token: str = ""  # "": a fresh random token per start; every request must carry it
    refresh_s: float = 1.0  # the page and the robots' snapshots refresh this often
    progress_every_s: float = 2.0  # reward-model progress estimates of each robot (0: off)
    idle_after_s: float = 15.0  # no page asked for this long: stop polling the robots
    recent_episodes: int = 100  # the success chart covers the fleet's last N episodes
    operator_id: str = "console"  # recorded as who sent the commands

    def __post_init__(self) -> None:
        if not 0 <= self.port < 65536:
            raise ValueError(f"console.port={self.port} is not a TCP port (0: a free one)")
        if self.refresh_s <= 0 or self.idle_after_s <= 0:
            raise ValueError(
                f"console.refresh_s={self.refresh_s} and idle_after_s={self.idle_after_s} must be > 0"
            )
        if self.progress_every_s < 0:
            raise ValueError(f"console.progress_every_s={self.progress_every_s} must be >= 0 (0: off)")
        if self.token and len(self.token) < 16:
            raise ValueError("console.token must be at least 16 characters (or empty for a random one)")
        if self.recent_episodes < 1:
            raise ValueError(f"console.recent_episodes={self.recent_episodes} must be >= 1")
        if not self.operator_id:
            raise ValueError("console.operator_id must not be empty")


@dataclass
class ConsoleAttachConfig:
    """`rlpost console`: the address of a running session's console."""

    session: str = "runs/practice"  # the session directory (`out` of rlpost practice)
    open: bool = False  # also open it in the default web browser
