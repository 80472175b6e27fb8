"""Accounts stored as salted SCRAM keys (RFC 5802, RFC 7677) in the host's ``accounts``
keyval store: the default account provider, offered to every module as the ``auth``
service. Another provider (LDAP, a web service) replaces it by providing ``auth`` instead.

It also runs the purge of accounts deleted with a grace period
(``user_deletion_grace_period``, docs/accounts.md "Account lifecycle"): every
``PURGE_INTERVAL`` seconds, a batch at a time, sooner while a backlog remains."""

from __future__ import annotations

from tercet.auth.internal import LOGINS_STORE, InternalHashedProvider
from tercet.module import ModuleApi

META = {"summary": "Accounts as salted SCRAM keys", "stage": "stable", "xeps": []}
#: Seconds between purge runs: deletion times are honoured to within this.
PURGE_INTERVAL = 3600.0
#: Seconds to the next run while the last one filled its batch.
PURGE_BACKLOG_DELAY = 1.0
#: Seconds from start to the first run: after the start-up's own work.
PURGE_FIRST_DELAY = 60.0
PURGE_BATCH = 50


def load(module: ModuleApi) -> None:
    iterations = module.option("scram_iterations")
    # Last logins in their own host-wide map, written in batches (tercet.auth.internal).
    module.provides("auth", InternalHashedProvider(module.open_keyval("accounts"),
                                                   iterations=int(iterations),
                                                   logins=module.open_map(LOGINS_STORE)))

    async def purge() -> float:
        purged = await module.purge_deleted_accounts(PURGE_BATCH)
        return PURGE_BACKLOG_DELAY if purged >= PURGE_BATCH else PURGE_INTERVAL

    module.add_timer(PURGE_FIRST_DELAY, purge)


async def unload(module: ModuleApi) -> None:
    """Write the last logins still queued before the storage closes."""
    provider = module.find("auth", InternalHashedProvider)
    if provider is not None:
        await provider.flush_logins()
