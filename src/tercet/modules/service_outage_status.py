"""Service Outage Status (XEP-0455 §2): where clients find the server's status when it is
in trouble, as a XEP-0128 form in the host's disco#info.

``outage_status_urls`` lists the addresses of a JSON status file (the format of XEP-0455
§2.2, kept on another machine than the server, so it stays reachable when the server is
not); each becomes a value of the ``external-status-addresses`` field of a form with
FORM_TYPE ``urn:xmpp:sos:0``. Clients fetch and cache it (§4). Without the option the
module publishes nothing. docs/admin.md.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from tercet.module import Invalid, ModuleApi, Option
from tercet.protocol.dataforms import Field, build_form
from tercet.protocol.stanza import Element

FORM_TYPE = "urn:xmpp:sos:0"
META = {"summary": "Service outage status addresses", "stage": "beta",
        "xeps": ["XEP-0455", "XEP-0128"]}



def _valid_urls(value: list[str]) -> list[Invalid]:
    for url in value:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return [Invalid("http:// or https:// URLs", repr(url),
                            'Write the whole address, such as '
                            '"https://status.example.org/status.json".')]
    return []


OPTIONS: list[Option[Any]] = [
    # §2.1: values MUST be URIs and SHOULD be http(s), reachable without authentication.
    Option("outage_status_urls", list[str], [],
           "Addresses of the JSON status file clients read when the server is in trouble "
           "(on another machine).", example=["https://status.example.org/status.json"],
           validate=_valid_urls, cite="XEP-0455 §2.1"),
]


def status_form(urls: list[str]) -> Element:
    """The ``urn:xmpp:sos:0`` form of XEP-0455 §2.1 (the list-multi field of §7.1)."""
    return build_form([Field("external-status-addresses", "list-multi", values=tuple(urls))],
                      type_="result", form_type=FORM_TYPE)


def load(module: ModuleApi) -> None:
    urls: list[str] = module.option("outage_status_urls")
    if urls:
        module.add_extension(status_form(urls))
