"""Entity Time (XEP-0202): the server's UTC time and its local offset from UTC.

``tzo`` is the offset of the server's local time zone at that instant (so it follows
daylight saving time), written ``+HH:MM``/``-HH:MM`` as XEP-0082 asks; ``utc`` is the same
instant in UTC with millisecond precision. Like Prosody, the server also answers for
existing accounts (an iq to a bare JID), since the account has no clock of its own."""

from __future__ import annotations

import datetime as dt
import time

from tercet.module import ModuleApi, StanzaEvent

NS_TIME = "urn:xmpp:time"
META = {"summary": "Entity time", "stage": "stable", "xeps": ["XEP-0202", "XEP-0082"]}


def tzo(offset_seconds: int) -> str:
    """An XEP-0082 time zone offset: 19800 -> "+05:30", -12600 -> "-03:30", 0 -> "+00:00"."""
    sign = "-" if offset_seconds < 0 else "+"
    minutes = abs(offset_seconds) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def local_offset(when: float) -> int:
    """Seconds east of UTC of the local time zone at the instant ``when``."""
    return int(time.localtime(when).tm_gmtoff)


def utc_stamp(when: float) -> str:
    """An XEP-0082 DateTime in UTC: 2024-01-02T03:04:05.678Z."""
    stamp = dt.datetime.fromtimestamp(when, dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def load(module: ModuleApi) -> None:
    def entity_time(event: StanzaEvent) -> bool:
        now = module.now()
        reply = event.stanza.reply()
        reply.tag("time", NS_TIME).text_tag("tzo", tzo(local_offset(now))).text_tag(
            "utc", utc_stamp(now))
        event.origin.send(reply)
        return True

    async def account_time(event: StanzaEvent) -> bool | None:
        # RFC 6121 §8.5.1: no answer on behalf of an account that does not exist.
        if event.to_type != "self" and not await module.account_exists(
                event.to.node if event.to is not None else None):
            return None
        return entity_time(event)

    module.add_feature(NS_TIME)
    module.hook(f"iq-get/host/{NS_TIME}:time", entity_time)
    module.hook(f"iq-get/bare/{NS_TIME}:time", account_time)
