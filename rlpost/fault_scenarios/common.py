"""What every fault scenario shares: the tiny assets, the practice config of a faulted
session, the probes a scenario watches recovery with, and the check helpers.

The probes read the store's WALs and their locks and the robot-servers' counters.
"""

from __future__ import annotations

import os
import signal
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
from rlpost.fault_scenarios.harness import RobotServerProcess, wait_until
from rlpost.metrics import LoggerConfig
from rlpost.schema import EpisodeMeta
from rlpost.session import BudgetConfig, PracticeConfig, RayConfig

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
