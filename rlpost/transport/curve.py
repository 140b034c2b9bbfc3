"""CURVE authentication and encryption for zmq listeners (robot-server, operator channel) and their clients.

Keys are the zmq certificate files ``rlpost keys`` writes (``zmq.auth``'s format)::

    <name>.key          public key: hand it to the other side
    <name>.key_secret   the key pair (public + secret), mode 0600: stays on this machine

A listener loads its own ``.key_secret`` and admits only clients whose public ``.key``
files lie in its ``authorized_keys`` directory. A client loads its own ``.key_secret``
and the listener's public ``.key`` (so it also knows it talks to the right robot).

A client with no keys, an unlisted key, or the wrong idea of the server's key never
gets a reply: zmq drops it during the handshake. :class:`CurveServer` watches those
handshake failures on a socket monitor, counts them and logs them (rate-limited: a
refused client retries every ~100 ms), and its ZAP handler logs the refused key.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85
from zmq.utils.monitor import recv_monitor_message

log = logging.getLogger(__name__)

PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
_LOG_EVERY_S = 10.0  # a refused client retries ~10x a second: log the first refusal, then a summary

_HANDSHAKE_FAILURES = {
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "handshake failed",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "handshake failed (no CURVE keys, or a wrong server key)",
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "client key not in authorized_keys",
}


class KeyFileError(ValueError):
    """A CURVE key file or directory is missing, unreadable or not a key; the text names it."""


@dataclass
class CurveKeys:
    """Where the CURVE key files are (made by ``rlpost keys``); each side uses two of them.

    Relative paths are resolved from the working directory of the process that uses them.
    """

    server_secret_key: str = ""  # listener: its own key pair, <name>.key_secret
    authorized_keys: str = ""  # listener: directory of the client public keys (<name>.key) it admits
    client_secret_key: str = ""  # client: its own key pair, <name>.key_secret
    server_public_key: str = ""  # client: the listener's public key, <name>.key

    def any_set(self) -> bool:
        return any(
            (self.server_secret_key, self.authorized_keys, self.client_secret_key, self.server_public_key)
        )


def _check_z85(key: bytes | None, path: Path, which: str) -> bytes:
    if key is None:
        raise KeyFileError(
            f"{path}: has no {which} key; a key pair is the <name>{SECRET_SUFFIX} file `rlpost keys` writes"
        )
    try:
        if len(key) != 40 or len(z85.decode(key)) != 32:
            raise ValueError("not 40 z85 characters")
    except (ValueError, KeyError) as e:
        raise KeyFileError(f"{path}: its {which} key is not a CURVE key ({e})") from e
    return key


def load_public_key(path: str | Path, setting: str) -> bytes:
    """The z85 public key in a ``.key`` (or ``.key_secret``) file.

    Raises:
        KeyFileError: ``setting`` is empty, or the file is missing, unreadable or holds no key.
    """
    p = _require_path(path, setting)
    try:
        public, _ = zmq.auth.load_certificate(p)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise KeyFileError(f"{p} ({setting}): cannot read a CURVE public key: {e}") from e
    return _check_z85(public, p, "public")


def load_key_pair(path: str | Path, setting: str) -> tuple[bytes, bytes]:
    """``(public, secret)`` z85 keys from a ``.key_secret`` file; warns if others may read it.

    Raises:
        KeyFileError: ``setting`` is empty, or the file is missing, unreadable or has no secret key.
    """
    p = _require_path(path, setting)
    try:
        public, secret = zmq.auth.load_certificate(p)
        mode = stat.S_IMODE(p.stat().st_mode)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise KeyFileError(f"{p} ({setting}): cannot read a CURVE key pair: {e}") from e
    if mode & 0o077:
        log.warning("%s: secret key file is readable by others (mode %o); chmod 600 it", p, mode)
    return _check_z85(public, p, "public"), _check_z85(secret, p, "secret")


def load_authorized_keys(directory: str | Path, setting: str) -> frozenset[bytes]:
    """The client public keys (``*.key`` files) a listener admits.

    Raises:
        KeyFileError: ``setting`` is empty, the directory is missing, a file in it is not a
            key, or it holds no key at all (no client could ever connect).
    """
    d = _require_path(directory, setting)
    if not d.is_dir():
        raise KeyFileError(f"{d} ({setting}): no such directory of client public keys")
    keys = frozenset(load_public_key(f, setting) for f in sorted(d.glob(f"*{PUBLIC_SUFFIX}")))
    if not keys:
        raise KeyFileError(
            f"{d} ({setting}): holds no client public keys (*{PUBLIC_SUFFIX}); no client could connect"
        )
    return keys


def _require_path(path: str | Path, setting: str) -> Path:
    if not str(path):
        raise KeyFileError(f"security='curve' needs {setting} (make keys with `rlpost keys`)")
    return Path(path)


@dataclass(frozen=True)
class ClientKeys:
    """What a connecting socket needs: its own key pair and the server's public key."""

    public: bytes
    secret: bytes
    server: bytes

    @classmethod
    def load(cls, keys: CurveKeys, prefix: str) -> ClientKeys:
        """Read ``<prefix>.client_secret_key`` and ``<prefix>.server_public_key`` (errors name them)."""
        public, secret = load_key_pair(keys.client_secret_key, f"{prefix}.client_secret_key")
        return cls(public, secret, load_public_key(keys.server_public_key, f"{prefix}.server_public_key"))

    def apply(self, sock: zmq.Socket) -> None:
        """Make ``sock`` a CURVE client (before it connects)."""
        sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = (
            self.public,
            self.secret,
            self.server,
        )


class CurveServer:
    """A zmq context whose listening socket speaks CURVE and admits only the listed client keys.

    One per listener: it owns the context (a ZAP authenticator serves one context), the
    authenticator thread and a monitor thread that counts refused handshakes.
    """

    def __init__(self, keys: CurveKeys, prefix: str, what: str) -> None:
        """Load the key files and start the authenticator.

        Args:
            keys: the listener's key pair file and authorized client keys directory.
            prefix: the config path of ``keys`` (``bridge.curve``), for error messages.
            what: the listener, for the log (``"robot-server 'arm-1'"``).

        Raises:
            KeyFileError: a key file or the directory is missing or not a key (names it).
        """
        self.what = what
        self.public, self._secret = load_key_pair(keys.server_secret_key, f"{prefix}.server_secret_key")
        self.allowed = load_authorized_keys(keys.authorized_keys, f"{prefix}.authorized_keys")
        self.keys_dir = Path(keys.authorized_keys)
        self.context = zmq.Context()
        self._auth = ThreadAuthenticator(self.context, log=log)
        self._auth.start()
        self._auth.configure_curve_callback("*", self)
        self._lock = threading.Lock()
        self._refused = 0
        self._last_refusal = ""
        self._logged_at: dict[str, tuple[float, int]] = {}  # reason -> (last log time, count then)
        self._stop = threading.Event()
        self._monitor_thread: threading.Thread | None = None
        self._sock: zmq.Socket | None = None

    # The ZAP handler asks this for every client that completes the CURVE handshake.
    def callback(self, domain: str, client_key: bytes) -> bool:
        ok = client_key in self.allowed
        if not ok:
            log.warning(
                "%s: refused a client with key %s: not in %s",
                self.what,
                client_key.decode("ascii", "replace"),
                self.keys_dir,
            )
        return ok

    def socket(self, kind: int, *, linger_ms: int = 0, hwm: int = 1000) -> zmq.Socket:
        """The listening socket (one per CurveServer), CURVE on, refusals monitored; bind it next."""
        if self._sock is not None:
            raise RuntimeError(f"{self.what}: a CurveServer serves one socket")
        sock = self.context.socket(kind)
        sock.setsockopt(zmq.LINGER, linger_ms)
        sock.setsockopt(zmq.SNDHWM, hwm)
        sock.setsockopt(zmq.RCVHWM, hwm)
        sock.curve_secretkey, sock.curve_publickey, sock.curve_server = self._secret, self.public, True
        events = 0
        for ev in _HANDSHAKE_FAILURES:
            events |= ev
        monitor = sock.get_monitor_socket(events)
        self._sock = sock
        self._monitor_thread = threading.Thread(
            target=self._watch, args=(monitor,), name=f"curve-monitor {self.what}", daemon=True
        )
        self._monitor_thread.start()
        return sock

    @property
    def refused(self) -> int:
        """Handshakes refused so far (a refused client retrying counts once per attempt)."""
        with self._lock:
            return self._refused

    @property
    def last_refusal(self) -> str:
        with self._lock:
            return self._last_refusal

    def _watch(self, monitor: zmq.Socket) -> None:
        try:
            while not self._stop.is_set():
                if monitor.poll(50) == 0:
                    continue
                ev = recv_monitor_message(monitor)
                reason = _HANDSHAKE_FAILURES.get(ev["event"])
                if reason is not None:
                    self._count(reason, ev["endpoint"].decode("ascii", "replace"))
        finally:
            monitor.close(linger=0)

    def _count(self, reason: str, endpoint: str) -> None:
        with self._lock:
            self._refused += 1
            self._last_refusal = f"{self.what} at {endpoint}: {reason}"
            now = time.monotonic()
            last, count_then = self._logged_at.get(reason, (-_LOG_EVERY_S, 0))
            if now - last < _LOG_EVERY_S:
                return
            self._logged_at[reason] = (now, self._refused)
            total = self._refused
        log.warning(
            "%s at %s refused a connection: %s (%d refused so far; %d since the last such warning)",
            self.what,
            endpoint,
            reason,
            total,
            total - count_then,
        )

    def close(self) -> None:
        """Stop the monitor and authenticator and end the context; close the socket first."""
        self._stop.set()
        if self._monitor_thread is not None:
            self._monitor_thread.join(5.0)
        if self._sock is not None and not self._sock.closed:
            self._sock.close(linger=0)
        self._auth.stop()
        self.context.term()


@dataclass
class KeysConfig:
    """`rlpost keys out=keys name=robot-1`: write a CURVE key pair."""

    out: str = "keys"  # directory to write <name>.key and <name>.key_secret into
    name: str = ""  # the key pair's name, e.g. the robot or device it belongs to
    force: bool = False  # replace an existing pair of that name

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("keys: name= is required, e.g. `rlpost keys name=robot-1`")


def write_key_pair(out: str | Path, name: str, force: bool = False) -> tuple[Path, Path]:
    """Write ``<out>/<name>.key`` (public) and ``<out>/<name>.key_secret`` (mode 0600).

    The pair is made in a private (0700) temporary directory beside them and moved into
    place, so the secret is never readable by others, not even for a moment.

    Raises:
        FileExistsError: a file of that name exists and ``force`` is False (names it).
        ValueError: ``name`` is empty or not a plain file name.
    """
    if not name or name != Path(name).name or name.startswith("."):
        raise ValueError(f"keys: name={name!r} must be a plain file name such as 'robot-1'")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    public, secret = out / f"{name}{PUBLIC_SUFFIX}", out / f"{name}{SECRET_SUFFIX}"
    if not force:
        for p in (public, secret):
            if p.exists():
                raise FileExistsError(f"{p}: exists; pass force=true to replace the key pair")
    with tempfile.TemporaryDirectory(dir=out, prefix=f".{name}.") as tmp:  # created 0700
        tmp_public, tmp_secret = zmq.auth.create_certificates(tmp, name)
        os.chmod(tmp_secret, 0o600)
        os.chmod(tmp_public, 0o644)
        os.replace(tmp_secret, secret)
        os.replace(tmp_public, public)
    return public, secret
