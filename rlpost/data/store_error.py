"""The errors the episode store raises: bad files on disk, and a disk that refuses writes."""

from __future__ import annotations

import errno

from rlpost.schema import SchemaError


class StoreError(SchemaError):
    """A store file is missing, truncated, corrupt or in conflict; the text names the file.

    A subclass of :class:`rlpost.schema.SchemaError` (and so of ``ValueError``) because a
    corrupt file is bad input just like a malformed message: callers that already catch
    schema errors at a boundary also catch this, and the store never skips one silently.
    """


class StoreFullError(StoreError):
    """The disk (or a file size or quota limit) refused a write; the text names the file.

    Nothing acknowledged before is affected: a step that could not be written was not
    stored, and the episode stays in flight so the call can be retried once space is back.
    Robot actors stop commanding their robot on this error rather than move unrecorded.
    """


def write_error(path: object, what: str, e: OSError) -> StoreError:
    """The store's error for an OSError while writing ``path``: StoreFullError when out of space."""
    full = e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
    cls = StoreFullError if full else StoreError
    hint = " (disk full or file size limit reached; free space and retry)" if full else ""
    return cls(f"{path}: {what} failed: {e.strerror or e}{hint}")
