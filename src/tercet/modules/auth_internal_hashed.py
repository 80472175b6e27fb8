"""Accounts stored as salted SCRAM keys (RFC 5802, RFC 7677) in the host's ``accounts``
keyval store: the default account provider, offered to every module as the ``auth``
service. Another provider (LDAP, a web service) replaces it by providing ``auth`` instead."""

from __future__ import annotations

from tercet.auth.internal import InternalHashedProvider
from tercet.module import ModuleApi

META = {"summary": "Accounts as salted SCRAM keys", "stage": "stable", "xeps": []}


def load(module: ModuleApi) -> None:
    iterations = module.option("scram_iterations")
    module.provides("auth", InternalHashedProvider(module.open_keyval("accounts"),
                                                   iterations=int(iterations)))
