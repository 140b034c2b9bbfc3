"""Fault of the robot side: the robot-server killed mid-episode and brought back (``robot_server_kill``)."""

from __future__ import annotations

import time
from pathlib import Path

from actors.config import ActorConfig, BridgeConfig, ControlConfig
from rlpost.fault_scenarios.common import (
    MAX_STEPS,
    Assets,
    _check,
    _result,
    _run_in_thread,
    stored_steps,
    wal_steps,
)
from rlpost.fault_scenarios.harness import FaultRun, RobotServerProcess, wait_until


def robot_server_kill(assets: Assets, work: Path) -> FaultRun:
    """SIGKILL the robot-server mid-episode and bring it back on the same port.

    The episode ends aborted with every step kept (the one in flight too: its result is
    unknown); the actor reconnects by itself and practises on. Recorded: the actor's count
    (the killed server's count died with it); the new server's count must match the steps
    recorded after the reconnect. Recovery: from the kill until the robot's next reset.
    """
    from actors.runner import RobotRunner

    server = RobotServerProcess("robot-rs", work / "logs", max_steps=MAX_STEPS)
    store_dir = work / "store"
    cfg = ActorConfig(
        robot_id="robot-rs", robot="zmq", endpoint=server.endpoint, policy=assets.policy, store=str(store_dir),
        session_id="faults", control=ControlConfig(realtime=False, execute=4, lead_steps=2),
        bridge=BridgeConfig(timeout_s=1.0), reconnect_timeout_s=60.0,
    )  # fmt: skip
    runner = RobotRunner.from_config(cfg)
    server2: RobotServerProcess | None = None
    try:
        th, out = _run_in_thread(lambda: runner.run(2))
        wait_until(lambda: wal_steps(store_dir, "robot-rs") >= 5, 120, "robot-rs mid-episode")
        server.kill()
        t_kill = time.monotonic()
        time.sleep(0.5)  # the robot is away for a moment
        server2 = RobotServerProcess("robot-rs", work / "logs", port=server.port, max_steps=MAX_STEPS)
        wait_until(lambda: server2.health().resets >= 1, 120, "the actor's reconnect", every_s=0.05)
        recovery_s = time.monotonic() - t_kill
        reports = _result(th, out, 120, "the robot runner after the server kill")
        after = server2.health().steps
        status = runner.status()
    finally:
        runner.close()
        server.close()
        if server2 is not None:
            server2.close()
    recorded = sum(r.steps for r in reports)
    stored, metas = stored_steps(store_dir)
    first = reports[0] if reports else None
    ok, detail = _check(
        {
            "the episode ended aborted (robot_disconnected)": first is not None
            and (first.meta.outcome, first.end_reason) == ("aborted", "robot_disconnected"),
            "its steps were kept": first is not None and metas[0].length == first.steps >= 5,
            "the actor reconnected and practised on": len(reports) == 2 and status.reconnects >= 1,
            "steps after the reconnect == the new server's count": len(reports) == 2
            and reports[1].steps == after,
            "steps recorded == steps stored": recorded == stored,
        }
    )
    return FaultRun("robot_server_kill", ok, "steps", recorded, stored, recovery_s, detail)
