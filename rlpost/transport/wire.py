"""The zmq wire format: a msgpack header frame followed by raw array frames. Never pickle.

A message is a zmq multipart message::

    frame 0   msgpack map {"wire": WIRE_VERSION, "kind": str, "sender": str,
                           "fields": {str: scalar | str | list | map},
                           "arrays": [[name, dtype, shape], ...]}
    frame i   the raw C-ordered bytes of arrays[i - 1] (little-endian)

Any program that writes this format is a device or a robot. Dtypes come from an
allow-list (no object, string or void dtypes); header and frame sizes are bounded by
:class:`WireLimits`. Every decoding problem raises :class:`WireError`, a
:class:`rlpost.schema.SchemaError` whose text names the field, the sender and the limit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from rlpost.schema import SchemaError

WIRE_VERSION = 1

# Little-endian numeric dtypes only: no object, string, void or structured dtypes.
ALLOWED_DTYPES: frozenset[str] = frozenset(
    {"|b1", "|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f2", "<f4", "<f8"}
)


class WireError(SchemaError):
    """A message that does not follow the wire format; names the field, sender and limit."""


@dataclass(frozen=True)
class WireLimits:
    """Bounds every decoder enforces before it allocates anything."""

    max_header_bytes: int = 64 * 1024
    max_arrays: int = 32
    max_array_bytes: int = 32 * 1024 * 1024  # one 4K RGB image is ~25 MB
    max_message_bytes: int = 64 * 1024 * 1024
    max_ndim: int = 4

    def __post_init__(self) -> None:
        for name in ("max_header_bytes", "max_arrays", "max_array_bytes", "max_message_bytes", "max_ndim"):
            if getattr(self, name) < 1:
                raise ValueError(f"WireLimits.{name}={getattr(self, name)} must be >= 1")


@dataclass(frozen=True)
class Message:
    """A decoded message; arrays are read-only views on the received frames."""

    kind: str
    sender: str
    fields: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def field_of(self, name: str, types: type | tuple[type, ...], where: str) -> Any:
        """A header field checked for presence and type.

        Raises:
            WireError: missing or of the wrong type (bool is never accepted as an int).
        """
        if name not in self.fields:
            raise WireError(f"{where}: {self.kind!r} message from {self.sender!r} has no field {name!r}")
        value = self.fields[name]
        bad_bool = isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,))
        if bad_bool or not isinstance(value, types):
            want = types.__name__ if isinstance(types, type) else "/".join(t.__name__ for t in types)
            raise WireError(
                f"{where}: field {name!r} of {self.kind!r} message from {self.sender!r} "
                f"must be {want}, got {type(value).__name__}"
            )
        return value

    def array(self, name: str, where: str) -> np.ndarray:
        """An array frame by name.

        Raises:
            WireError: the message carries no array of that name.
        """
        if name not in self.arrays:
            raise WireError(
                f"{where}: {self.kind!r} message from {self.sender!r} has no array {name!r} "
                f"(has {sorted(self.arrays)})"
            )
        return self.arrays[name]


def encode(
    kind: str,
    sender: str,
    fields: Mapping[str, Any] | None = None,
    arrays: Mapping[str, np.ndarray] | None = None,
) -> list[bytes | memoryview]:
    """Encode a message into zmq frames (arrays are not copied when already contiguous).

    Args:
        kind: the message kind, e.g. ``"operator_command"``.
        sender: who sends it (an operator id, a robot id), for the receiver's errors.
        fields: msgpack-able header values (None, bool, int, float, str, lists and maps of them).
        arrays: name -> numpy array of an allowed dtype.

    Returns:
        Frames for ``socket.send_multipart(frames, copy=False)``.

    Raises:
        WireError: a dtype outside :data:`ALLOWED_DTYPES` or a field msgpack cannot encode.
    """
    specs, frames = [], []
    for name, arr in (arrays or {}).items():
        if not isinstance(arr, np.ndarray):
            raise WireError(f"encode {kind!r} from {sender!r}: array {name!r} is a {type(arr).__name__}")
        a = arr.astype(arr.dtype.newbyteorder("<"), copy=False) if arr.dtype.byteorder == ">" else arr
        if a.dtype.str not in ALLOWED_DTYPES:
            raise WireError(
                f"encode {kind!r} from {sender!r}: array {name!r} has dtype {arr.dtype}, "
                f"not one of the wire's numeric dtypes"
            )
        a = np.ascontiguousarray(a)
        specs.append([name, a.dtype.str, list(a.shape)])
        frames.append(memoryview(a).cast("B") if a.size else b"")
    header = {
        "wire": WIRE_VERSION,
        "kind": kind,
        "sender": sender,
        "fields": dict(fields or {}),
        "arrays": specs,
    }
    try:
        packed = msgpack.packb(header, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as e:
        raise WireError(f"encode {kind!r} from {sender!r}: a header field cannot be sent ({e})") from e
    return [packed, *frames]


def _frame_bytes(frame: Any) -> memoryview:
    """A zmq.Frame, bytes or memoryview as a flat byte view (zero copy)."""
    buf = getattr(frame, "buffer", frame)
    return memoryview(buf).cast("B")


def decode(
    frames: Sequence[Any], *, sender: str, limits: WireLimits | None = None, kinds: Sequence[str] = ()
) -> Message:
    """Decode and check a multipart message.

    Args:
        frames: the received frames (zmq.Frame, bytes or memoryview), identity frames removed.
        sender: where it came from (endpoint or peer identity), used in errors.
        limits: size bounds; defaults to ``WireLimits()``.
        kinds: accepted kinds; empty accepts any.

    Returns:
        The message, its arrays read-only views on the frames.

    Raises:
        WireError: malformed, truncated, oversized, of a refused dtype or an unexpected kind.
    """
    lim = limits or WireLimits()
    where = f"wire message from {sender}"
    if not frames:
        raise WireError(f"{where}: empty message (no header frame)")
    bufs = [_frame_bytes(f) for f in frames]
    total = sum(b.nbytes for b in bufs)
    if total > lim.max_message_bytes:
        raise WireError(
            f"{where}: {total} bytes exceeds the limit of {lim.max_message_bytes} bytes per message"
        )
    if bufs[0].nbytes > lim.max_header_bytes:
        raise WireError(
            f"{where}: header of {bufs[0].nbytes} bytes exceeds the limit of {lim.max_header_bytes}"
        )
    try:
        header = msgpack.unpackb(bufs[0], raw=False, strict_map_key=True, use_list=True, ext_hook=_refuse_ext)
    except WireError as e:  # raised by _refuse_ext, which does not know the sender
        raise WireError(f"{where}: header frame: {e}") from e
    except Exception as e:  # msgpack raises several unrelated types for bad bytes; all mean "not msgpack"
        raise WireError(f"{where}: header frame is not valid msgpack ({type(e).__name__}: {e})") from e
    if not isinstance(header, dict):
        raise WireError(f"{where}: header must be a map, got {type(header).__name__}")
    version = header.get("wire")
    if version != WIRE_VERSION:
        raise WireError(
            f"{where}: field 'wire' is {version!r}, this rlpost speaks wire version {WIRE_VERSION}"
        )
    kind, claimed = header.get("kind"), header.get("sender")
    if not isinstance(kind, str) or not isinstance(claimed, str):
        raise WireError(f"{where}: fields 'kind' and 'sender' must be strings, got {kind!r}, {claimed!r}")
    where = f"wire message {kind!r} from {claimed!r} at {sender}"
    if kinds and kind not in kinds:
        raise WireError(f"{where}: field 'kind' must be one of {list(kinds)}")
    fields, specs = header.get("fields", {}), header.get("arrays", [])
    if not isinstance(fields, dict) or not isinstance(specs, list):
        raise WireError(f"{where}: 'fields' must be a map and 'arrays' a list")
    if len(specs) > lim.max_arrays:
        raise WireError(f"{where}: {len(specs)} arrays exceeds the limit of {lim.max_arrays}")
    if len(specs) != len(bufs) - 1:
        raise WireError(f"{where}: header declares {len(specs)} array(s) but {len(bufs) - 1} frame(s) follow")
    arrays = {}
    for spec, buf in zip(specs, bufs[1:], strict=True):
        name, arr = _array(spec, buf, where, lim)
        if name in arrays:
            raise WireError(f"{where}: array {name!r} appears twice")
        arrays[name] = arr
    return Message(kind=kind, sender=claimed, fields=fields, arrays=arrays)


def _refuse_ext(code: int, data: bytes) -> None:
    raise WireError(f"msgpack extension type {code} is not allowed in a header")


def _array(spec: Any, buf: memoryview, where: str, lim: WireLimits) -> tuple[str, np.ndarray]:
    if not (isinstance(spec, list) and len(spec) == 3 and isinstance(spec[0], str)):
        raise WireError(f"{where}: array spec {spec!r} must be [name, dtype, shape]")
    name, dtype, shape = spec
    if not isinstance(dtype, str) or dtype not in ALLOWED_DTYPES:
        raise WireError(f"{where}: array {name!r} has dtype {dtype!r}, allowed: {sorted(ALLOWED_DTYPES)}")
    ok_shape = isinstance(shape, list) and all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    )
    if not ok_shape or len(shape) > lim.max_ndim:
        raise WireError(f"{where}: array {name!r} has shape {shape!r}; want <= {lim.max_ndim} sizes >= 0")
    dt = np.dtype(dtype)
    want = math.prod(shape) * dt.itemsize
    if want > lim.max_array_bytes:
        raise WireError(
            f"{where}: array {name!r} of shape {shape} needs {want} bytes, over the limit of {lim.max_array_bytes}"
        )
    if buf.nbytes != want:
        raise WireError(
            f"{where}: array {name!r} ({dtype}, shape {shape}) needs {want} bytes, its frame has {buf.nbytes}"
        )
    arr = np.frombuffer(buf, dtype=dt).reshape(shape) if want else np.zeros(shape, dt)
    arr.flags.writeable = False
    return name, arr
