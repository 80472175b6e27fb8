"""Encoding helpers shared by the storage drivers."""

from __future__ import annotations

import json
import uuid
from typing import Any

__all__ = ["decode_json", "encode_json", "new_archive_key"]


def encode_json(value: Any) -> str:
    """Serialise a store value; raise ``TypeError``/``ValueError`` if it is not JSON.

    NaN and infinities are refused: they are not JSON (RFC 8259 §6) and other
    drivers (PostgreSQL ``jsonb``) would reject them later, far from the caller.
    """
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def decode_json(text: str) -> Any:
    """Parse a value written by :func:`encode_json`."""
    return json.loads(text)


def new_archive_key() -> str:
    """Return a fresh, unguessable archive key (usable as a XEP-0359 stanza-id)."""
    return str(uuid.uuid4())
