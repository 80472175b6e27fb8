"""A small authoritative DNS responder for the interop tests, written with dnspython.

It runs *inside* a test network namespace (``ip netns exec NAME python netns_dns.py ...``) and
answers, over UDP and TCP, from a JSON description of the records that the test fixture writes
(and may rewrite while the responder runs: the file is read again whenever it changes)::

    {"records": {"prosody-a.test.": [["A", "127.0.0.2"]],
                 "_xmpp-server._tcp.prosody-a.test.": [["SRV", "0 5 5270 s2s.prosody-a.test."]]}}

It is authoritative for every name: a name that owns records, or is an ancestor of one (an
"empty non-terminal", RFC 8020), gets NOERROR with the records of the asked type (possibly
none: NODATA); any other name gets NXDOMAIN. Both negative answers carry a SOA whose minimum
TTL is 0 and answers have TTL 0, so no resolver caches anything between two steps of a test.

Usage: python netns_dns.py ZONE_JSON ADDRESS PORT READY_FILE
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

log = logging.getLogger("netns_dns")

#: RFC 1035 §4.2.1: without EDNS a UDP answer is at most 512 bytes.
UDP_DEFAULT_PAYLOAD = 512
#: Bound on one TCP connection's idle time between queries (RFC 7766 §6.2.3 suggests seconds).
TCP_IDLE_TIMEOUT = 10.0
#: Records never change faster than a test can rewrite them; nothing should be cached.
TTL = 0
SOA_TEXT = "ns.test. hostmaster.test. 1 3600 600 86400 0"


@dataclass
class Zone:
    """The records, read again from ``path`` whenever the file changes."""

    path: Path
    records: dict[dns.name.Name, list[dns.rrset.RRset]] = field(default_factory=dict)
    existing: set[dns.name.Name] = field(default_factory=set)
    _stamp: tuple[int, int, int] | None = None

    def refresh(self) -> None:
        st = self.path.stat()
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        data = json.loads(self.path.read_text())
        records: dict[dns.name.Name, list[dns.rrset.RRset]] = {}
        for owner_text, entries in data["records"].items():
            owner = dns.name.from_text(owner_text.lower())
            by_type: dict[dns.rdatatype.RdataType, dns.rrset.RRset] = {}
            for rdtype_text, rdata_text in entries:
                rdtype = dns.rdatatype.from_text(rdtype_text)
                rdata = dns.rdata.from_text(dns.rdataclass.IN, rdtype, rdata_text)
                rrset = by_type.setdefault(
                    rdtype, dns.rrset.RRset(owner, dns.rdataclass.IN, rdtype))
                rrset.add(rdata, TTL)
            records[owner] = list(by_type.values())
        existing: set[dns.name.Name] = set()
        for owner in records:
            name = owner
            while name != dns.name.root:
                existing.add(name)
                name = name.parent()
        self.records, self.existing, self._stamp = records, existing, stamp
        log.info("loaded %d names from %s", len(records), self.path)

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
            response.set_rcode(dns.rcode.NOTIMP)
            return response
        question = query.question[0]
        qname = question.name.canonicalize()  # names compare case-insensitively anyway
        self.refresh()
        if qname not in self.existing:
            response.set_rcode(dns.rcode.NXDOMAIN)
        for rrset in self.records.get(qname, ()):
            if question.rdtype in (rrset.rdtype, dns.rdatatype.ANY):
                # Echo the name as asked (resolvers may randomise its case, "0x20").
                response.answer.append(dns.rrset.RRset(question.name, rrset.rdclass,
                                                       rrset.rdtype))
                response.answer[-1].update(rrset)
        if not response.answer:
            soa = dns.rrset.from_text(qname.split(2)[1] if len(qname) > 2 else dns.name.root,
                                      TTL, "IN", "SOA", SOA_TEXT)
            response.authority.append(soa)
        log.info("%s %s -> %s, %d answers", question.name,
                 dns.rdatatype.to_text(question.rdtype),
                 dns.rcode.to_text(response.rcode()), len(response.answer))
        return response


def respond(zone: Zone, wire: bytes, limit: int | None) -> bytes | None:
    """The answer to one query in wire format, or None for a packet we cannot parse."""
    try:
        query = dns.message.from_wire(wire)
    except dns.exception.DNSException as exc:
        log.warning("unparsable query (%s)", exc)
        return None
    response = zone.answer(query)
    if limit is None:
        return response.to_wire()
    if query.edns >= 0:
        limit = max(UDP_DEFAULT_PAYLOAD, query.payload)
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        # RFC 1035 §4.2.1 / RFC 7766: truncate, and the client retries over TCP.
        truncated = dns.message.make_response(query)
        truncated.flags |= dns.flags.AA | dns.flags.TC
        return truncated.to_wire()


class Udp(asyncio.DatagramProtocol):
    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = respond(self.zone, data, UDP_DEFAULT_PAYLOAD)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


async def serve_tcp(zone: Zone, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> None:
    # RFC 1035 §4.2.2 / RFC 7766 §8: each message is preceded by its 16-bit length; a client
    # may send several queries on one connection.
    try:
        while True:
            async with asyncio.timeout(TCP_IDLE_TIMEOUT):
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                wire = await reader.readexactly(length)
            reply = respond(zone, wire, None)
            if reply is None:
                break
            writer.write(struct.pack("!H", len(reply)) + reply)
            await writer.drain()
    except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(zone_path: Path, address: str, port: int, ready: Path) -> None:
    zone = Zone(zone_path)
    zone.refresh()
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: Udp(zone), local_addr=(address, port))
    server = await asyncio.start_server(lambda r, w: serve_tcp(zone, r, w), address, port)
    log.info("serving on %s port %d (UDP and TCP), pid %d", address, port, os.getpid())
    ready.write_text(f"{os.getpid()}\n")
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    zone_arg, address_arg, port_arg, ready_arg = sys.argv[1:5]
    try:
        asyncio.run(main(Path(zone_arg), address_arg, int(port_arg), Path(ready_arg)))
    except KeyboardInterrupt:
        pass
