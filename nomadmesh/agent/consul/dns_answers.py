"""Consul's DNS interface, answered from the catalog: a query message in, a response message out.

Names under the `consul.` domain, with or without the datacenter label, as Consul resolves them:

    <svc>.service[.<dc>].consul          healthy instances of <svc> (A: addresses, SRV: port + target)
    <tag>.<svc>.service[.<dc>].consul    only the instances carrying <tag>
    _<svc>._<tag>.service[.<dc>].consul  RFC 2782 form (`_tcp` means any tag)
    <svc>.connect[.<dc>].consul          the Connect-capable instances: <svc>'s sidecar proxies
    <node>.node[.<dc>].consul            the node's address
    <hex ip>.addr[.<dc>].consul          an SRV target naming an address (8 hex digits for IPv4)

"Healthy" is Consul's default (`only_passing = false`): an instance is left out when any of its
checks is critical, warning ones stay. A name that matches nothing is NXDOMAIN, and an empty answer
(an AAAA for an IPv4-only instance) NOERROR; both carry the zone's SOA in the authority section with
Consul's defaults (ns.consul., hostmaster.consul., refresh 3600, retry 600, expire 86400, min TTL 0).
Answers have TTL 0 (Consul's default service and node TTLs). With no recursors configured, a name
outside the domain is REFUSED. dnspython builds every record; nothing here touches a socket.
"""
from __future__ import annotations

import ipaddress
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

DOMAIN = dns.name.from_text("consul.")
SOA_REFRESH, SOA_RETRY, SOA_EXPIRE, SOA_MIN_TTL = 3600, 600, 86400, 0
TTL = 0

# (service name, connect) -> Consul health entries [{Node, Service, Checks}] (Catalog.health's shape)
HealthLookup = Callable[[str, bool], list[dict[str, Any]]]


@dataclass(frozen=True)
class DnsView:
    """What the DNS answers are computed from: the one node and a health lookup."""
    datacenter: str
    node_name: str
    node_address: str
    health: HealthLookup


@dataclass(frozen=True)
class _Target:
    """One healthy instance: where it answers and the name its SRV record points at."""
    address: str
    port: int
    target: dns.name.Name
    weight: int


def respond(query: dns.message.Message, view: DnsView) -> dns.message.Message:
    """The response to `query` (its first question; Consul answers one question per message)."""
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    response.flags &= ~dns.flags.RA
    if not query.question:
        response.set_rcode(dns.rcode.FORMERR)
        return response
    question = query.question[0]
    qname, qtype = question.name, question.rdtype
    if not qname.is_subdomain(DOMAIN):
        response.flags &= ~dns.flags.AA
        response.set_rcode(dns.rcode.REFUSED)
        return response
    found = _lookup(qname, view)
    if found is None:
        response.set_rcode(dns.rcode.NXDOMAIN)
        _add_soa(response)
        return response
    _answer(response, qname, qtype, found, view)
    if not response.answer:
        _add_soa(response)
    return response


def _lookup(qname: dns.name.Name, view: DnsView) -> list[_Target] | None:
    """The instances or address a name stands for, or None when it names nothing (NXDOMAIN)."""
    labels = [label.decode("ascii", "replace").lower() for label in qname.relativize(DOMAIN).labels]
    if labels and labels[-1] == view.datacenter.lower():
        labels = labels[:-1]
    if len(labels) < 2:
        return None
    kind, names = labels[-1], labels[:-1]
    if kind == "service":
        return _service_targets(names, view, connect=False)
    if kind == "connect" and len(names) == 1:
        return _service_targets(names, view, connect=True)
    if kind == "node" and len(names) == 1:
        if names[0] != view.node_name.lower():
            return None
        return [_Target(view.node_address, 0, _node_name(view), 1)]
    if kind == "addr" and len(names) == 1:
        address = _addr_from_hex(names[0])
        return None if address is None else [_Target(address, 0, qname, 1)]
    return None


def _service_targets(names: list[str], view: DnsView, connect: bool) -> list[_Target] | None:
    if len(names) == 2 and names[0].startswith("_") and names[1].startswith("_"):  # RFC 2782: _svc._tag
        service, tag = names[0][1:], names[1][1:]
        tag = "" if tag == "tcp" else tag
    elif len(names) == 2:
        tag, service = names
    elif len(names) == 1:
        tag, service = "", names[0]
    else:
        return None
    targets = []
    for entry in view.health(service, connect):
        svc = entry["Service"]
        if any(c.get("Status") == "critical" for c in entry.get("Checks") or []):
            continue
        if tag and tag not in [t.lower() for t in svc.get("Tags") or []]:
            continue
        address = svc.get("Address") or entry["Node"]["Address"]
        weight = int((svc.get("Weights") or {}).get("Passing") or 1)
        target = _addr_name(address, view) if svc.get("Address") else _node_name(view)
        targets.append(_Target(address, int(svc.get("Port") or 0), target, weight))
    random.shuffle(targets)  # as Consul does, so clients that take the first answer spread out
    return targets or None  # no healthy instance: NXDOMAIN, as Consul answers


def _answer(response: dns.message.Message, qname: dns.name.Name, qtype: int, targets: list[_Target],
            view: DnsView) -> None:
    want_srv = qtype in (dns.rdatatype.SRV, dns.rdatatype.ANY)
    for t in targets:
        ip_type = _ip_type(t.address)
        if want_srv and t.port:
            srv = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.SRV, f"1 {t.weight} {t.port} {t.target}")
            response.find_rrset(response.answer, qname, dns.rdataclass.IN, dns.rdatatype.SRV, create=True).add(srv, TTL)
            if ip_type is not None:
                _add_address(response.additional, response, t.target, ip_type, t.address)
        elif ip_type is not None and qtype in (ip_type, dns.rdatatype.ANY):
            _add_address(response.answer, response, qname, ip_type, t.address)


def _add_address(section: list[dns.rrset.RRset], response: dns.message.Message, name: dns.name.Name,
                 rdtype: dns.rdatatype.RdataType, address: str) -> None:
    rrset = response.find_rrset(section, name, dns.rdataclass.IN, rdtype, create=True)
    rrset.add(dns.rdata.from_text(dns.rdataclass.IN, rdtype, address), TTL)


def _add_soa(response: dns.message.Message) -> None:
    soa = dns.rdata.from_text(
        dns.rdataclass.IN, dns.rdatatype.SOA,
        f"ns.{DOMAIN} hostmaster.{DOMAIN} {int(time.time()) & 0xFFFFFFFF} "
        f"{SOA_REFRESH} {SOA_RETRY} {SOA_EXPIRE} {SOA_MIN_TTL}")
    response.find_rrset(response.authority, DOMAIN, dns.rdataclass.IN, dns.rdatatype.SOA, create=True).add(
        soa, SOA_MIN_TTL)


def _ip_type(address: str) -> dns.rdatatype.RdataType | None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None  # a host name: the dev agent's instances always register IPs
    return dns.rdatatype.A if ip.version == 4 else dns.rdatatype.AAAA


def _node_name(view: DnsView) -> dns.name.Name:
    return dns.name.from_text(f"{view.node_name}.node.{view.datacenter}", DOMAIN)


def _addr_name(address: str, view: DnsView) -> dns.name.Name:
    """Consul's SRV target for an instance with its own address: `<hex ip>.addr.<dc>.consul.`."""
    try:
        packed = ipaddress.ip_address(address).packed.hex()
    except ValueError:
        return _node_name(view)
    return dns.name.from_text(f"{packed}.addr.{view.datacenter}", DOMAIN)


def _addr_from_hex(label: str) -> str | None:
    try:
        packed = bytes.fromhex(label)
    except ValueError:
        return None
    if len(packed) not in (4, 16):
        return None
    return str(ipaddress.ip_address(packed))
