"""The one error type the episode store raises for bad files on disk."""

from __future__ import annotations

from rlpost.schema import SchemaError


class StoreError(SchemaError):
    """A store file is missing, truncated, corrupt or in conflict; the text names the file.

    A subclass of :class:`rlpost.schema.SchemaError` (and so of ``ValueError``) because a
    corrupt file is bad input just like a malformed message: callers that already catch
    schema errors at a boundary also catch this, and the store never skips one silently.
    """
