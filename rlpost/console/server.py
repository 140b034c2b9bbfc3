"""The console's web server: aiohttp on its own thread and event loop, token on every request.

    server = ConsoleServer(ConsoleConfig(enabled=True), backend)
    url = server.start()          # http://127.0.0.1:<port>/?token=<token>
    ...
    server.stop()

Routes (all need the token)::

    GET  /                         the page (static/index.html); ?token=... sets a cookie and redirects
    GET  /static/<file>            its script and style
    GET  /api/view                 ConsoleView as JSON
    GET  /api/frame/<robot>/<cam>  the latest JPEG of that camera
    POST /api/command              {"robot": "<id>" | "*", "kind": "pause" | ...} -> per-robot results

The token travels as ``?token=`` on the first page load (the address printed at start),
then as an HttpOnly, SameSite=Strict cookie, or as ``Authorization: Bearer <token>`` for
scripts. No token: 401; a wrong one: 403. Commands take JSON only, so a page of another
site cannot post them with a plain form. Backend calls (Ray, zmq) are blocking, so they
run on the loop's thread pool and never stall the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import threading
from pathlib import Path
from typing import Any

from aiohttp import web

from rlpost.console.config import ConsoleConfig
from rlpost.console.view import ALL_ROBOTS, CONSOLE_COMMANDS, ConsoleBackend, to_json
from rlpost.transport.sockets import is_loopback

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
STATIC_FILES = {"console.js": "application/javascript", "console.css": "text/css"}
CONSOLE_FILE = "console.json"  # in the session directory, 0600: url and token of a running console


class ConsoleServer:
    """Serves the console page for one backend; see the module docstring."""

    def __init__(self, cfg: ConsoleConfig, backend: ConsoleBackend) -> None:
        self.cfg, self.backend = cfg, backend
        self.token = cfg.token or secrets.token_urlsafe(24)
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._cookie = ""

    @property
    def base_url(self) -> str:
        host = f"[{self.cfg.host}]" if ":" in self.cfg.host else self.cfg.host
        return f"http://{host}:{self.port}/"

    @property
    def url(self) -> str:
        """The address to open: base URL with the token."""
        return f"{self.base_url}?token={self.token}"

    def start(self, timeout_s: float = 10.0) -> str:
        """Bind and serve on a daemon thread; returns :attr:`url`.

        Raises:
            OSError: the host/port cannot be bound (names them).
        """
        if not is_loopback(self.cfg.host):
            log.warning(
                "console on %s is reachable from other machines over plain HTTP: the token can be sniffed; "
                "prefer the default 127.0.0.1 and an SSH tunnel",
                self.cfg.host,
            )
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start_site())
            except BaseException as e:
                failure.append(e)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._runner.cleanup() if self._runner else asyncio.sleep(0))
                loop.close()

        self._thread = threading.Thread(target=serve, name="console-server", daemon=True)
        self._thread.start()
        if not ready.wait(timeout_s):
            raise TimeoutError(
                f"console server on {self.cfg.host}:{self.cfg.port} did not start in {timeout_s} s"
            )
        if failure:
            raise OSError(f"console server cannot listen on {self.cfg.host}:{self.cfg.port}: {failure[0]}")
        log.info("console serving on %s", self.base_url)
        return self.url

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10.0)
        self._thread = None

    def write_file(self, directory: str | Path) -> Path:
        """Write ``<directory>/console.json`` (url, token, pid), readable by this user only."""
        path = Path(directory) / CONSOLE_FILE
        doc = {"url": self.url, "base_url": self.base_url, "token": self.token, "pid": os.getpid()}
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f)
        os.chmod(tmp, 0o600)  # O_CREAT's mode only applies to a new file
        os.replace(tmp, path)
        return path

    # -- the app --------------------------------------------------------------------------------------
    async def _start_site(self) -> None:
        app = web.Application(middlewares=[self._auth], client_max_size=64 * 1024)
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/api/view", self._view)
        app.router.add_get("/api/frame/{robot}/{camera}", self._frame)
        app.router.add_post("/api/command", self._command)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.cfg.host, self.cfg.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._cookie = f"rlpost_console_{self.port}"  # cookies are per host, not per port

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        given = request.query.get("token") or request.cookies.get(self._cookie, "")
        auth = request.headers.get("Authorization", "")
        if not given and auth.startswith("Bearer "):
            given = auth[len("Bearer ") :]
        if not given:
            raise web.HTTPUnauthorized(
                text="rlpost console: a token is required; open the address the session printed "
                "(or `rlpost console session=<dir>`), which ends in ?token=...\n"
            )
        if not secrets.compare_digest(given.encode(), self.token.encode()):
            raise web.HTTPForbidden(text="rlpost console: wrong token for this session's console\n")
        if "token" in request.query and request.method == "GET" and request.path == "/":
            # Keep the token out of the address bar and history: a cookie carries it from here on.
            resp = web.HTTPSeeOther("/")
            resp.set_cookie(self._cookie, self.token, httponly=True, samesite="Strict", path="/")
            raise resp
        return await handler(request)

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in STATIC_FILES:
            raise web.HTTPNotFound(text=f"rlpost console: no static file {name!r}\n")
        return web.FileResponse(STATIC / name, headers={"Content-Type": STATIC_FILES[name]})

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def _view(self, request: web.Request) -> web.StreamResponse:
        view = await self._call(self.backend.view)
        data = to_json(view)
        data["refresh_s"] = self.cfg.refresh_s
        return web.json_response(data, headers={"Cache-Control": "no-store"})

    async def _frame(self, request: web.Request) -> web.StreamResponse:
        robot, cam = request.match_info["robot"], request.match_info["camera"]
        jpeg = await self._call(self.backend.frame, robot, cam)
        if jpeg is None:
            raise web.HTTPNotFound(text=f"rlpost console: no frame yet from robot {robot!r} camera {cam!r}\n")
        return web.Response(body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def _command(self, request: web.Request) -> web.StreamResponse:
        if request.content_type != "application/json":
            raise web.HTTPUnsupportedMediaType(text="rlpost console: commands are JSON (application/json)\n")
        try:
            body = await request.json()
        except json.JSONDecodeError as e:
            raise web.HTTPBadRequest(text=f"rlpost console: command body is not JSON: {e}\n") from e
        robot, kind = body.get("robot") if isinstance(body, dict) else None, None
        if isinstance(body, dict):
            kind = body.get("kind")
        if not isinstance(robot, str) or not robot:
            raise web.HTTPBadRequest(
                text=f'rlpost console: command needs "robot" (an id or "{ALL_ROBOTS}")\n'
            )
        if kind not in CONSOLE_COMMANDS:
            raise web.HTTPBadRequest(
                text=f"rlpost console: command kind {kind!r} is not one of {list(CONSOLE_COMMANDS)}\n"
            )
        try:
            results = await self._call(self.backend.command, robot, kind)
        except KeyError as e:
            raise web.HTTPNotFound(text=f"rlpost console: {e.args[0]}\n") from e
        log.info(
            "console: %s -> %s: %s",
            kind,
            robot,
            ", ".join(f"{r.robot_id} {'ok' if r.ok else r.error}" for r in results),
        )
        return web.json_response({"results": [to_json(r) for r in results]})


def read_console_file(session_dir: str | Path) -> dict[str, Any]:
    """The url and token of the console a running session serves (from its console.json).

    Raises:
        FileNotFoundError: the directory holds no running session console (names the path).
    """
    path = Path(session_dir) / CONSOLE_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no console file; is `rlpost practice out={session_dir}` running with console.enabled=true?"
        )
    doc = json.loads(path.read_text())
    pid = int(doc.get("pid", 0))
    if pid:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            raise FileNotFoundError(
                f"{path}: the session that wrote it (pid {pid}) is no longer running on this machine"
            ) from None
        except PermissionError:
            pass  # alive, another user's process
    return doc
