"""The operator console in a real practice session, driven by headless Chromium (Playwright).

Robots run in real time (so an episode lasts long enough to click in) without simulated
operators, so every command the actors see comes from the page.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, sync_playwright

from actors.config import ActorConfig, ControlConfig
from rlpost.console import ConsoleConfig
from rlpost.data import EpisodeStore
from rlpost.metrics import LoggerConfig
from rlpost.session import PracticeConfig, RayConfig, Session
from rlpost.sim import SimConfig
from tests.support.policies import save_tiny_policy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

CHROMIUM = "/usr/bin/chromium"  # Debian's package; .ci/run installs it (never `playwright install`)


@pytest.fixture(scope="module")
def policy(tmp_path_factory) -> str:
    return str(save_tiny_policy(tmp_path_factory.mktemp("console-policy") / "policy"))


def session_cfg(policy: str, out: Path, robots: int, hz: float, **kw) -> PracticeConfig:
    return PracticeConfig(
        out=str(out),
        policy_checkpoint=policy,
        robots=robots,
        learn=False,
        actor=ActorConfig(
            policy=policy,
            sim=SimConfig(image_size=32, max_steps=400),
            control=ControlConfig(realtime=True, hz=hz, execute=4, lead_steps=2),
        ),
        status_every_s=0,
        stop_timeout_s=60,
        logger=LoggerConfig(wandb_mode="disabled"),
        console=ConsoleConfig(enabled=True, refresh_s=0.3),
        **kw,
    )


def launch(pw):
    return pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])


def wait_for(what: str, fn, timeout_s: float = 20.0, every_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(every_s)


def robot_status(session: Session, robot_id: str):
    import ray

    r = next(r for r in session.robots if r.robot_id == robot_id)
    st = ray.get(r.actor.status.remote(), timeout=10)
    return next(s for s in st if s.robot_id == robot_id) if r.grouped else st


def stop_session(session: Session, thread: threading.Thread, page: Page) -> None:
    """Stop after the current episodes, which the page's abort-all button ends now."""
    session.request_stop()
    deadline = time.monotonic() + 60
    while thread.is_alive() and time.monotonic() < deadline:
        if session.console is not None:
            page.click('#fleet-buttons button[data-kind="abort"]')
        thread.join(1.0)
    assert not thread.is_alive(), "the session did not stop after abort-all"


@contextlib.contextmanager
def running(session: Session):
    """The session practising on a thread; on a failed test its episodes are aborted and it shuts down."""
    session.start()
    thread = threading.Thread(target=session.run, name="practice", daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        if thread.is_alive():
            session.request_stop()
            while thread.is_alive() and session.console is not None:
                session.console.command("*", "abort")
                thread.join(1.0)
            thread.join(60)


def frames_loaded(page: Page, n: int) -> bool:
    return page.evaluate(
        """n => { const imgs = [...document.querySelectorAll('.frames img')];
                  return imgs.length === n && imgs.every(i => i.complete && i.naturalWidth > 0); }""",
        n,
    )


def test_console_shows_the_robots_and_its_buttons_pause_and_mark_failure(ray_session, policy, tmp_path):
    out = tmp_path / "session"
    session = Session(session_cfg(policy, out, robots=2, hz=20, ray=RayConfig(actor_num_cpus=0.5)))
    with running(session) as thread, sync_playwright() as pw:
        server = session.console.server
        doc = (out / "console.json").read_text()
        assert server.token in doc and (out / "console.json").stat().st_mode & 0o777 == 0o600

        # Without the token (or with a wrong one) nothing is served.
        assert requests.get(server.base_url + "api/view", timeout=5).status_code == 401
        wrong = {"Authorization": "Bearer " + "x" * 32}
        assert requests.get(server.base_url + "api/view", headers=wrong, timeout=5).status_code == 403
        cmd = {"robot": "sim-0", "kind": "pause"}
        assert requests.post(server.base_url + "api/command", json=cmd, timeout=5).status_code == 401

        browser = launch(pw)
        page = browser.new_page()
        resp = page.goto(server.base_url)
        assert resp is not None and resp.status == 401 and "token is required" in page.content()

        page.goto(server.url)
        assert "token=" not in page.url, "the token must leave the address bar (a cookie carries it)"
        page.wait_for_selector('article.robot[data-robot="sim-1"]', timeout=20_000)
        ids = page.eval_on_selector_all("article.robot", "els => els.map(e => e.dataset.robot)")
        assert sorted(ids) == ["sim-0", "sim-1"]
        wait_for("both robots' camera frames on the page", lambda: frames_loaded(page, 2))

        # Click pause while sim-0 is early in an episode. The episode may still end before the click lands
        # (a success); a pause between episodes holds the next one at its start, so the paused episode is
        # whichever was in flight when the command arrived.
        wait_for(
            "sim-0 to practise autonomously early in an episode",
            lambda: (
                (s := robot_status(session, "sim-0")).mode == "autonomous" and 0 < s.episode_step < 200 and s
            ),
            timeout_s=40,
        )
        page.click('article[data-robot="sim-0"] button[data-kind="pause"]')
        paused = wait_for(
            "sim-0's actor to report paused",
            lambda: (s := robot_status(session, "sim-0")).mode == "paused" and s,
        )
        assert paused.commands_received == 1 and paused.episode_id.startswith("sim-0-")
        page.wait_for_selector('article.robot.paused[data-robot="sim-0"]', timeout=10_000)
        step_at_pause = paused.episode_step
        time.sleep(0.5)
        assert robot_status(session, "sim-0").episode_step == step_at_pause, "a paused robot must not step"
        assert robot_status(session, "sim-1").mode in ("autonomous", "resetting"), "only sim-0 was paused"

        page.click('article[data-robot="sim-0"] button[data-kind="mark_failure"]')
        with EpisodeStore.open(out / "store", recover=False) as store:

            def finished():
                return [m for m in store.episodes(robot_id="sim-0") if m.episode_id == paused.episode_id]

            (meta,) = wait_for("sim-0's marked episode in the store", finished)
        assert meta.outcome == "failure" and meta.marked_by == "operator"
        assert meta.length == step_at_pause

        page.screenshot(path=str(tmp_path / "console.png"))
        stop_session(session, thread, page)
        browser.close()
    assert not (out / "console.json").exists(), "a stopped session's console file must go"


def test_console_lists_16_robots_without_slowing_their_control_loops(ray_session, policy, tmp_path):
    out = tmp_path / "session16"
    cfg = session_cfg(policy, out, robots=16, hz=10, ray=RayConfig(actor_num_cpus=1.0, robots_per_actor=8))
    session = Session(cfg)
    ids = [f"sim-{i}" for i in range(16)]
    with running(session) as thread, sync_playwright() as pw:
        browser = launch(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(session.console.server.url)
        page.wait_for_function("document.querySelectorAll('article.robot').length === 16", timeout=20_000)
        shown = page.eval_on_selector_all("article.robot", "els => els.map(e => e.dataset.robot)")
        assert sorted(shown) == sorted(ids)
        wait_for("16 camera frames on the page", lambda: frames_loaded(page, 16), timeout_s=30)
        before = {r: robot_status(session, r) for r in ids}
        t0 = time.monotonic()
        time.sleep(8.0)  # the page keeps refreshing every 0.3 s meanwhile
        after = {r: robot_status(session, r) for r in ids}
        seconds = time.monotonic() - t0
        page.screenshot(path=str(tmp_path / "console16.png"))
        stop_session(session, thread, page)
        browser.close()

    def steps(st) -> int:
        return st.steps + st.episode_step

    stepped = sum(steps(after[r]) - steps(before[r]) for r in ids)
    late = sum(after[r].events.get("late_chunk", 0) - before[r].events.get("late_chunk", 0) for r in ids)
    overruns = sum(after[r].control_overruns - before[r].control_overruns for r in ids)
    print(
        f"16 robots at 10 Hz with the console open for {seconds:.1f} s: {stepped} steps "
        f"({stepped / seconds / 16:.2f} Hz per robot), {late} late-chunk holds, {overruns} overruns"
    )
    # The loops keep their rate: steps within 20% of 10 Hz per robot, few holds and overruns.
    assert stepped >= 0.8 * 10 * 16 * seconds, (
        f"only {stepped} steps in {seconds:.1f} s for 16 robots at 10 Hz"
    )
    assert late <= 0.05 * stepped and overruns <= 0.05 * stepped
