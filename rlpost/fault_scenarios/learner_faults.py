"""Fault of the offline learner: `rlpost learn` killed mid-update and run again (``learner_kill``)."""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from rlpost.fault_scenarios.common import Assets, _check
from rlpost.fault_scenarios.harness import FaultRun, wait_until
from rlpost.metrics import read_metrics


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
