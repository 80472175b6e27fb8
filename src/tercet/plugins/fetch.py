"""Bounded downloads over http(s):// and file:// for the installer."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_TIMEOUT = 10.0  # seconds per connect/read, per request
CHUNK = 64 * 1024
SCHEMES = ("http", "https", "file")


class FetchError(Exception):
    """A URL could not be read; ``url`` and ``reason`` say which and why."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


class TooLarge(FetchError):
    """The body is bigger than the caller allowed."""


def _open(url: str, timeout: float, user_agent: str):  # type: ignore[no-untyped-def]
    if urlsplit(url).scheme not in SCHEMES:
        raise FetchError(url, "only http, https and file URLs are supported")
    request = urllib.request.Request(url, headers={"User-Agent": user_agent})
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise FetchError(url, f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise FetchError(url, _reason(exc.reason)) from None
    except TimeoutError:
        raise FetchError(url, f"timed out after {timeout:g} s") from None
    except (OSError, ValueError) as exc:
        raise FetchError(url, _reason(exc)) from None


def _reason(reason: object) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, FileNotFoundError):
        return "no such file"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def _chunks(url: str, limit: int, timeout: float, user_agent: str):  # type: ignore[no-untyped-def]
    """Yield the body of *url* in chunks; FetchError past *limit* bytes or on any failure."""
    with _open(url, timeout, user_agent) as response:
        length = response.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > limit:
            raise TooLarge(url, f"{int(length)} bytes is more than the limit of {limit}")
        total = 0
        while True:
            try:
                block = response.read(CHUNK)
            except TimeoutError:
                raise FetchError(url, f"timed out after {timeout:g} s") from None
            except OSError as exc:
                raise FetchError(url, _reason(exc)) from None
            if not block:
                return
            total += len(block)
            if total > limit:
                raise TooLarge(url, f"larger than the limit of {limit} bytes")
            yield block


def fetch_bytes(url: str, *, limit: int, timeout: float = DEFAULT_TIMEOUT,
                user_agent: str = "tercet") -> bytes:
    """The whole body of *url*, at most *limit* bytes."""
    return b"".join(_chunks(url, limit, timeout, user_agent))


def download(url: str, dest: Path, *, limit: int, timeout: float = DEFAULT_TIMEOUT,
             user_agent: str = "tercet") -> Path:
    """Save *url* to *dest* (at most *limit* bytes); a partial file is removed on failure."""
    try:
        with dest.open("wb") as fh:
            for block in _chunks(url, limit, timeout, user_agent):
                fh.write(block)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    os.chmod(dest, 0o644)
    return dest
