"""Faults of the episode store: its writer killed mid-append (``store_writer_kill``) and a
full disk under a robot's runner (``disk_full``), with the child processes they run.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from actors.config import ActorConfig, BridgeConfig, ControlConfig
from rlpost.data import EpisodeStore
from rlpost.fault_scenarios.common import MAX_STEPS, Assets, _check, stored_steps
from rlpost.fault_scenarios.harness import FaultRun, RobotServerProcess, child_command, wait_until
from rlpost.schema import EpisodeMeta, StepRecord


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


# --------------------------------------------------------------------- child processes
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
