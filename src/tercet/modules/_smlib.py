"""The events stream management (XEP-0198, ``smacks``) fires so that other modules can take
part in a hibernation, as push notifications (XEP-0357, ``cloud_notify``) does.
"""

from __future__ import annotations

from dataclasses import dataclass

from tercet.module import ClientSession

# Fired on the host when a hibernated session's time is up, before it ends.
HIBERNATION_TIMEOUT = "smacks-hibernation-timeout"
# Fired on the host (payload: the ClientSession) when the client asks for an
# acknowledgement (<r/>), before the <a/> goes out: a module that finishes work for the
# stanzas received so far in the background (the archive writer) returns an awaitable,
# so that an acknowledged stanza is also a stored one.
ACKNOWLEDGE = "smacks-acknowledge"


@dataclass
class HibernationTimeout:
    """A hibernated session whose time is up (times are the server's clock, seconds).

    A handler that sets ``until`` to a time after ``now`` keeps the session hibernated
    until then (the latest ``until`` of all handlers wins; the session is asked again
    when it comes). Handlers observe: they return None, so every one of them runs.
    """

    session: ClientSession
    since: float  # when the connection was lost
    now: float
    period: float  # smacks_hibernation_time
    until: float | None = None

    def extend(self, until: float) -> None:
        if until > self.now and (self.until is None or until > self.until):
            self.until = until
