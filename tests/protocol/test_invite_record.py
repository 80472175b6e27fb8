"""The invitation record (tercet.protocol.invites): tokens, durations, URIs, the stored
format read back whatever it holds."""

from __future__ import annotations

import pytest

from tercet.protocol.invites import (
    MAX_TTL,
    Invite,
    looks_like_token,
    make_invite,
    new_token,
    parse_duration,
)


def test_tokens_are_long_random_and_uri_safe() -> None:
    tokens = {new_token() for _ in range(200)}
    assert len(tokens) == 200
    for token in tokens:
        assert len(token) == 32  # 160 bits in base32
        assert looks_like_token(token)
    assert not looks_like_token("short")
    assert not looks_like_token("<script>alert(1)</script>aaaaaaaaaa")


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30), ("15m", 900), ("12h", 43200), ("7d", 604800), ("2w", 1209600),
    ("45", 45), (" 3 d ", 259200), (60, 60)])
def test_durations(text: str | int, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "0s", "-1d", "1y", "1.5d", 0])
def test_bad_durations(text: str | int) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_uris() -> None:
    account = make_invite("example.org", 0.0)
    assert account.uri() == f"xmpp:example.org?register;preauth={account.token}"
    named = make_invite("example.org", 0.0, username="juliet")
    assert named.uri().startswith("xmpp:juliet@example.org?register;preauth=")
    contact = make_invite("example.org", 0.0, kind="contact", inviter="romeo@example.org")
    assert contact.uri() == f"xmpp:romeo@example.org?roster;preauth={contact.token};ibr=y"
    assert contact.uri(ibr=False).endswith(contact.token)
    odd = make_invite("example.org", 0.0, kind="contact", inviter="a b#c@example.org")
    assert odd.uri().startswith("xmpp:a%20b%23c@example.org?roster;")  # RFC 5122 §2.3


def test_bounds() -> None:
    for kwargs in ({"ttl": 0}, {"ttl": MAX_TTL + 1}, {"uses": 0}, {"kind": "contact"},
                   {"groups": [""]}, {"groups": ["g"] * 17}, {"role": ""}):
        with pytest.raises(ValueError):
            make_invite("example.org", 0.0, **kwargs)  # type: ignore[arg-type]


def test_use_and_expiry() -> None:
    invite = make_invite("example.org", 100.0, ttl=60, uses=2)
    assert invite.usable(159.0) and not invite.usable(160.0)
    once = invite.used("a@example.org")
    assert once.uses_left == 1 and once.used_by == ("a@example.org",)
    assert not once.used("b@example.org").usable(110.0)


def test_stored_form_round_trips_and_bad_data_is_none() -> None:
    invite = make_invite("example.org", 5.0, kind="contact", inviter="romeo@example.org",
                         groups=["Friends"], role="tercet:member", created_by="cli")
    assert Invite.from_json(invite.to_json()) == invite
    assert Invite.from_json(None) is None
    assert Invite.from_json({"token": "x"}) is None
    assert Invite.from_json({**invite.to_json(), "expires": "never"}) is None
    weird = Invite.from_json({**invite.to_json(), "kind": "party"})
    assert weird is not None and weird.kind == "account"
