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
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlpost.fault_scenarios.harness import FaultRun
from rlpost.names import unknown_name_error

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
