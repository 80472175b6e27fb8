"""The pure parts of the file share (``_fileshare``): tokens and the checks of a slot
request (XEP-0363 §4, §5). The whole service runs in tests/integration/
test_http_file_share.py."""

from __future__ import annotations

import pytest

from tercet.modules._fileshare import (
    DEFAULT_TYPE,
    Grant,
    content_disposition,
    media_type,
    parse_size,
    sign,
    type_matches,
    valid_filename,
    verify,
)

KEY = b"k" * 32
GRANT = Grant("AbCdEfGhIjKlMnOpQrSt", "photo é.jpg", 1234, "image/jpeg", 1_900_000_000)


def test_a_token_carries_its_grant() -> None:
    assert verify(KEY, sign(KEY, GRANT)) == GRANT


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # signature changed
    lambda t: "x" + t,  # payload changed
    lambda t: t.replace(".", ""),  # no separator
    lambda t: "",
    lambda t: "é." + t.split(".")[1],  # not ASCII
])
def test_a_changed_token_is_refused(mangle: object) -> None:
    assert callable(mangle)
    assert verify(KEY, mangle(sign(KEY, GRANT))) is None


def test_another_key_is_refused() -> None:
    assert verify(b"other", sign(KEY, GRANT)) is None


@pytest.mark.parametrize(("name", "ok"), [
    ("a.txt", True), ("naïve café.png", True), ("..hidden", True),
    ("", False), (None, False), (".", False), ("..", False), ("a/b", False),
    ("a\\b", False), ("a\nb", False), ("a\x00b", False), ("é" * 128, False),
])
def test_file_names(name: str | None, ok: bool) -> None:
    assert valid_filename(name) is ok


@pytest.mark.parametrize(("text", "size"), [
    ("0", 0), ("10000000", 10000000), ("-1", None), ("1.5", None), ("", None),
    (None, None), ("١٢", None), ("9" * 20, None),
])
def test_sizes(text: str | None, size: int | None) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(("text", "wanted"), [
    (None, DEFAULT_TYPE), ("", DEFAULT_TYPE), ("Text/Plain; charset=utf-8", "text/plain"),
    ("image/svg+xml", "image/svg+xml"), ("text", None), ("text/html\r\nX: y", None),
    ("a b/c", None),
])
def test_media_types(text: str | None, wanted: str | None) -> None:
    assert media_type(text) == wanted


def test_type_patterns() -> None:
    assert type_matches("image/png", ["image/*"])
    assert type_matches("text/plain", ["TEXT/PLAIN"])
    assert type_matches("video/mp4", ["*"])
    assert not type_matches("video/mp4", ["image/*", "text/plain"])
    assert not type_matches("image/png", [])


def test_content_disposition_encodes_the_name() -> None:
    value = content_disposition('a "b"%.txt', inline=False)
    assert value.startswith("attachment; ")
    assert "filename*=UTF-8''a%20%22b%22%25.txt" in value
    assert 'filename="a _b__.txt"' in value
    assert content_disposition("ü.png", inline=True) == \
        "inline; filename=\"_.png\"; filename*=UTF-8''%C3%BC.png"
