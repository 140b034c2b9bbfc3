"""The faults of `rlpost bench faults`, one function per fault, each one real injection.

Each scenario builds what it needs under ``work``, injects its fault into real processes,
waits for the system to recover, checks what a user relies on, and returns a
:class:`rlpost.faults.FaultRun`. A failed check is ``survived=False`` with the reason
in ``detail`` (tests assert on it). Robot-side counts come from ``robot-server``
processes, which no actor-side fault touches.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actors.config import ActorConfig, BridgeConfig, ControlConfig
from learner.config import LearnerConfig, ReplayConfig
from rlpost.data import EpisodeStore
from rlpost.data.durable_files import try_lock
from rlpost.data.wal import read_wal, read_wal_meta
from rlpost.faults import FaultRun, RobotServerProcess, child_command, wait_until
from rlpost.metrics import LoggerConfig, read_metrics
from rlpost.schema import EpisodeMeta, StepRecord
from rlpost.session import BudgetConfig, PracticeConfig, RayConfig, Session

IMAGE = 32
MAX_STEPS = 40  # steps per episode of the simulated robots


@dataclass(frozen=True)
class Assets:
    """What every scenario shares: a tiny VLA and a few demonstrations (for the learner)."""

    policy: str
    demos: str


def make_assets(root: Path) -> Assets:
    """Build (once per ``root``) a tiny untrained VLA for the tabletop sim and 4 scripted demos."""
    from rlpost.collect import CollectConfig, collect
    from rlpost.policy import VLA, ExpertConfig, PolicyConfig, TinyBackboneConfig, save_checkpoint
    from rlpost.sim import SimConfig

    policy, demos = root / "policy", root / "demos"
    if not (policy / "config.json").exists():
        tiny = TinyBackboneConfig(
            image_size=IMAGE, width=32, grid=4, keypoints=4, vision_depth=1, fusion_depth=1
        )
        vla = VLA(
            PolicyConfig(
                state_dim=6,
                action_dim=3,
                horizon=8,
                num_steps=2,
                cameras=["top"],
                tiny=tiny,
                expert=ExpertConfig(width=32, depth=1),
            )
        )
        save_checkpoint(vla, policy)
    if not (demos / "store.json").exists():
        sim = SimConfig(image_size=IMAGE, max_steps=30)
        collect(CollectConfig(episodes=4, out=str(demos), sim=sim, progress=False))
    return Assets(str(policy), str(demos))


def practice_cfg(
    assets: Assets, out: Path, endpoints: list[str], *, learn: bool, episodes: int, resume: bool = False,
    address: str = "",
) -> PracticeConfig:  # fmt: skip
    """A practice session of robots behind robot-servers; with ``learn`` a bc_all learner (no reward model)."""
    return PracticeConfig(
        out=str(out),
        policy_checkpoint=assets.policy,
        demos=assets.demos if learn else "",
        robot_ids=[f"robot-{i}" for i in range(len(endpoints))],
        robots=len(endpoints),
        endpoints=list(endpoints),
        actor=ActorConfig(
            policy=assets.policy,
            robot="zmq",
            endpoint=endpoints[0],
            control=ControlConfig(realtime=False, execute=4, lead_steps=2),
            bridge=BridgeConfig(timeout_s=5.0),  # a robot-server held by SIGSTOP for a moment is not gone
        ),
        learn=learn,
        learner=LearnerConfig(
            mode="bc_all", batch_size=8, publish_every=2, replay=ReplayConfig(demo_fraction=0.5)
        ),
        learn_after=1,
        updates_per_cycle=2,
        max_updates_per_episode=1.0,
        budget=BudgetConfig(episodes=episodes),
        ray=RayConfig(address=address, actor_num_cpus=0.5),
        resume=resume,
        status_every_s=0.0,
        stop_timeout_s=60.0,
        logger=LoggerConfig(wandb_mode="disabled"),
    )


# ------------------------------------------------------------------------------- helpers
def wal_steps(store_dir: Path, robot_id: str) -> int:
    """Steps in the robot's in-flight episode (-1: none in flight)."""
    for p in sorted((store_dir / "wal").glob("*.wal")):
        try:
            if read_wal_meta(p).robot_id == robot_id:
                return len(read_wal(p).steps)
        except FileNotFoundError:  # finished meanwhile
            continue
    return -1


def wals_unlocked(store_dir: Path) -> bool:
    """True when no live process holds an in-flight WAL of the store (its writers are dead)."""
    for p in (store_dir / "wal").glob("*.wal"):
        try:
            fd = os.open(p, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            if not try_lock(fd):
                return False
        finally:
            os.close(fd)  # closing drops the probe's own lock at once
    return True


def stop_mid_episode(
    server: RobotServerProcess, store_dir: Path, robot_id: str, min_steps: int = 5, timeout_s: float = 180.0
) -> None:
    """SIGSTOP the robot-server once its robot is mid-episode with a step request pending.

    The actor then waits on the robot with one step in flight, recorded before it was sent;
    a fault injected now is the worst case for "a step executed is a step stored".
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        wait_until(lambda: wal_steps(store_dir, robot_id) >= min_steps, timeout_s, f"{robot_id} mid-episode")
        server.signal(signal.SIGSTOP)
        time.sleep(0.3)  # the actor sends its next request and blocks on the reply
        if 0 < wal_steps(store_dir, robot_id) < MAX_STEPS:
            return
        server.signal(signal.SIGCONT)  # the episode ended meanwhile: try the next one
    raise TimeoutError(f"{robot_id}: never caught mid-episode within {timeout_s:.0f} s")


def watch_hold(server: RobotServerProcess, timeout_s: float = 180.0) -> tuple[bool, float]:
    """After an actor died: wait for the robot's next reset; (no step reached it meanwhile, seconds)."""
    t0 = time.monotonic()
    first = server.health()
    held = True
    while True:
        h = server.health()
        if h.resets > first.resets:
            return held, time.monotonic() - t0
        held &= h.steps == first.steps
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError(
                f"robot-server {server.robot_id}: no reset within {timeout_s:.0f} s of the fault"
            )
        time.sleep(0.05)


def stored_steps(store_dir: Path, **filters: Any) -> tuple[int, list[EpisodeMeta]]:
    """(total steps, metas) of the store's finished episodes after recovery; checks every file."""
    with EpisodeStore.open(store_dir) as store:
        metas = store.episodes(**filters)
        for m in metas:
            store.verify(m.episode_id)  # no corrupt episode is visible
        left = list((store_dir / "wal").glob("*.wal"))
    if left:
        raise AssertionError(f"{store_dir}: WALs left after recovery: {left}")
    return sum(m.length for m in metas), metas


def _check(checks: dict[str, bool]) -> tuple[bool, str]:
    failed = [k for k, ok in checks.items() if not ok]
    return not failed, "all checks held" if not failed else "FAILED: " + ", ".join(failed)


def _run_in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def body() -> None:
        try:
            out.append(fn())
        except BaseException as e:  # handed to the caller, which re-raises or reports it
            out.append(e)

    th = threading.Thread(target=body, name="fault-scenario", daemon=True)
    th.start()
    return th, out


def _result(th: threading.Thread, out: list[Any], timeout_s: float, what: str) -> Any:
    th.join(timeout_s)
    if th.is_alive() or not out:
        raise TimeoutError(f"{what} did not finish within {timeout_s:.0f} s")
    if isinstance(out[0], BaseException):
        raise out[0]
    return out[0]


def _pid(actor: Any) -> int:
    return os.getpid()


# ------------------------------------------------------------------------------ scenarios
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


def learner_kill(assets: Assets, work: Path, updates: int = 40, publish_every: int = 4) -> FaultRun:
    """SIGKILL `rlpost learn` mid-update, then run the same command again.

    It resumes from its last checkpoint, redoes the updates lost with the process, logs
    each update step once, and publishes versions 1..N with none skipped or repeated.
    Recovery: from the restart until its first update after the checkpoint is logged.
    """
    out = work / "learn"
    cmd = [sys.executable, "-m", "rlpost.cli", "learn", f"store={assets.demos}", f"policy={assets.policy}",
           f"out={out}", f"updates={updates}", "learner.mode=bc_all", "learner.batch_size=8",
           f"learner.publish_every={publish_every}", "threads=1", "progress=false", "logger.wandb_mode=disabled"]  # fmt: skip
    work.mkdir(parents=True, exist_ok=True)
    logs = [work / "learn-1.log", work / "learn-2.log"]
    kill_after = random.randint(publish_every + 1, updates - publish_every - 1)
    with open(logs[0], "w") as err:
        p = subprocess.Popen(cmd, stdout=err, stderr=err)
        try:
            wait_until(
                lambda: _logged_steps(out)[-1:] >= [kill_after], 300, f"update {kill_after}", every_s=0.005
            )
            p.send_signal(signal.SIGKILL)
            p.wait(30)
        finally:
            if p.poll() is None:
                p.kill()
    killed_at = _logged_steps(out)[-1]
    t_restart = time.time()
    with open(logs[1], "w") as err:
        rc = subprocess.run(cmd, stdout=err, stderr=err, timeout=600).returncode
    text = logs[1].read_text()
    m = re.search(r"resumed at step (\d+), head version (\d+)", text)
    resumed = int(m.group(1)) if m else -1
    rows = read_metrics(out)
    after = [r["time"] for r in rows if r["step"] > resumed]
    recovery_s = after[0] - t_restart if after else float("nan")
    steps = [r["step"] for r in rows]
    from rlpost.policy.checkpoint import load_head_file

    heads = sorted((out / "heads").glob("head-*.safetensors"))
    versions = [load_head_file(h).version for h in heads]
    final = json.loads((out / "checkpoints" / "last" / "training_state.json").read_text())
    ok, detail = _check(
        {
            "the restart exited cleanly": rc == 0,
            "resumed from the last checkpoint (a multiple of publish_every, at or before the kill)": resumed
            >= 0
            and resumed % publish_every == 0
            and resumed <= killed_at,
            "each update step logged once, 1..N": steps == list(range(1, updates + 1)),
            "published versions 1..N in order": versions == list(range(1, updates // publish_every + 1)),
            "final checkpoint at the last update": final["step"] == updates,
        }
    )
    detail += f"; killed after update {killed_at}, resumed at step {resumed}"
    return FaultRun("learner_kill", ok, "updates", final["step"], len(set(steps)), recovery_s, detail)


def _logged_steps(run_dir: Path) -> list[int]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    steps = []
    for line in path.read_text().splitlines():
        try:
            steps.append(json.loads(line)["step"])
        except json.JSONDecodeError:  # a line being written
            break
    return steps


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


def store_writer_kill(assets: Assets, work: Path) -> FaultRun:
    """SIGKILL a process writing an episode (512 px frames, no pause: most kills land mid-append).

    The store opens afterwards with every acknowledged step, no corrupt episode and no WAL
    left; a torn last record is dropped. Recorded: appends the writer saw acknowledged (the
    one in flight may also be stored if it was completely written). Recovery: opening the store.
    """
    work.mkdir(parents=True, exist_ok=True)
    store_dir = work / "store"
    p = subprocess.Popen(
        child_command("writer", {"store": str(store_dir)}), stdout=subprocess.PIPE, text=True
    )
    kill_at = random.randint(5, 20)
    assert p.stdout is not None
    try:
        for line in p.stdout:
            if line.startswith("acked") and int(line.split()[1]) + 1 >= kill_at:
                break
        p.send_signal(signal.SIGKILL)
        lines = [line, *p.stdout.readlines()]  # acknowledgements already in the pipe count too
        p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
    acked = max(int(x.split()[1]) + 1 for x in lines if x.startswith("acked"))
    in_flight = lines[-1].startswith("begin")
    t0 = time.monotonic()
    stored, metas = stored_steps(store_dir)
    recovery_s = time.monotonic() - t0
    torn = metas[0].extra.get("torn_tail_bytes", "0") if metas else "?"
    ok, detail = _check(
        {
            "one recovered aborted episode": [(m.outcome, m.extra.get("recovered")) for m in metas]
            == [("aborted", "true")],
            "every acknowledged step stored": stored == acked or (in_flight and stored == acked + 1),
        }
    )
    detail += (
        f"; torn tail bytes dropped: {torn}; kill landed {'mid-append' if in_flight else 'between appends'}"
    )
    return FaultRun("store_writer_kill", ok, "steps", acked, stored, recovery_s, detail)


def disk_full(assets: Assets, work: Path, limit_bytes: int = 40_000) -> FaultRun:
    """A robot actor (its runner, in a child process) whose store hits a file size limit mid-episode.

    ``RLIMIT_FSIZE`` with SIGXFSZ ignored makes the kernel refuse writes (EFBIG) the way a full
    disk does (ENOSPC), without root. The store raises StoreFullError naming the file; the
    robot is held (no command reaches it); every step executed is stored; once the limit is
    lifted the same runner practises on. Recovery: from lifting the limit to the next reset.
    """
    server = RobotServerProcess("robot-df", work / "logs", max_steps=MAX_STEPS)
    store_dir = work / "store"
    args = {
        "policy": assets.policy,
        "store": str(store_dir),
        "endpoint": server.endpoint,
        "limit": limit_bytes,
    }
    try:
        with open(work / "logs" / "disk-full-child.log", "w") as err:
            p = subprocess.Popen(
                child_command("disk_full", args),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
            assert p.stdout is not None and p.stdin is not None
            paused = json.loads(p.stdout.readline().removeprefix("paused "))
            resets_at_pause = server.health().resets
            p.stdin.write("go\n")
            p.stdin.flush()
            t_back = float(p.stdout.readline().removeprefix("space_back "))
            wait_until(
                lambda: server.health().resets > resets_at_pause, 120, "the robot's next reset", every_s=0.05
            )
            recovery_s = time.time() - t_back
            done = json.loads(p.stdout.readline().removeprefix("done "))
            rc = p.wait(120)
        recorded = server.health().steps
    finally:
        server.close()
    stored, _ = stored_steps(store_dir)
    ok, detail = _check(
        {
            "the child exited cleanly": rc == 0,
            "a clear error naming the WAL file": ".wal" in paused["error"]
            and "File too large" in paused["error"],
            "the runner paused": paused["state"] == "paused",
            "the robot was held while paused": paused["held"],
            "it practised on once space was back": done["episodes"] == 1,
            "steps executed == steps stored": recorded == stored,
        }
    )
    detail += f"; error: {paused['error']}"
    return FaultRun("disk_full", ok, "steps", recorded, stored, recovery_s, detail)


SCENARIOS: dict[str, Callable[[Assets, Path], FaultRun]] = {
    "actor_kill": actor_kill,
    "learner_kill": learner_kill,
    "robot_server_kill": robot_server_kill,
    "store_writer_kill": store_writer_kill,
    "disk_full": disk_full,
    "session_resume": session_resume,
}


# --------------------------------------------------------------------- child processes
def _child_session(args: dict[str, Any]) -> int:
    """The driver of a practice session that the parent kills (budget: practically unlimited)."""
    assets = Assets(*args["assets"])
    cfg = practice_cfg(
        assets, Path(args["out"]), args["endpoints"], learn=True, episodes=10_000, address=args["address"]
    )
    Session(cfg).run()
    return 0


def _child_writer(args: dict[str, Any]) -> int:
    """Appends 512 px steps to one episode as fast as it can, saying before and after each append.

    The frames are made once, so nearly all of the time goes into appends and most kills land in one.
    """
    import numpy as np

    store = EpisodeStore.open(args["store"])
    meta = EpisodeMeta("killed-writer", "tabletop", "stack the cubes", "writer", "faults", "autonomous")
    store.begin(meta)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (512, 512, 3), dtype=np.uint8) for _ in range(4)]
    for t in range(1_000_000):
        step = StepRecord(
            images={"top": frames[t % len(frames)]},
            state=np.zeros(6, np.float32), action=np.zeros(3, np.float32), policy_action=np.zeros(3, np.float32),
            intervention=False, policy_version=0, t_ns=t, frame_index=t,
        )  # fmt: skip
        print(f"begin {t}", flush=True)
        store.append(meta.episode_id, step)
        print(f"acked {t}", flush=True)
    return 0


def _child_disk_full(args: dict[str, Any]) -> int:
    """A runner whose process may write files of at most ``limit`` bytes, until it is lifted."""
    import logging
    import resource

    import torch

    from actors.runner import RobotRunner
    from actors.zmq_robot import ZmqRobot
    from rlpost.data import StoreFullError

    torch.set_num_threads(1)
    logging.getLogger().setLevel(logging.WARNING)  # stderr is a file under the same limit
    cfg = ActorConfig(
        robot_id="robot-df", robot="zmq", endpoint=args["endpoint"], policy=args["policy"], store=args["store"],
        session_id="faults", control=ControlConfig(realtime=False, execute=4, lead_steps=2),
    )  # fmt: skip
    runner = RobotRunner.from_config(cfg)
    probe = ZmqRobot(args["endpoint"], BridgeConfig(timeout_s=10.0), "disk-full-probe")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (args["limit"], hard))
    try:
        runner.run(1000)
        raise RuntimeError(f"the store never hit the {args['limit']} byte limit")
    except StoreFullError as e:
        error, state = str(e), runner.state
    before = probe.health().steps
    time.sleep(0.5)
    held = probe.health().steps == before
    print("paused " + json.dumps({"error": error, "state": state, "held": held}), flush=True)
    sys.stdin.readline()  # the parent has noted the robot's counters: free the "disk"
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    print(f"space_back {time.time()}", flush=True)
    reports = runner.run(1)
    print("done " + json.dumps({"episodes": len(reports), "state": runner.state}), flush=True)
    probe.close()
    runner.close()
    return 0


CHILDREN: dict[str, Callable[[dict[str, Any]], int]] = {
    "session": _child_session,
    "writer": _child_writer,
    "disk_full": _child_disk_full,
}
