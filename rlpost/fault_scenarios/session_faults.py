"""Faults of a practice session on Ray: a robot actor killed (``actor_kill``), and the whole
session's driver killed and resumed (``session_resume``, with the driver child it kills).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from rlpost.data import EpisodeStore
from rlpost.fault_scenarios.common import (
    MAX_STEPS,
    Assets,
    _check,
    _result,
    _run_in_thread,
    practice_cfg,
    stop_mid_episode,
    stored_steps,
    wals_unlocked,
    watch_hold,
)
from rlpost.fault_scenarios.harness import FaultRun, RobotServerProcess, child_command, wait_until
from rlpost.metrics import read_metrics
from rlpost.session import Session


def _pid(actor: Any) -> int:
    return os.getpid()


def actor_kill(assets: Assets, work: Path) -> FaultRun:
    """SIGKILL a robot actor's process mid-episode, with a step in flight at its robot.

    Ray restarts the actor; its episode is recovered from the WAL as aborted; the robot gets
    no command until the new actor resets it; the session reaches its budget.
    Recovery: from the kill until the robot's next reset by the restarted actor.
    """
    import ray

    budget = 8  # reported episodes; the killed episode is stored besides them
    servers = [RobotServerProcess(f"robot-{i}", work / "logs", max_steps=MAX_STEPS) for i in range(2)]
    store_dir = work / "session" / "store"
    try:
        session = Session(
            practice_cfg(
                assets, work / "session", [s.endpoint for s in servers], learn=False, episodes=budget
            )
        )
        session.start()
        th, out = _run_in_thread(session.run)
        victim, server = session.robots[0], servers[0]
        pid = ray.get(victim.actor.__ray_call__.remote(_pid), timeout=60)
        stop_mid_episode(server, store_dir, victim.robot_id)
        os.kill(pid, signal.SIGKILL)
        server.signal(signal.SIGCONT)  # the step in flight reaches the robot; its reply goes nowhere
        held, recovery_s = watch_hold(server)
        summary = _result(th, out, 300, "the session after the actor kill")
        recorded = sum(s.health().steps for s in servers)
        stored, metas = stored_steps(store_dir, source="autonomous")
        rec = [m for m in metas if m.extra.get("recovered") == "true"]
        seeds = [m.seed for m in metas if m.robot_id == victim.robot_id]
        ok, detail = _check(
            {
                "session reached its budget": summary.stopped_by == "budget" and summary.episodes == budget,
                # the old process is dead, so the reset came from the actor Ray restarted
                "Ray restarted the actor, once": victim.restarts == 1,
                "one recovered aborted episode of the killed robot": [(m.robot_id, m.outcome) for m in rec]
                == [(victim.robot_id, "aborted")],
                "the killed episode kept its steps": bool(rec) and rec[0].length >= 5,
                "robot held (no command) until the restarted actor reset it": held,
                "steps executed == steps stored": recorded == stored,
                "no seed repeated after the restart": len(set(seeds)) == len(seeds),
            }
        )
        return FaultRun("actor_kill", ok, "steps", recorded, stored, recovery_s, detail)
    finally:
        for s in servers:
            s.close()


def session_resume(assets: Assets, work: Path) -> FaultRun:
    """SIGKILL a whole session's driver (and so its robot actors and learner), then resume=true.

    The driver runs in its own process joined to this Ray. The resumed session recovers the
    in-flight episodes, the learner resumes from its checkpoint, budgets count what the
    directory holds, and the session id and seeds continue.
    Recovery: from the kill until the resumed session's robots are up.
    """
    import ray

    servers = [RobotServerProcess(f"robot-{i}", work / "logs", max_steps=MAX_STEPS) for i in range(2)]
    out_dir, store_dir = work / "session", work / "session" / "store"
    endpoints = [s.endpoint for s in servers]
    args = {"assets": [assets.policy, assets.demos], "out": str(out_dir), "endpoints": endpoints}
    args["address"] = ray.get_runtime_context().gcs_address
    try:
        with open(work.parent / f"{work.name}-driver.log", "w") as err:
            child = subprocess.Popen(child_command("session", args), stdout=err, stderr=err)
            try:
                ckpt = out_dir / "learner" / "checkpoints" / "last" / "training_state.json"
                wait_until(lambda: ckpt.exists() and _practice_episodes(store_dir) >= 2, 300, "first updates")
                stop_mid_episode(servers[0], store_dir, "robot-0", min_steps=3)
                servers[1].signal(signal.SIGSTOP)
                time.sleep(0.3)
                os.kill(child.pid, signal.SIGKILL)
                t_kill = time.monotonic()
                child.wait(30)
            finally:
                if child.poll() is None:
                    child.kill()
        wait_until(lambda: wals_unlocked(store_dir), 120, "the killed session's actors to die")
        for s in servers:
            s.signal(signal.SIGCONT)  # pending steps reach the robots; their replies go nowhere
        in_flight = len(list((store_dir / "wal").glob("*.wal")))
        ckpt_step = json.loads(ckpt.read_text())["step"]
        prior = _practice_episodes(store_dir) + in_flight
        session = Session(
            practice_cfg(assets, out_dir, endpoints, learn=True, episodes=prior + 2, resume=True)
        )
        session.start()
        recovery_s = time.monotonic() - t_kill
        summary = session.run()
        recorded = sum(s.health().steps for s in servers)
        stored, metas = stored_steps(store_dir, source="autonomous")
        runs = json.loads((out_dir / "session.json").read_text())["runs"]
        steps = [r["step"] for r in read_metrics(out_dir / "learner") if "learner/loss" in r]
        heads = sorted(int(m.group(1)) for p in (out_dir / "learner" / "heads").iterdir()
                       if (m := re.match(r"head-(\d+)\.safetensors$", p.name)))  # fmt: skip
        seeds = [(m.robot_id, m.seed) for m in metas]
        ok, detail = _check(
            {
                "the resumed session reached its budget": summary.stopped_by == "budget"
                and summary.episodes == 2,
                "same session, a second run": len(runs) == 2 and runs[1].get("stopped_by") == "budget",
                "in-flight episodes recovered as aborted": in_flight >= 1
                and sum(m.extra.get("recovered") == "true" for m in metas) >= in_flight,
                "learner resumed from its checkpoint": summary.learner_step >= ckpt_step,
                "no learner update step logged twice": len(steps) == len(set(steps))
                and steps == sorted(steps),
                "head versions 1..N, none skipped or repeated": heads == list(range(1, len(heads) + 1)),
                "steps executed == steps stored": recorded == stored,
                "no seed repeated": len(set(seeds)) == len(seeds),
            }
        )
        return FaultRun(
            "session_resume",
            ok,
            "steps",
            recorded,
            stored,
            recovery_s,
            f"{detail}; checkpoint step {ckpt_step}",
        )
    finally:
        for s in servers:
            s.close()


def _practice_episodes(store_dir: Path) -> int:
    if not (store_dir / "store.json").exists():
        return 0
    with EpisodeStore.open(store_dir, recover=False) as s:
        return len(s.episodes(source="autonomous"))


# --------------------------------------------------------------------- child processes
def _child_session(args: dict[str, Any]) -> int:
    """The driver of a practice session that the parent kills (budget: practically unlimited)."""
    assets = Assets(*args["assets"])
    cfg = practice_cfg(
        assets, Path(args["out"]), args["endpoints"], learn=True, episodes=10_000, address=args["address"]
    )
    Session(cfg).run()
    return 0
