"""JID splitting and preparation (RFC 6122, RFC 7622)."""

from __future__ import annotations

import dataclasses

import pytest
from helpers import examples
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tercet.protocol.jid import (
    JID,
    MAX_PART_BYTES,
    NAMEPREP_PROFILE,
    NODEPREP_PROFILE,
    RESOURCEPREP_PROFILE,
    InvalidJID,
    StringprepProfile,
    nameprep,
    nodeprep,
    prep_jid,
    resourceprep,
    split_jid,
)

PROFILES = ["stringprep", "precis"]

# RFC 7622 §3.5.1 examples of valid JIDs (valid under both profiles), with their prepared form.
VALID_BOTH = [
    ("juliet@example.com", "juliet@example.com"),
    ("juliet@example.com/foo", "juliet@example.com/foo"),
    ("juliet@example.com/foo bar", "juliet@example.com/foo bar"),
    ("juliet@example.com/foo@bar", "juliet@example.com/foo@bar"),
    ("foo\\20bar@example.com", "foo\\20bar@example.com"),
    ("fussball@example.com", "fussball@example.com"),
    ("π@example.com", "π@example.com"),
    ("Σ@example.com/foo", "σ@example.com/foo"),
    ("σ@example.com/foo", "σ@example.com/foo"),
    ("king@example.com/♚", "king@example.com/♚"),
    ("example.com", "example.com"),
    ("example.com/foobar", "example.com/foobar"),
    ("a.example.com/b@example.net", "a.example.com/b@example.net"),
    # RFC 6122 §2.2 / RFC 7622 §3.2: a trailing dot is stripped; domains are lower-cased.
    ("Juliet@Example.COM.", "juliet@example.com"),
    ("juliet@example.com./Balcony", "juliet@example.com/Balcony"),
    ("JULIET@EXAMPLE.COM/Balcony/Left", "juliet@example.com/Balcony/Left"),
    # IDNs: A-labels become U-labels, U-labels are lower-cased.
    ("xn--bcher-kva.example", "bücher.example"),
    ("XN--BCHER-KVA.example", "bücher.example"),
    ("BÜCHER.example", "bücher.example"),
    ("bücher。example", "bücher.example"),
    # IP literals (RFC 7622 §3.2).
    ("juliet@127.0.0.1/x", "juliet@127.0.0.1/x"),
    ("[::1]", "[::1]"),
    ("juliet@[2001:DB8:0:0::1]", "juliet@[2001:db8::1]"),
    # Fullwidth forms map to ASCII in both profiles.
    ("ｊｕｌｉｅｔ@example.com", "juliet@example.com"),
]

# RFC 7622 §3.5.2 and other invalid JIDs (invalid under both profiles).
INVALID_BOTH = [
    '"juliet"@example.com',
    "foo bar@example.com",
    "@example.com/",
    "@example.com",
    "juliet@",
    "juliet@/foo",
    "/foobar",
    "juliet@example.com/",
    "",
    "a@b@example.com",
    "jul<iet@example.com",
    "jul:iet@example.com",
    "jul'iet@example.com",
    "jul&iet@example.com",
    "jul\x00iet@example.com",
    "juliet@exa mple.com",
    "juliet@exa_mple.com",
    "juliet@-example.com",
    "juliet@example-.com",
    "juliet@example..com",
    "juliet@.",
    "juliet@example.com..",
    "juliet@999.1.1.1",
    "juliet@1.2.3",
    "juliet@[::1",
    "juliet@[1.2.3.4]",
    "juliet@[fe80::1%eth0]",
    "juliet@xn--zz.example",
    "juliet@xn--bcher-kva-.example",
    "juliet@example.com/foo\x07",
    "juliet@example.com/\u2028",
    "\u05d0a@example.com",  # mixed right-to-left and left-to-right letters
    "juliet@" + "a" * 64 + ".example",  # label longer than 63 octets
]


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize(("text", "expected"), VALID_BOTH)
def test_valid(text: str, expected: str, profile: str) -> None:
    jid = JID.parse(text, profile=profile)
    assert str(jid) == expected
    assert prep_jid(text, profile) == expected
    assert JID.parse(expected, profile=profile) == jid


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("text", INVALID_BOTH)
def test_invalid(text: str, profile: str) -> None:
    with pytest.raises(InvalidJID):
        JID.parse(text, profile=profile)
    assert prep_jid(text, profile) is None


@pytest.mark.parametrize(
    ("text", "stringprep_result", "precis_result"),
    [
        # ROMAN NUMERAL FOUR: NFKC folds it in Nodeprep; HasCompat is disallowed in PRECIS.
        ("henry\u2163@example.com", "henryiv@example.com", None),
        # Symbols are fine in Nodeprep, not in the IdentifierClass (RFC 7622 §3.5.2).
        ("♚@example.com", "♚@example.com", None),
        # U+0221 is unassigned in Unicode 3.2 (table A.1) but a letter today.
        ("\u0221@example.com", None, "\u0221@example.com"),
        # Ligatures: NFKC in Nodeprep, case folding in PRECIS.
        ("\ufb01@example.com", "fi@example.com", "fi@example.com"),
        # Non-ASCII spaces: NFKC turns U+3000 into U+0020 before the C.1.2 check, but
        # OGHAM SPACE MARK stays and is prohibited; OpaqueString maps both to U+0020.
        ("a@example.com/x\u3000y", "a@example.com/x y", "a@example.com/x y"),
        ("a@example.com/x\u1680y", None, "a@example.com/x y"),
        # Soft hyphen maps to nothing in stringprep (B.1); default-ignorable in PRECIS.
        ("ju\u00adliet@example.com", "juliet@example.com", None),
        # Final sigma: B.2 and case folding both give σ.
        ("ς@example.com", "σ@example.com", "σ@example.com"),
        # MIDDLE DOT: any place in Nodeprep, only between "l"s in PRECIS (RFC 5892 A.3).
        ("l\u00b7l@example.com", "l\u00b7l@example.com", "l\u00b7l@example.com"),
        ("a\u00b7b@example.com", "a\u00b7b@example.com", None),
        # Hebrew: right-to-left only is fine in both.
        ("\u05d0\u05d1@example.com", "\u05d0\u05d1@example.com", "\u05d0\u05d1@example.com"),
        ("\u05d01@example.com", None, "\u05d01@example.com"),
    ],
)
def test_profile_differences(
    text: str, stringprep_result: str | None, precis_result: str | None
) -> None:
    assert prep_jid(text, "stringprep") == stringprep_result
    assert prep_jid(text, "precis") == precis_result


def test_split_jid() -> None:
    assert split_jid("a@b/c") == ("a", "b", "c")
    assert split_jid("b") == (None, "b", None)
    assert split_jid("b/c@d/e") == (None, "b", "c@d/e")
    assert split_jid("A@B") == ("A", "B", None)  # no preparation
    for bad in ("@b", "a@", "b/", "/c", ""):
        with pytest.raises(InvalidJID):
            split_jid(bad)


def test_jid_api() -> None:
    jid = JID.parse("Juliet@Example.com/Balcony")
    assert jid == JID("juliet", "example.com", "Balcony")
    assert jid.bare == JID("juliet", "example.com")
    bare = jid.bare
    assert bare.bare is bare  # a bare JID is its own bare form
    assert jid.full == "juliet@example.com/Balcony"
    assert not jid.is_bare and jid.bare.is_bare
    assert not jid.is_host and JID.parse("example.com").is_host
    assert not JID.parse("example.com/x").is_host
    assert jid.with_resource("Orchard") == JID("juliet", "example.com", "Orchard")
    assert jid.with_resource(None) == jid.bare
    assert hash(jid) == hash(JID.parse("juliet@example.com/Balcony"))
    assert len({jid, JID.parse("JULIET@example.com/Balcony")}) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        jid.node = "romeo"  # type: ignore[misc]
    with pytest.raises(InvalidJID):
        jid.with_resource("")
    assert JID.from_parts("Juliet", "EXAMPLE.com", "r") == JID("juliet", "example.com", "r")


def test_unknown_profile_is_misuse() -> None:
    with pytest.raises(ValueError, match="profile"):
        JID.parse("a@b", profile="idna")
    with pytest.raises(ValueError, match="profile"):
        nodeprep("a", "nope")


def test_parse_is_cached() -> None:
    assert JID.parse("cached@example.com") is JID.parse("cached@example.com")


@pytest.mark.parametrize("profile", PROFILES)
def test_length_limits(profile: str) -> None:
    limit = MAX_PART_BYTES
    assert JID.parse("a" * limit + "@example.com", profile=profile).node == "a" * limit
    assert JID.parse("example.com/" + "r" * limit, profile=profile).resource == "r" * limit
    with pytest.raises(InvalidJID):
        JID.parse("a" * (limit + 1) + "@example.com", profile=profile)
    with pytest.raises(InvalidJID):
        JID.parse("example.com/" + "r" * (limit + 1), profile=profile)
    # Bytes, not code points: 341 three-byte characters fit, 342 do not.
    assert JID.parse("\u4e00" * 341 + "@example.com", profile=profile)
    with pytest.raises(InvalidJID):
        JID.parse("\u4e00" * 342 + "@example.com", profile=profile)
    # Domain: sixteen 63-octet labels with dots is 1023 bytes; one more octet is too many.
    domain = ".".join(["a" * 63] * 15 + ["b" * 63])
    assert len(domain) == limit
    assert JID.parse(domain, profile=profile).domain == domain
    with pytest.raises(InvalidJID):
        JID.parse("c" + domain, profile=profile)
    with pytest.raises(InvalidJID):
        JID.parse("a@" + "x" * 10_000, profile=profile)


def test_public_preps() -> None:
    assert nodeprep("Juliet") == "juliet"
    assert nodeprep("Juliet", "precis") == "juliet"
    assert resourceprep("Balcony") == "Balcony"
    assert resourceprep("x\u3000y", "precis") == "x y"
    assert nameprep("Example.COM.") == "example.com"
    assert nameprep("xn--bcher-kva.example") == "bücher.example"
    for bad in ("", "a b", "a@b"):
        with pytest.raises(InvalidJID):
            nodeprep(bad)
    with pytest.raises(InvalidJID):
        resourceprep("")
    with pytest.raises(InvalidJID):
        nameprep("")


# --- properties ---------------------------------------------------------------------------

ascii_text = st.text(st.characters(min_codepoint=0, max_codepoint=0x7F), max_size=30)
# Surrogates cannot occur in XML, hence the codec.
any_text = st.text(st.characters(codec="utf-8"), min_size=1, max_size=20)


def _stringprep(profile: StringprepProfile, text: str) -> str | None:
    try:
        return profile.prepare(text)
    except ValueError:
        return None


@given(ascii_text)
def test_ascii_fast_path_matches_tables(text: str) -> None:
    """The ASCII fast paths give exactly what the stringprep tables give."""
    expected_node = _stringprep(NODEPREP_PROFILE, text)
    try:
        got: str | None = nodeprep(text)
    except InvalidJID:
        got = None
    assert got == (expected_node or None)
    expected_resource = _stringprep(RESOURCEPREP_PROFILE, text)
    try:
        got = resourceprep(text)
    except InvalidJID:
        got = None
    assert got == (expected_resource or None)


@given(st.from_regex(r"[A-Za-z0-9]{1,10}(\.[A-Za-z0-9]{1,10}){0,3}", fullmatch=True))
def test_ascii_domain_fast_path_matches_tables(domain: str) -> None:
    assume(not domain.replace(".", "").isdigit())
    expected = ".".join(NAMEPREP_PROFILE.prepare(label) for label in domain.split("."))
    assert nameprep(domain) == expected


@settings(max_examples=examples(300), deadline=None)
@given(any_text, st.sampled_from(PROFILES))
def test_prep_is_idempotent(text: str, profile: str) -> None:
    for prep in (nodeprep, resourceprep):
        try:
            once = prep(text, profile)
        except InvalidJID:
            continue
        assert prep(once, profile) == once
    try:
        domain = nameprep(text)
    except InvalidJID:
        return
    assert nameprep(domain) == domain


@settings(max_examples=examples(300), deadline=None)
@given(
    st.one_of(st.none(), any_text),
    st.one_of(any_text, st.sampled_from(["example.com", "bücher.example", "[::1]"])),
    st.one_of(st.none(), any_text),
    st.sampled_from(PROFILES),
)
def test_round_trip(node: str | None, domain: str, resource: str | None, profile: str) -> None:
    try:
        jid = JID.from_parts(node, domain, resource, profile=profile)
    except InvalidJID:
        return
    assert JID.parse(str(jid), profile=profile) == jid
    assert JID.parse(jid.full, profile=profile).bare == jid.bare
    assert prep_jid(str(jid), profile) == str(jid)


@settings(deadline=None)
@given(st.text(max_size=40), st.sampled_from(PROFILES))
def test_parse_never_crashes(text: str, profile: str) -> None:
    try:
        jid = JID.parse(text, profile=profile)
    except InvalidJID:
        return
    for part in (jid.node, jid.domain, jid.resource):
        assert part is None or 0 < len(part.encode("utf-8")) <= MAX_PART_BYTES


def test_same_bare_compares_the_bare_jids() -> None:
    romeo = JID.parse("romeo@example.net/orchard")
    assert romeo.same_bare(JID.parse("romeo@example.net/balcony"))
    assert romeo.same_bare(JID.parse("romeo@example.net"))
    assert not romeo.same_bare(JID.parse("juliet@example.net/orchard"))
    assert not romeo.same_bare(JID.parse("romeo@example.org/orchard"))
    assert not JID.parse("example.net").same_bare(JID.parse("romeo@example.net"))
