"""Jabber identifiers: splitting, preparation and comparison.

A JID is ``[localpart "@"] domainpart ["/" resourcepart]`` (RFC 6122 §2.1, RFC 7622 §3.1).
Every part is *prepared* before use, so that two JIDs are equal exactly when they address the
same entity. Two profiles are supported:

``profile="stringprep"`` (the default)
    RFC 6122: Nodeprep (Appendix A) for the localpart, Resourceprep (Appendix B) for the
    resourcepart. Both are stringprep profiles (RFC 3454) over Unicode 3.2, built here on the
    stdlib ``stringprep`` tables: mapping (B.1, B.2), NFKC, prohibited output (C.*),
    the bidi rules of RFC 3454 §6 and rejection of unassigned code points (A.1, §7).

``profile="precis"``
    RFC 7622: the UsernameCaseMapped profile (RFC 8265 §3.3) for the localpart and the
    OpaqueString profile (RFC 8265 §4.2) for the resourcepart. The PRECIS string classes
    (RFC 8264 §9) are derived from the stdlib ``unicodedata`` (Unicode 14 on Python 3.11).
    Approximations, all conservative or documented where made: ``_precis_property`` and
    ``_contexto_ok``.

The domainpart is prepared the same way under both profiles (``nameprep``): a trailing dot is
dropped (RFC 7622 §3.2), IPv4 and bracketed IPv6 literals are accepted, A-labels become
U-labels and every label goes through Nameprep (RFC 3491) and the LDH rule. That is IDNA2003
standing in for IDNA2008 (RFC 5891), which the stdlib does not implement: it lower-cases and
maps where IDNA2008 would reject (e.g. "ß" becomes "ss"), which is the usual "UTS #46" style
preparation and never produces a domain IDNA2008 refuses for being non-LDH.

Every part is 1..1023 bytes of UTF-8 after preparation (RFC 6122 §2.2-2.4, RFC 7622 §3.2-3.4).
Preparation results are cached (``functools.lru_cache``, bounded); already normalised ASCII
takes a fast path that never touches the tables.
"""

from __future__ import annotations

import encodings.idna
import functools
import ipaddress
import re
import stringprep
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

import idna

__all__ = [
    "JID",
    "MAX_PART_BYTES",
    "NAMEPREP_PROFILE",
    "NODEPREP_PROFILE",
    "PROFILES",
    "RESOURCEPREP_PROFILE",
    "InvalidJID",
    "StringprepError",
    "StringprepProfile",
    "nameprep",
    "nodeprep",
    "prep_jid",
    "resourceprep",
    "split_jid",
]

#: RFC 6122 §2.2-2.4, RFC 7622 §3.2-3.4: each part is at most 1023 bytes of UTF-8.
MAX_PART_BYTES = 1023
#: The preparation profiles ``JID.parse`` understands.
PROFILES = ("stringprep", "precis")

# Bound on one part *before* preparation. Mapping can shrink a string (table B.1 maps code
# points to nothing, NFKC composes up to three code points into one), so raw input may be
# longer than 1023 code points; anything beyond four times that is rejected unprepared.
_MAX_RAW_PART = 4 * MAX_PART_BYTES
# Caches (house rule 4): at most _CACHE_SIZE entries per cache, and only inputs up to
# _CACHE_MAX_INPUT code points are cached at all, so each cache stays within a few MB.
_CACHE_SIZE = 8192
_CACHE_MAX_INPUT = 256

_UCD_3_2 = unicodedata.ucd_3_2_0  # stringprep is defined over Unicode 3.2 (RFC 3454 §1)


class InvalidJID(ValueError):
    """The string is not a valid JID (or JID part) under the chosen profile."""


class StringprepError(ValueError):
    """``StringprepProfile.prepare`` met a prohibited or unassigned code point, or bad bidi."""


# --- stringprep (RFC 3454) ----------------------------------------------------------------

_Table = Callable[[str], bool]
_ALLOWED, _PROHIBITED, _UNASSIGNED = 0, 1, 2
_CHAR_CACHE_SIZE = 4096  # per profile and table; entries are one code point each

_C3_TO_C9: tuple[_Table, ...] = (
    stringprep.in_table_c3,
    stringprep.in_table_c4,
    stringprep.in_table_c5,
    stringprep.in_table_c6,
    stringprep.in_table_c7,
    stringprep.in_table_c8,
    stringprep.in_table_c9,
)


@dataclass(frozen=True, slots=True)
class StringprepProfile:
    """A stringprep profile (RFC 3454) over the stdlib's Unicode 3.2 tables.

    ``case_fold`` maps with table B.2 (otherwise only B.1 "mapped to nothing" applies),
    ``map_spaces`` maps C.1.2 (non-ASCII spaces) to U+0020 as SASLprep does, ``prohibited``
    lists the C.* tables and ``forbidden`` extra prohibited code points.
    """

    name: str
    prohibited: tuple[_Table, ...]
    case_fold: bool = False
    map_spaces: bool = False
    forbidden: frozenset[str] = frozenset()
    # Per-code-point results: the stdlib table lookups are slow, the alphabet in use small.
    _mapped: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    _verdict: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def prepare(self, text: str, *, allow_unassigned: bool = False) -> str:
        """Map, normalise (NFKC), check prohibited output and bidi (RFC 3454 §3-§7).

        Unassigned code points (table A.1) are rejected unless ``allow_unassigned`` (a
        "query" rather than a "stored string", RFC 3454 §7). Raises ``StringprepError``.
        """
        out = _UCD_3_2.normalize("NFKC", "".join(self._map(c) for c in text))
        for char in out:
            verdict = self._check(char)
            if verdict == _PROHIBITED or (verdict == _UNASSIGNED and not allow_unassigned):
                kind = "prohibited" if verdict == _PROHIBITED else "unassigned"
                raise StringprepError(f"{self.name}: {kind} code point U+{ord(char):04X}")
        if not _bidi_ok_rfc3454(out):
            raise StringprepError(f"{self.name}: violates the bidi rules of RFC 3454 §6")
        return out

    def _map(self, char: str) -> str:
        mapped = self._mapped.get(char)
        if mapped is None:
            if stringprep.in_table_b1(char):
                mapped = ""
            elif self.map_spaces and stringprep.in_table_c12(char):
                mapped = " "
            else:
                mapped = stringprep.map_table_b2(char) if self.case_fold else char
            if len(self._mapped) < _CHAR_CACHE_SIZE:
                self._mapped[char] = mapped
        return mapped

    def _check(self, char: str) -> int:
        verdict = self._verdict.get(char)
        if verdict is None:
            if char in self.forbidden or any(table(char) for table in self.prohibited):
                verdict = _PROHIBITED
            else:
                verdict = _UNASSIGNED if stringprep.in_table_a1(char) else _ALLOWED
            if len(self._verdict) < _CHAR_CACHE_SIZE:
                self._verdict[char] = verdict
        return verdict


def _bidi_ok_rfc3454(text: str) -> bool:
    """RFC 3454 §6: with any RandALCat, no LCat, and RandALCat first and last."""
    if not any(stringprep.in_table_d1(c) for c in text):
        return True
    if any(stringprep.in_table_d2(c) for c in text):
        return False
    return stringprep.in_table_d1(text[0]) and stringprep.in_table_d1(text[-1])


#: RFC 6122 Appendix A: Nodeprep.
NODEPREP_PROFILE = StringprepProfile(
    "nodeprep",
    (
        stringprep.in_table_c11,
        stringprep.in_table_c12,
        stringprep.in_table_c21,
        stringprep.in_table_c22,
        *_C3_TO_C9,
    ),
    case_fold=True,
    forbidden=frozenset("\"&'/:<>@"),  # RFC 6122 Appendix A.5
)
#: RFC 6122 Appendix B: Resourceprep.
RESOURCEPREP_PROFILE = StringprepProfile(
    "resourceprep",
    (stringprep.in_table_c12, stringprep.in_table_c21, stringprep.in_table_c22, *_C3_TO_C9),
)
#: RFC 3491: Nameprep (applied per label).
NAMEPREP_PROFILE = StringprepProfile(
    "nameprep",
    (stringprep.in_table_c12, stringprep.in_table_c22, *_C3_TO_C9),
    case_fold=True,
)


def _run_profile(profile: StringprepProfile, text: str) -> str:
    try:
        return profile.prepare(text)
    except StringprepError as exc:
        raise InvalidJID(str(exc)) from None


def _stabilise(prepare: Callable[[str], str], text: str) -> str:
    """Apply ``prepare`` until its output prepares to itself.

    Comparison needs prep(prep(x)) == prep(x); NFKC with case folding is not always stable
    in one pass (RFC 8264 §7 makes the same point for PRECIS), so apply the profile again
    and reject the rare string that still moves.
    """
    once = prepare(text)
    twice = prepare(once)
    if twice == once:
        return once
    if prepare(twice) == twice:
        return twice
    raise InvalidJID("preparation does not reach a stable form")


# --- PRECIS (RFC 8264, RFC 8265) ----------------------------------------------------------

_PVALID, _CONTEXTJ, _CONTEXTO, _DISALLOWED = "PVALID", "CONTEXTJ", "CONTEXTO", "DISALLOWED"

# RFC 5892 §2.6 "Exceptions" (category F), reused by PRECIS (RFC 8264 §9.6).
_EXCEPTIONS: dict[int, str] = {
    **dict.fromkeys((0x00DF, 0x03C2, 0x06FD, 0x06FE, 0x0F0B, 0x3007), _PVALID),
    **dict.fromkeys((0x00B7, 0x0375, 0x05F3, 0x05F4, 0x30FB), _CONTEXTO),
    **dict.fromkeys(range(0x0660, 0x066A), _CONTEXTO),
    **dict.fromkeys(range(0x06F0, 0x06FA), _CONTEXTO),
    **dict.fromkeys((0x0640, 0x07FA, 0x302E, 0x302F, 0x303B), _DISALLOWED),
    **dict.fromkeys(range(0x3031, 0x3036), _DISALLOWED),
}
# RFC 8264 §9.1 LetterDigits; §9.2 OtherLetterDigits, §9.14 Spaces, §9.15 Symbols and
# §9.16 Punctuation are valid in the FreeformClass only.
_LETTER_DIGITS = frozenset({"Ll", "Lu", "Lo", "Nd", "Lm", "Mn", "Mc"})
_FREEFORM_ONLY = frozenset(
    {"Lt", "Nl", "No", "Me", "Zs", "Sm", "Sc", "Sk", "So", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po"}
)
# RFC 8264 §9.9 OldHangulJamo (Hangul_Syllable_Type L, V, T).
_OLD_HANGUL_JAMO = ((0x1100, 0x11FF), (0xA960, 0xA97F), (0xD7B0, 0xD7FF))
# RFC 8264 §9.13 PrecisIgnorableProperties: Default_Ignorable_Code_Point as listed in
# DerivedCoreProperties.txt (the stdlib has no property lookup). Noncharacters are "Cn".
_DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160),
    (0x17B4, 0x17B5), (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E),
    (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)  # fmt: skip


def _in_ranges(cp: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(low <= cp <= high for low, high in ranges)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _precis_property(char: str, freeform: bool) -> str:
    """Derived property of one code point (RFC 8264 §8), in the order the RFC gives.

    Approximation: the stdlib knows categories but not every Unicode property, so
    Default_Ignorable_Code_Point comes from the table above and BackwardCompatible (§9.7)
    is empty, as it is in the RFC.
    """
    cp = ord(char)
    if cp in _EXCEPTIONS:
        return _EXCEPTIONS[cp]
    category = unicodedata.category(char)
    if category == "Cn":  # §9.10 Unassigned, and noncharacters (§9.13)
        return _DISALLOWED
    if 0x21 <= cp <= 0x7E:  # §9.11 ASCII7
        return _PVALID
    if cp in (0x200C, 0x200D):  # §9.8 JoinControl
        return _CONTEXTJ
    if _in_ranges(cp, _OLD_HANGUL_JAMO) or _in_ranges(cp, _DEFAULT_IGNORABLE):
        return _DISALLOWED
    if category == "Cc":  # §9.12 Controls
        return _DISALLOWED
    if unicodedata.normalize("NFKC", char) != char:  # §9.17 HasCompat
        return _PVALID if freeform else _DISALLOWED
    if category in _LETTER_DIGITS:
        return _PVALID
    if category in _FREEFORM_ONLY:
        return _PVALID if freeform else _DISALLOWED
    return _DISALLOWED


def _script(char: str) -> str:
    # Approximation: the stdlib has no Script property; the first word of the character
    # name ("GREEK", "HEBREW", "HIRAGANA", "KATAKANA", "CJK") identifies the scripts the
    # CONTEXTO rules ask about.
    return unicodedata.name(char, "").split(" ", 1)[0]


def _contexto_ok(text: str, i: int) -> bool:
    """RFC 5892 Appendix A.3-A.9 contextual rules (scripts approximated by ``_script``)."""
    cp = ord(text[i])
    if cp == 0x00B7:  # A.3 MIDDLE DOT: between two "l"
        return 0 < i < len(text) - 1 and text[i - 1] == "l" == text[i + 1]
    if cp == 0x0375:  # A.4 GREEK LOWER NUMERAL SIGN: followed by Greek
        return i + 1 < len(text) and _script(text[i + 1]) == "GREEK"
    if cp in (0x05F3, 0x05F4):  # A.5, A.6 HEBREW GERESH/GERSHAYIM: preceded by Hebrew
        return i > 0 and _script(text[i - 1]) == "HEBREW"
    if cp == 0x30FB:  # A.7 KATAKANA MIDDLE DOT: with Hiragana, Katakana or Han
        return any(_script(c) in ("HIRAGANA", "KATAKANA", "CJK") for c in text if c != "\u30fb")
    if 0x0660 <= cp <= 0x0669:  # A.8: not mixed with extended Arabic-Indic digits
        return not any("\u06f0" <= c <= "\u06f9" for c in text)
    if 0x06F0 <= cp <= 0x06F9:  # A.9: not mixed with Arabic-Indic digits
        return not any("\u0660" <= c <= "\u0669" for c in text)
    return False


def _check_precis_class(text: str, *, freeform: bool) -> None:
    # CONTEXTJ (ZWJ/ZWNJ) needs joining types the stdlib lacks: rejected (conservative).
    for i, char in enumerate(text):
        prop = _precis_property(char, freeform)
        if prop == _PVALID or (prop == _CONTEXTO and _contexto_ok(text, i)):
            continue
        raise InvalidJID(f"code point U+{ord(char):04X} is not allowed")


_RTL = frozenset({"R", "AL", "AN"})
_RTL_ALLOWED = frozenset({"R", "AL", "AN", "EN", "ES", "CS", "ET", "ON", "BN", "NSM"})


def _check_bidi_rfc5893(text: str) -> None:
    """The Bidi Rule (RFC 5893 §2) for strings with right-to-left characters (RFC 8265 §3.4.1)."""
    dirs = [unicodedata.bidirectional(c) for c in text]
    if _RTL.isdisjoint(dirs):
        return
    ending = [d for d in dirs if d != "NSM"]
    ok = (
        dirs[0] in ("R", "AL")  # rule 1
        and all(d in _RTL_ALLOWED for d in dirs)  # rule 2
        and bool(ending)
        and ending[-1] in ("R", "AL", "EN", "AN")  # rule 3
        and not ("EN" in dirs and "AN" in dirs)  # rule 4
    )
    if not ok:
        raise InvalidJID("violates the Bidi Rule of RFC 5893")


def _width_map(char: str) -> str:
    """RFC 8265 §3.3.1 width mapping: fullwidth/halfwidth to their decomposition."""
    decomposition = unicodedata.decomposition(char)
    if decomposition.startswith(("<wide> ", "<narrow> ")):
        return "".join(chr(int(h, 16)) for h in decomposition.split()[1:])
    return char


_LOCALPART_FORBIDDEN = frozenset("\"&'/:<>@")  # RFC 7622 §3.3.1


def _username_case_mapped(text: str) -> str:
    """UsernameCaseMapped (RFC 8265 §3.3.2-3.3.3) plus RFC 7622 §3.3.1 for localparts.

    Case mapping is Unicode Default Case Folding (``str.casefold``) as RFC 8265 specifies;
    RFC 7613, which RFC 7622 cites, used toLowerCase (they differ on e.g. "ß").
    """
    mapped = "".join(_width_map(c) for c in text).casefold()
    out = unicodedata.normalize("NFC", mapped)
    if not _LOCALPART_FORBIDDEN.isdisjoint(out):
        raise InvalidJID("localpart contains a forbidden character")
    _check_bidi_rfc5893(out)
    _check_precis_class(out, freeform=False)
    return out


def _opaque_string(text: str) -> str:
    """OpaqueString (RFC 8265 §4.2.2-4.2.3): spaces to U+0020, NFC, FreeformClass."""
    mapped = "".join(" " if unicodedata.category(c) == "Zs" else c for c in text)
    out = unicodedata.normalize("NFC", mapped)
    _check_precis_class(out, freeform=True)
    return out


# --- parts ---------------------------------------------------------------------------------


def _checked(kind: str, prepared: str) -> str:
    if not prepared:
        raise InvalidJID(f"empty {kind}")
    if len(prepared.encode("utf-8")) > MAX_PART_BYTES:
        raise InvalidJID(f"{kind} longer than {MAX_PART_BYTES} bytes")
    return prepared


def _bounded_cache(
    fast: Callable[[str], str | None] | None = None,
) -> Callable[[Callable[[str], str]], Callable[[str], str]]:
    """Memoise a one-part preparation; short inputs only, and reject oversized raw input.

    ``fast`` answers already normalised printable ASCII (nearly every part) without the
    cache: ~0.3 µs against ~0.1 µs for a lookup, paid only where the callers that see the
    same JID again (the router, ``JID.parse``) missed their own caches, while an entry
    (~140 B) would stay for every distinct username and resource seen, about one per
    session. Parts that need the tables keep the cache."""

    def decorate(fn: Callable[[str], str]) -> Callable[[str], str]:
        cached = functools.lru_cache(maxsize=_CACHE_SIZE)(fn)

        @functools.wraps(fn)
        def prepare(text: str) -> str:
            if len(text) > _MAX_RAW_PART:
                raise InvalidJID("JID part too long")
            if fast is not None:
                done = fast(text)
                if done is not None:
                    return done
            return cached(text) if len(text) <= _CACHE_MAX_INPUT else fn(text)

        return prepare

    return decorate


# Fast paths: already normalised printable ASCII is its own preparation under both profiles.
# Localpart: 0x21-0x7E without "&'/:<>@ (and lower-cased), resourcepart: 0x20-0x7E.
_ASCII_LOCALPART = re.compile(r"[!#-%(-.0-9;=?\[-~]+")
_ASCII_RESOURCEPART = re.compile(r"[ -~]+")


def _ascii_localpart(text: str) -> str | None:
    if text.isascii() and len(text) <= MAX_PART_BYTES:
        lowered = text.lower()  # for ASCII, B.2 and casefold are both exactly this
        if _ASCII_LOCALPART.fullmatch(lowered):
            return lowered
    return None


def _ascii_resourcepart(text: str) -> str | None:
    if len(text) <= MAX_PART_BYTES and _ASCII_RESOURCEPART.fullmatch(text):
        return text
    return None


@_bounded_cache(_ascii_localpart)
def _nodeprep(text: str) -> str:
    prepare = functools.partial(_run_profile, NODEPREP_PROFILE)
    return _checked("localpart", _stabilise(prepare, text))


@_bounded_cache(_ascii_localpart)
def _localpart_precis(text: str) -> str:
    return _checked("localpart", _stabilise(_username_case_mapped, text))


@_bounded_cache(_ascii_resourcepart)
def _resourceprep(text: str) -> str:
    prepare = functools.partial(_run_profile, RESOURCEPREP_PROFILE)
    return _checked("resourcepart", _stabilise(prepare, text))


@_bounded_cache(_ascii_resourcepart)
def _resourcepart_precis(text: str) -> str:
    return _checked("resourcepart", _stabilise(_opaque_string, text))


_PREPARERS: dict[str, tuple[Callable[[str], str], Callable[[str], str]]] = {
    "stringprep": (_nodeprep, _resourceprep),
    "precis": (_localpart_precis, _resourcepart_precis),
}


def _preparers(profile: str) -> tuple[Callable[[str], str], Callable[[str], str]]:
    try:
        return _PREPARERS[profile]
    except KeyError:
        raise ValueError(f"unknown JID profile {profile!r}; expected one of {PROFILES}") from None


def nodeprep(text: str, profile: str = "stringprep") -> str:
    """Prepare a localpart: Nodeprep (RFC 6122 App. A) or, with ``profile="precis"``,
    UsernameCaseMapped (RFC 7622 §3.3). Raises ``InvalidJID`` (also if empty or too long)."""
    return _preparers(profile)[0](text)


def resourceprep(text: str, profile: str = "stringprep") -> str:
    """Prepare a resourcepart: Resourceprep (RFC 6122 App. B) or, with ``profile="precis"``,
    OpaqueString (RFC 7622 §3.4). Raises ``InvalidJID`` (also if empty or too long)."""
    return _preparers(profile)[1](text)


# --- domainpart ----------------------------------------------------------------------------

# RFC 3490 §3.1: these full stops separate labels like "." does.
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
_LDH_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_ASCII_DOMAIN = re.compile(rf"{_LDH_LABEL}(?:\.{_LDH_LABEL})*")
_NUMERIC_DOMAIN = re.compile(r"[0-9]+(?:\.[0-9]+)*")


@_bounded_cache()
def nameprep(text: str) -> str:
    """Prepare a domainpart (RFC 6122 §2.2, RFC 7622 §3.2); the same under both profiles.

    Drops one trailing dot, accepts an IPv4 literal or a bracketed IPv6 literal (returned in
    canonical form), otherwise prepares each label (``_prepare_label``). Raises ``InvalidJID``.
    """
    domain = text.translate(_DOTS)
    domain = domain.removesuffix(".")
    if domain.startswith("["):
        return _checked("domainpart", _ipv6_literal(domain))
    lowered = domain.lower() if domain.isascii() else ""
    if lowered and "xn--" not in lowered and _ASCII_DOMAIN.fullmatch(lowered):
        prepared = lowered  # fast path: LDH ASCII needs no tables
    else:
        prepared = ".".join(_prepare_label(label) for label in domain.split("."))
    if _NUMERIC_DOMAIN.fullmatch(prepared):
        prepared = _ipv4_literal(prepared)
    return _checked("domainpart", prepared)


def _prepare_label(label: str) -> str:
    if label.isascii() and label[:4].lower() == "xn--":
        try:  # A-label to U-label; ToUnicode checks that it round-trips (RFC 3490 §4.2)
            label = encodings.idna.ToUnicode(label.lower())
        except UnicodeError:
            raise InvalidJID("invalid A-label in domainpart") from None
    prepared = _idna2008_label(label) if not label.isascii() else label.lower()
    # LDH rule for the ASCII code points (UseSTD3ASCIIRules, RFC 3490 §4.1; RFC 5891
    # §4.2.3.1 keeps the hyphen restriction): letters, digits, inner hyphens.
    if not prepared or prepared[0] == "-" or prepared[-1] == "-":
        raise InvalidJID("empty domain label or hyphen at a label's edge")
    if any(c.isascii() and not (c.isalnum() or c == "-") for c in prepared):
        raise InvalidJID("domain label contains a character outside letters, digits, hyphen")
    if prepared.isascii():
        ace = prepared
    elif prepared.startswith("xn--"):  # RFC 3490 §4.1 step 5
        raise InvalidJID("U-label starts with the ACE prefix")
    else:
        ace = "xn--" + prepared.encode("punycode").decode("ascii")
    if len(ace) > 63:  # RFC 1035 §2.3.4, for the A-label (RFC 5890 §2.3.2.1)
        raise InvalidJID("domain label longer than 63 octets")
    return prepared


def _idna2008_label(label: str) -> str:
    """A U-label per IDNA2008 (RFC 5891) after UTS #46 non-transitional mapping, so that
    e.g. upper case and full-width forms map as users expect while "ß" stays "ß"."""
    try:
        ace = idna.encode(label, uts46=True, transitional=False)
        return str(idna.decode(ace))
    except (idna.IDNAError, UnicodeError):
        raise InvalidJID("domain label is not valid under IDNA2008") from None


def _ipv4_literal(domain: str) -> str:
    try:
        return str(ipaddress.IPv4Address(domain))
    except ValueError:
        raise InvalidJID("numeric domainpart is not an IPv4 address") from None


def _ipv6_literal(domain: str) -> str:
    inner = domain[1:-1]
    # RFC 7622 §3.2 / RFC 3986 §3.2.2 IP-literal; zone identifiers are not allowed there.
    if not domain.endswith("]") or not inner.isascii() or "%" in inner:
        raise InvalidJID("malformed IPv6 literal")
    try:
        return f"[{ipaddress.IPv6Address(inner).compressed}]"
    except ValueError:
        raise InvalidJID("malformed IPv6 literal") from None


# --- JIDs ----------------------------------------------------------------------------------


def split_jid(text: str) -> tuple[str | None, str, str | None]:
    """Split a JID into (localpart, domainpart, resourcepart) without preparing them.

    The resourcepart starts at the first "/", the localpart ends at the first "@" before it
    (RFC 7622 §3.1). A separator followed or preceded by nothing raises ``InvalidJID``.
    """
    if len(text) > 3 * _MAX_RAW_PART + 2:
        raise InvalidJID("JID too long")
    rest, slash, resource = text.partition("/")
    node, at, domain = rest.partition("@")
    if not at:
        node, domain = "", rest
    if slash and not resource:
        raise InvalidJID("empty resourcepart")
    if at and not node:
        raise InvalidJID("empty localpart")
    if not domain:
        raise InvalidJID("empty domainpart")
    return (node if at else None), domain, (resource if slash else None)


@dataclass(frozen=True, slots=True)
class JID:
    """A prepared JID. Build it with ``JID.parse`` or ``JID.from_parts``; the constructor
    itself does no preparation and is meant for already prepared parts."""

    node: str | None
    domain: str
    resource: str | None = None

    @classmethod
    def parse(cls, text: str, *, profile: str = "stringprep", cache: bool = True) -> JID:
        """Split and prepare ``text``. Raises ``InvalidJID``.

        Cached unless ``cache`` is false, which a caller with a cache of its own passes
        (the router): the same JID then holds one entry, not two."""
        _preparers(profile)
        if cache and len(text) <= _CACHE_MAX_INPUT:
            return _parse_cached(text, profile)
        return _parse(text, profile)

    @classmethod
    def from_parts(
        cls,
        node: str | None,
        domain: str,
        resource: str | None = None,
        *,
        profile: str = "stringprep",
    ) -> JID:
        """Prepare separately given parts (e.g. a SASL username and the host).

        Raises ``InvalidJID``."""
        prep_node, prep_resource = _preparers(profile)
        return JID(
            prep_node(node) if node is not None else None,
            nameprep(domain),
            prep_resource(resource) if resource is not None else None,
        )

    @property
    def bare(self) -> JID:
        """This JID without its resourcepart."""
        return self if self.resource is None else JID(self.node, self.domain, None)

    @property
    def full(self) -> str:
        """The string form, resource included (same as ``str(jid)``)."""
        return str(self)

    @property
    def is_bare(self) -> bool:
        """True when there is no resourcepart."""
        return self.resource is None

    @property
    def is_host(self) -> bool:
        """True for a domain-only JID (no localpart, no resourcepart)."""
        return self.node is None and self.resource is None

    def same_bare(self, other: JID) -> bool:
        """Whether ``other`` has the same bare JID: ``a.bare == b.bare`` without building
        two JIDs (asked for every stanza routed)."""
        return self.node == other.node and self.domain == other.domain

    def with_resource(self, resource: str | None, *, profile: str = "stringprep") -> JID:
        """The same bare JID with ``resource`` prepared and attached (None: the bare JID)."""
        if resource is None:
            return self.bare
        return JID(self.node, self.domain, _preparers(profile)[1](resource))

    def __str__(self) -> str:
        text = self.domain if self.node is None else f"{self.node}@{self.domain}"
        return text if self.resource is None else f"{text}/{self.resource}"


def _parse(text: str, profile: str) -> JID:
    node, domain, resource = split_jid(text)
    return JID.from_parts(node, domain, resource, profile=profile)


_parse_cached = functools.lru_cache(maxsize=_CACHE_SIZE)(_parse)


def prep_jid(text: str, profile: str = "stringprep") -> str | None:
    """The normalised string form of ``text``, or None if it is not a valid JID."""
    try:
        return str(JID.parse(text, profile=profile))
    except InvalidJID:
        return None
