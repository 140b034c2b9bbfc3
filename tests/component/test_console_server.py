"""The console server on loopback: the token guards every route, and commands reach real operator channels.

The backend here is built of real parts (two robots' operator channels on loopback, the
console's OperatorCommands, a LiveView watching a simulated robot); only the Ray session
around them is left out (tests/integration/test_console.py has it).
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import requests
from PIL import Image

from actors.live_view import LiveView
from actors.operator_channel import OperatorChannel
from rlpost.console import (
    CommandResult,
    ConsoleConfig,
    ConsoleServer,
    ConsoleView,
    RobotView,
    SessionView,
    read_console_file,
)
from rlpost.session_console import OperatorCommands
from rlpost.sim import SimConfig, make_robot

pytestmark = pytest.mark.timeout(60)


class ChannelBackend:
    """A ConsoleBackend over two real operator channels and a live view of a real sim."""

    def __init__(self) -> None:
        self.channels = {r: OperatorChannel(r, action_dim=3) for r in ("arm-1", "arm-2")}
        self.commands = OperatorCommands(list(self.channels), lambda r: self.channels[r].endpoint, "console")
        self.robot = make_robot("tabletop", SimConfig(image_size=32))
        self.live = LiveView()
        obs, info = self.robot.reset(seed=0)
        self.live.on_reset(obs, info, 0)

    def view(self) -> ConsoleView:
        seq, jpeg = self.live.jpeg()
        robots = [
            RobotView(
                r, "autonomous", "touch the red block", "ep-1", 3, 0, 1, float("nan"), sorted(jpeg), seq, 0, 0
            )
            for r in self.channels
        ]
        session = SessionView(
            "session-x", 0, float("nan"), 100, [], float("nan"), float("nan"), 0, 0, 0.0, ""
        )
        return ConsoleView(session, robots)

    def frame(self, robot_id: str, camera: str) -> bytes | None:
        return self.live.jpeg()[1].get(camera) if robot_id in self.channels else None

    def command(self, robot_id: str, kind: str) -> list[CommandResult]:
        return self.commands.send(robot_id, kind)

    def close(self) -> None:
        self.commands.close()
        for ch in self.channels.values():
            ch.close()
        self.robot.close()


@pytest.fixture
def console():
    backend = ChannelBackend()
    server = ConsoleServer(ConsoleConfig(enabled=True), backend)
    server.start()
    yield server, backend
    server.stop()
    backend.close()


def test_every_route_refuses_a_missing_token_with_401_and_a_wrong_one_with_403(console):
    server, _ = console
    base = server.base_url
    routes = [("get", ""), ("get", "api/view"), ("get", "api/frame/arm-1/top"), ("get", "static/console.js")]
    for method, path in routes:
        r = requests.request(method, base + path, timeout=5, allow_redirects=False)
        assert r.status_code == 401, (path, r.status_code)
        r = requests.request(
            method, base + path, params={"token": "y" * 32}, timeout=5, allow_redirects=False
        )
        assert r.status_code == 403, (path, r.status_code)
    r = requests.post(base + "api/command", json={"robot": "arm-1", "kind": "pause"}, timeout=5)
    assert r.status_code == 401 and "token is required" in r.text


def test_the_token_in_the_address_becomes_a_cookie_that_opens_the_page_and_its_api(console):
    server, _ = console
    with requests.Session() as s:
        r = s.get(server.url, timeout=5, allow_redirects=False)
        assert r.status_code == 303 and r.headers["Location"] == "/"
        assert "HttpOnly" in r.headers["Set-Cookie"] and "SameSite=Strict" in r.headers["Set-Cookie"]
        page = s.get(server.base_url, timeout=5)
        assert page.status_code == 200 and "rlpost console" in page.text
        view = s.get(server.base_url + "api/view", timeout=5).json()
    assert [r["robot_id"] for r in view["robots"]] == ["arm-1", "arm-2"]
    assert view["robots"][0]["progress"] is None, "NaN must reach the page as null"
    bearer = {"Authorization": f"Bearer {server.token}"}
    jpeg = requests.get(server.base_url + "api/frame/arm-1/top", headers=bearer, timeout=5)
    assert jpeg.headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(jpeg.content)).size == (32, 32)
    missing = requests.get(server.base_url + "api/frame/arm-9/top", headers=bearer, timeout=5)
    assert missing.status_code == 404 and "arm-9" in missing.text


def test_a_button_sends_the_operator_command_to_that_robots_channel_only(console):
    server, backend = console
    bearer = {"Authorization": f"Bearer {server.token}"}
    url = server.base_url + "api/command"
    r = requests.post(url, json={"robot": "arm-2", "kind": "pause"}, headers=bearer, timeout=5)
    assert r.status_code == 200 and r.json()["results"] == [
        {"robot_id": "arm-2", "kind": "pause", "ok": True, "error": ""}
    ]
    (cmd,) = backend.channels["arm-2"].poll()
    assert (cmd.kind, cmd.robot_id, cmd.operator_id) == ("pause", "arm-2", "console")
    assert backend.channels["arm-1"].poll() == []

    r = requests.post(url, json={"robot": "*", "kind": "estop"}, headers=bearer, timeout=5)
    assert [x["ok"] for x in r.json()["results"]] == [True, True]
    for rid, ch in backend.channels.items():
        assert [(c.kind, c.robot_id) for c in ch.poll()] == [("estop", rid)]


def test_bad_commands_are_refused_with_a_reason(console):
    server, backend = console
    bearer = {"Authorization": f"Bearer {server.token}"}
    url = server.base_url + "api/command"
    r = requests.post(url, json={"robot": "arm-1", "kind": "human_action"}, headers=bearer, timeout=5)
    assert r.status_code == 400 and "human_action" in r.text and "pause" in r.text
    r = requests.post(url, json={"robot": "arm-7", "kind": "pause"}, headers=bearer, timeout=5)
    assert r.status_code == 404 and "arm-7" in r.text and "arm-1" in r.text
    r = requests.post(url, data="robot=arm-1&kind=pause", headers=bearer, timeout=5)
    assert r.status_code == 415, "a plain form (what another site could post) is refused"
    assert all(ch.poll() == [] for ch in backend.channels.values())


def test_an_unreachable_robot_is_reported_per_robot_not_raised(console):
    server, backend = console
    backend.channels["arm-1"].close()  # its socket is gone: no ack comes back
    bearer = {"Authorization": f"Bearer {server.token}"}
    r = requests.post(
        server.base_url + "api/command", json={"robot": "*", "kind": "abort"}, headers=bearer, timeout=10
    )
    res = {x["robot_id"]: x for x in r.json()["results"]}
    assert not res["arm-1"]["ok"] and "no ack" in res["arm-1"]["error"]
    assert res["arm-2"]["ok"]


def test_console_file_is_private_and_names_a_live_console(console, tmp_path):
    server, _ = console
    path = server.write_file(tmp_path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_console_file(tmp_path)["url"] == server.url
    doc = json.loads(path.read_text())
    doc["pid"] = 2**22 + 12345  # above Linux's pid_max: no such process
    path.write_text(json.dumps(doc))
    with pytest.raises(FileNotFoundError, match="no longer running"):
        read_console_file(tmp_path)
    with pytest.raises(FileNotFoundError, match="no console file"):
        read_console_file(tmp_path / "elsewhere")


def test_live_view_encodes_once_per_observation_and_serves_window_steps():
    robot = make_robot("tabletop", SimConfig(image_size=32))
    live = LiveView()
    assert live.jpeg() == (-1, {}) and live.window([0]) is None
    obs, info = robot.reset(seed=1)
    live.on_reset(obs, info, 1)
    live.keep(4)
    states = [obs["state"]]
    for _ in range(6):
        obs, *_ = robot.step(np.zeros(3, np.float32))
        live.on_step(obs, {}, False, False)
        states.append(obs["state"])
    seq, first = live.jpeg()
    assert seq == 6 and live.jpeg()[1] is first, "an unchanged frame is not encoded again"
    w = live.window([0, 1, 3, 6])
    assert w is not None and w.steps == [0, 3, 3, 6], "step 1 is older than the 4 held: the oldest serves"
    np.testing.assert_array_equal(w.state, np.stack([states[0], states[3], states[3], states[6]]))
    assert w.images["top"].shape == (4, 32, 32, 3) and w.images["top"].dtype == np.uint8
    with pytest.raises(ValueError, match="history of 1000 steps"):
        live.keep(1000)
    robot.close()


def test_rlpost_console_prints_the_address_of_a_running_sessions_console(console, tmp_path, capsys):
    from rlpost.cli import main

    server, _ = console
    assert main(["console", f"session={tmp_path}"]) == 1
    assert "no console file" in capsys.readouterr().err
    server.write_file(tmp_path)
    assert main(["console", f"session={tmp_path}"]) == 0
    assert server.url in capsys.readouterr().out
    r = requests.get(server.url, timeout=5)
    assert r.status_code == 200 and "rlpost console" in r.text, "the printed address opens the page"
