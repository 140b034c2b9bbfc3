"""Faults with real processes, no Ray: a full disk under a robot runner, a killed robot-server,
a learner killed mid-update. Each runs one injection of `rlpost bench faults`' scenario."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from actors.config import BridgeConfig
from actors.zmq_robot import RobotDisconnected, ZmqRobot
from rlpost.data import EpisodeStore
from rlpost.fault_scenarios import disk_full, learner_kill, make_assets, robot_server_kill
from tests.support.robot_servers import start_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return make_assets(tmp_path_factory.mktemp("fault-assets"))


def test_full_disk_pauses_the_robot_with_a_clear_error_and_every_executed_step_stored(assets, tmp_path):
    run = disk_full(assets, tmp_path)
    assert run.survived, run.detail
    assert run.recorded == run.stored > 0
    assert "File too large" in run.detail and ".wal" in run.detail


def test_killed_robot_server_aborts_the_episode_with_its_steps_and_the_actor_reconnects(assets, tmp_path):
    run = robot_server_kill(assets, tmp_path)
    assert run.survived, run.detail
    assert run.recorded == run.stored > 0


def test_learner_killed_mid_update_resumes_from_its_checkpoint_without_repeating_an_update(assets, tmp_path):
    run = learner_kill(assets, tmp_path, updates=16, publish_every=4)
    assert run.survived, run.detail
    assert run.recorded == run.stored == 16


STORE_FULL_WRITER = """
import resource, signal, sys
sys.path.insert(0, {root!r})
from tests.support.store_records import meta, step
from rlpost.data import EpisodeStore, StoreFullError

store = EpisodeStore.open(sys.argv[1])
store.begin(meta("full"))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
_, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, hard))
t = 0
try:
    while True:
        store.append("full", step(t))
        t += 1
except StoreFullError as e:
    print(t, e, flush=True)
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # space is back: the same step goes in
for k in range(t, t + 3):
    store.append("full", step(k))
store.finish("full", "success", "operator")
"""


def test_a_refused_write_names_the_file_keeps_earlier_steps_and_can_be_retried(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(STORE_FULL_WRITER.format(root=str(ROOT)))
    out = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "store")], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    n, message = out.stdout.split(" ", 1)
    assert f"{tmp_path / 'store' / 'wal' / 'full.wal'}: appending step {n} failed: File too large" in message
    # the partly written record was cut off, so the steps appended after the retry are not "corrupt"
    with EpisodeStore.open(tmp_path / "store") as store:
        ep = store.read_episode("full")
        assert ep.meta.length == int(n) + 3 and ep.frame_index.tolist() == list(range(int(n) + 3))


def test_a_step_meant_for_a_killed_robot_server_does_not_move_the_one_restarted_on_its_port():
    proc, endpoint = start_server()
    robot = ZmqRobot(endpoint, BridgeConfig(timeout_s=10.0))
    robot.reset(seed=0)
    robot.step(np.zeros(3, np.float32))
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    proc2, _ = start_server(int(endpoint.rsplit(":", 1)[1]))
    try:
        # zmq reconnects by itself and delivers the step to the new server, which was never reset
        with pytest.raises(RobotDisconnected, match="restarted mid-episode: reset needed"):
            robot.step(np.zeros(3, np.float32))
        h = robot.health()
        assert (h.steps, h.resets, h.refused) == (0, 0, 1)
        robot.reset(seed=1)  # a new episode starts normally
        robot.step(np.zeros(3, np.float32))
        assert robot.health().steps == 1
    finally:
        robot.close()
        proc2.kill()
        proc2.wait(10)
