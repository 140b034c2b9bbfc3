"""Real writer processes: SIGKILL mid-episode, a reader beside a live writer, two writers at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rlpost.data import EpisodeStore
from tests.support.store_records import step

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[2]

WRITER = """
import sys, time
sys.path.insert(0, {root!r})
from tests.support.store_records import meta, step
from rlpost.data import EpisodeStore

root, mode, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
store = EpisodeStore.open(root)
def say(msg):
    print(msg, flush=True)

if mode == "kill":
    store.begin(meta("done")); [store.append("done", step(t)) for t in range(3)]
    store.finish("done", "success", "operator"); say("finished done")
    store.begin(meta("inflight"))
    for t in range(100000):
        store.append("inflight", step(t)); say(f"appended {{t}}"); time.sleep(0.002)
elif mode == "serve":
    store.begin(meta("first")); [store.append("first", step(t)) for t in range(4)]
    store.finish("first", "success", "env"); say("finished first")
    store.begin(meta("second")); [store.append("second", step(t)) for t in range(2)]; say("appended 2")
    sys.stdin.readline()
    [store.append("second", step(t)) for t in range(2, 5)]
    store.finish("second", "failure", "operator"); say("finished second")
elif mode == "many":
    for k in range(5):
        eid = f"{{prefix}}-{{k}}"
        store.begin(meta(eid)); [store.append(eid, step(t)) for t in range(3 + k)]
        store.finish(eid, "success", "env")
    say("done")
"""


def _spawn(tmp_path: Path, mode: str, prefix: str = "") -> subprocess.Popen:
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(root=str(ROOT)))
    return subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "store"), mode, prefix],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_for(proc: subprocess.Popen, prefix: str) -> str:
    while True:
        line = proc.stdout.readline()
        assert line, f"writer exited (rc={proc.poll()}) before printing {prefix!r}"
        if line.startswith(prefix):
            return line.strip()


def _assert_steps(store: EpisodeStore, eid: str, n: int) -> None:
    ep = store.read_episode(eid)
    assert ep.meta.length == n
    want = [step(t) for t in range(n)]
    np.testing.assert_array_equal(ep.images["front"], np.stack([s.images["front"] for s in want]))
    np.testing.assert_array_equal(ep.action, np.stack([s.action for s in want]))
    np.testing.assert_array_equal(ep.t_ns, [s.t_ns for s in want])


def test_writer_killed_mid_episode_leaves_a_store_that_opens_with_steps_recovered(tmp_path: Path) -> None:
    proc = _spawn(tmp_path, "kill")
    _wait_for(proc, "finished done")
    acked = 0
    while acked < 25:
        acked = int(_wait_for(proc, "appended").split()[1]) + 1
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    store = EpisodeStore.open(tmp_path / "store")
    done, rec = store.episodes()
    assert (done.episode_id, done.outcome, done.length) == ("done", "success", 3)
    _assert_steps(store, "done", 3)
    assert (rec.episode_id, rec.outcome, rec.marked_by, rec.extra["recovered"]) == (
        "inflight",
        "aborted",
        "none",
        "true",
    )
    # Every step whose append returned is kept; at most the one being written when killed may be extra.
    assert acked <= rec.length <= acked + 1
    _assert_steps(store, "inflight", rec.length)
    assert list((tmp_path / "store" / "wal").iterdir()) == []


def test_reader_sees_a_finished_episode_while_the_writer_continues(tmp_path: Path) -> None:
    proc = _spawn(tmp_path, "serve")
    try:
        _wait_for(proc, "appended 2")
        reader = EpisodeStore.open(tmp_path / "store")  # runs recovery: must not touch the live WAL
        assert [m.episode_id for m in reader.episodes()] == ["first"]
        _assert_steps(reader, "first", 4)
        assert [m.episode_id for m in reader.in_flight()] == ["second"]
        proc.stdin.write("go\n")
        proc.stdin.flush()
        _wait_for(proc, "finished second")
        assert proc.wait(timeout=30) == 0
        assert [(m.episode_id, m.episode_index) for m in reader.episodes()] == [("first", 0), ("second", 1)]
        _assert_steps(reader, "second", 5)
    finally:
        proc.kill()


def test_two_writer_processes_share_a_store_with_unique_indices(tmp_path: Path) -> None:
    EpisodeStore.open(tmp_path / "store")
    procs = [_spawn(tmp_path, "many", p) for p in ("arm1", "arm2")]
    t0 = time.monotonic()
    for p in procs:
        _wait_for(p, "done")
        assert p.wait(timeout=60) == 0
    assert time.monotonic() - t0 < 60
    metas = EpisodeStore.open(tmp_path / "store").episodes()
    assert sorted(m.episode_index for m in metas) == list(range(10))
    store = EpisodeStore.open(tmp_path / "store")
    for m in metas:
        _assert_steps(store, m.episode_id, 3 + int(m.episode_id.split("-")[1]))
