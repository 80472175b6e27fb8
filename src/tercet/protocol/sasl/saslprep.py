"""SASLprep: the stringprep profile for user names and passwords (RFC 4013).

RFC 4013 §2: map non-ASCII spaces (table C.1.2) to U+0020 and "commonly mapped to nothing"
(B.1) to nothing (§2.1), normalise with NFKC (§2.2), prohibit C.1.2, C.2.1, C.2.2 and
C.3-C.9 (§2.3), apply the bidi rules of RFC 3454 §6 (§2.4). Unassigned code points follow
RFC 3454 §7 (§2.5): rejected in stored strings, allowed in queries. SCRAM's Normalize()
(RFC 5802 §2.2) and PLAIN (RFC 4616 §2) prepare their input as queries.
"""

from __future__ import annotations

import re
import stringprep

from tercet.protocol.jid import StringprepError, StringprepProfile

__all__ = ["SASLPREP_PROFILE", "StringprepError", "saslprep"]

#: RFC 4013 §2.1-2.4.
SASLPREP_PROFILE = StringprepProfile(
    "SASLprep",
    (
        stringprep.in_table_c12,
        stringprep.in_table_c21,
        stringprep.in_table_c22,
        stringprep.in_table_c3,
        stringprep.in_table_c4,
        stringprep.in_table_c5,
        stringprep.in_table_c6,
        stringprep.in_table_c7,
        stringprep.in_table_c8,
        stringprep.in_table_c9,
    ),
    map_spaces=True,
)

# Printable ASCII (space included) is unchanged by every step of SASLprep.
_PRINTABLE_ASCII = re.compile(r"[ -~]*")


def saslprep(text: str, *, allow_unassigned: bool = False) -> str:
    """Prepare ``text`` with SASLprep (RFC 4013).

    ``allow_unassigned=True`` treats it as a query string (RFC 3454 §7). Raises
    ``StringprepError`` (a ``ValueError``) for prohibited output or a bidi violation.
    """
    if _PRINTABLE_ASCII.fullmatch(text):
        return text
    return SASLPREP_PROFILE.prepare(text, allow_unassigned=allow_unassigned)
