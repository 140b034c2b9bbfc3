"""`rlpost bench faults`: inject each reliability fault N times with real processes and report.

    rlpost bench faults times=3                  # every fault, 3 injections each
    rlpost bench faults faults=[disk_full] times=5

Every fault is a real process killed with SIGKILL (a Ray robot actor, the learner, a
robot-server, a store writer, a whole session's driver) or a real write refused by the
kernel (a file size limit, ``RLIMIT_FSIZE``, stands in for a full disk without root).
Robots are simulated robots behind real ``robot-server`` processes, so the steps a robot
executed are counted on the robot's side and survive any fault of the actor's side;
they are compared with the steps the episode store holds after recovery.

The scenarios live in :mod:`rlpost.fault_scenarios`; the tests in tests/ call the same
functions with one injection each. Like :mod:`rlpost.session`, this is wiring: it is
allowed to import actors/ and learner/.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from actors.config import BridgeConfig
from actors.zmq_robot import ZmqRobot
from rlpost.names import unknown_name_error
from rlpost.transport import Health

log = logging.getLogger(__name__)

FAULTS = (
    "actor_kill",
    "learner_kill",
    "robot_server_kill",
    "store_writer_kill",
    "disk_full",
    "session_resume",
)


@dataclass
class FaultsConfig:
    """Settings of `rlpost bench faults`."""

    faults: list[str] = field(default_factory=lambda: list(FAULTS))
    times: int = 3  # injections of each fault (each in a fresh session / process)
    out: str = "runs/faults"  # work directory: tiny policy, stores, logs, results.json
    threads: int = 1  # torch threads of this process and the learner

    def __post_init__(self) -> None:
        for f in self.faults:
            if f not in FAULTS:
                raise unknown_name_error("faults", f, FAULTS)
        if self.times < 1:
            raise ValueError(f"times={self.times} must be >= 1")


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


# ------------------------------------------------------------------------------- the table
def summarise(runs: list[FaultRun]) -> list[dict[str, Any]]:
    """One row per fault: injections, sessions survived, recorded vs stored, recovery time."""
    rows = []
    for fault in dict.fromkeys(r.fault for r in runs):
        rs = [r for r in runs if r.fault == fault]
        rec = sorted(r.recovery_s for r in rs if r.recovery_s == r.recovery_s) or [float("nan")]  # no NaN
        rows.append(
            {
                "fault": fault,
                "injected": len(rs),
                "survived": sum(r.survived for r in rs),
                "unit": rs[0].unit,
                "recorded": sum(r.recorded for r in rs),
                "stored": sum(r.stored for r in rs),
                "equal": all(r.recorded == r.stored for r in rs),
                "recovery_s_median": rec[len(rec) // 2],
                "recovery_s_max": rec[-1],
            }
        )
    return rows


def run_faults(cfg: FaultsConfig, on_run: Callable[[FaultRun], None] | None = None) -> dict[str, Any]:
    """Inject every fault of ``cfg`` ``cfg.times`` times; returns {"rows", "runs", "setup"}.

    A scenario that raises counts as not survived, with the error as its detail.
    """
    import torch

    from rlpost.fault_scenarios import SCENARIOS, make_assets

    torch.set_num_threads(cfg.threads)
    root = Path(cfg.out)
    assets = make_assets(root / "assets")
    runs: list[FaultRun] = []
    needs_ray = any(f in ("actor_kill", "session_resume") for f in cfg.faults)
    ray_mod = _start_ray() if needs_ray else None
    try:
        for fault in cfg.faults:
            for i in range(cfg.times):
                work = root / f"{fault}-{i}-{os.getpid()}-{time.time_ns()}"
                try:
                    run = SCENARIOS[fault](assets, work)
                except Exception as e:  # one failed injection is a row of the table, not the end
                    log.exception("fault %s injection %d failed", fault, i)
                    run = FaultRun(fault, False, "steps", 0, 0, float("nan"), f"{type(e).__name__}: {e}")
                runs.append(run)
                if on_run is not None:
                    on_run(run)
    finally:
        if ray_mod is not None:
            ray_mod.shutdown()
    return {
        "rows": summarise(runs),
        "runs": [dataclasses.asdict(r) for r in runs],
        "setup": {"times": cfg.times, "threads": cfg.threads, "cpus": os.cpu_count()},
    }


def _start_ray() -> Any:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # the session driver child joins this Ray
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=8, include_dashboard=False, log_to_driver=False)
    return ray


def child_main(argv: list[str]) -> int:
    """Entry of the helper processes the scenarios start (``python -m rlpost.faults KIND JSON``)."""
    from rlpost.fault_scenarios import CHILDREN

    kind, args = argv[0], json.loads(argv[1])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return CHILDREN[kind](args)


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
