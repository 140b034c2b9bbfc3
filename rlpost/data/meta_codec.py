"""EpisodeMeta <-> JSON-able dict, with errors that name the file it came from."""

from __future__ import annotations

import dataclasses
from typing import Any

from rlpost.data.store_error import StoreError
from rlpost.schema import EpisodeMeta, SchemaError

_META_FIELDS = {f.name for f in dataclasses.fields(EpisodeMeta)}


def meta_to_dict(meta: EpisodeMeta) -> dict[str, Any]:
    """Plain dict of every EpisodeMeta field (JSON and msgpack friendly)."""
    out = dataclasses.asdict(meta)
    out["extra"] = dict(meta.extra)
    return out


def meta_from_dict(raw: object, where: str) -> EpisodeMeta:
    """Rebuild and validate an EpisodeMeta read from ``where`` (a file path, for errors).

    Unknown keys are an error rather than ignored: they mean a newer writer or a damaged
    file, and dropping them silently would lose data on the next rewrite.

    Raises:
        StoreError: not a dict, unknown or missing keys, or values the schema rejects.
    """
    if not isinstance(raw, dict):
        raise StoreError(f"{where}: episode meta must be a mapping, got {type(raw).__name__}")
    unknown = set(raw) - _META_FIELDS
    if unknown:
        raise StoreError(f"{where}: episode meta has unknown keys {sorted(unknown)}")
    try:
        meta = EpisodeMeta(**raw)
        if not isinstance(meta.extra, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in meta.extra.items()
        ):
            raise StoreError(f"{where}: episode meta extra must map str to str, got {meta.extra!r}")
        return meta.validate(where)
    except SchemaError as e:
        if isinstance(e, StoreError):
            raise
        raise StoreError(str(e)) from e
    except TypeError as e:  # missing required keys
        raise StoreError(f"{where}: episode meta is incomplete: {e}") from e
