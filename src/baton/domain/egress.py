"""Which network addresses Baton may send a request to (webhooks).

A webhook URL is typed by an admin, but the request is made by the server, from inside
the network: without a rule, ``http://169.254.169.254/`` reads the cloud's instance
credentials, ``http://127.0.0.1:5432`` probes the database and ``http://10.0.0.7/admin``
reaches services no outsider should. So a request may only go to a **public** address:
loopback, private, link-local, shared (carrier-grade NAT), multicast, documentation and
other reserved ranges are refused, including IPv4 addresses hidden inside IPv6 forms
(``::ffff:10.0.0.1``, NAT64 ``64:ff9b::a00:1``, 6to4 ``2002:a00:1::``).

The ranges are written out here from the IANA special-purpose registries rather than
taken from :mod:`ipaddress`'s ``is_global``, whose answers have changed between Python
patch releases; a rule that decides what the server may reach should not move with the
interpreter.

A deployment that needs an internal receiver says so explicitly with an allow-list
(``BATON_WEBHOOK_INTERNAL_ALLOWLIST``): addresses, networks in CIDR form, or host
names. The check is made on the *resolved* address at send time, and the connection
goes to the address that was checked, so a DNS answer that changes after the check
(DNS rebinding) cannot move the request inside. This module holds the rule only (no
I/O); :mod:`baton.notify.egress` resolves and connects.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

BLOCKED_V4: tuple[tuple[IPNetwork, str], ...] = (
    (_V4("0.0.0.0/8"), "unspecified"),
    (_V4("10.0.0.0/8"), "private"),
    (_V4("100.64.0.0/10"), "shared (carrier-grade NAT)"),
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("169.254.0.0/16"), "link-local"),
    (_V4("172.16.0.0/12"), "private"),
    (_V4("192.0.0.0/24"), "reserved"),
    (_V4("192.0.2.0/24"), "reserved (documentation)"),
    (_V4("192.88.99.0/24"), "reserved"),
    (_V4("192.168.0.0/16"), "private"),
    (_V4("198.18.0.0/15"), "reserved (benchmarking)"),
    (_V4("198.51.100.0/24"), "reserved (documentation)"),
    (_V4("203.0.113.0/24"), "reserved (documentation)"),
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("240.0.0.0/4"), "reserved"),
)
"""IPv4 ranges a request may not reach, with the word that explains each."""

BLOCKED_V6: tuple[tuple[IPNetwork, str], ...] = (
    (_V6("::/128"), "unspecified"),
    (_V6("::1/128"), "loopback"),
    (_V6("::/8"), "reserved"),
    (_V6("64:ff9b:1::/48"), "private"),
    (_V6("100::/64"), "reserved"),
    (_V6("2001::/23"), "reserved"),
    (_V6("2001:db8::/32"), "reserved (documentation)"),
    (_V6("fc00::/7"), "private"),
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "private"),
    (_V6("ff00::/8"), "multicast"),
)
"""IPv6 ranges a request may not reach (checked after the embedded IPv4 forms)."""

_GLOBAL_UNICAST_V6 = _V6("2000::/3")
_NAT64 = _V6("64:ff9b::/96")
_SIX_TO_FOUR = _V6("2002::/16")

ALLOWLIST_SETTING = "BATON_WEBHOOK_INTERNAL_ALLOWLIST"

_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*")


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, NAT64 or 6to4), if any: a
    request to it reaches that IPv4 address."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        return address.sixtofour
    return None


def address_kind(address: IPAddress) -> str | None:
    """Why a request may not go to ``address`` ("loopback", "private", ...), or None
    for a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            kind = address_kind(inner)
            return f"{kind} (IPv4 {inner} inside IPv6)" if kind else None
        for network, kind in BLOCKED_V6:
            if address in network:
                return kind
        return None if address in _GLOBAL_UNICAST_V6 else "reserved"
    for network, kind in BLOCKED_V4:
        if address in network:
            return kind
    return None


def parse_address(text: str) -> IPAddress | None:
    """``text`` as an IP address (brackets and an IPv6 zone allowed), or None when it is
    a host name."""
    # fe80::1%eth0: the zone names an interface, not another address.
    text = text.strip().removeprefix("[").removesuffix("]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def normal_host(host: str) -> str:
    """A host name as DNS compares it: lower case, without the root's trailing dot."""
    return host.strip().lower().rstrip(".")


@dataclass(frozen=True)
class EgressPolicy:
    """Where requests may go: public addresses, plus the allow-list's networks and host
    names (an allowed host name may resolve to any address)."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, allowlist: str | Iterable[str]) -> EgressPolicy:
        """From the allow-list setting: comma- or space-separated entries, each an
        address (``10.0.0.5``), a network (``10.20.0.0/16``, ``fd00::/8``) or a host name
        (``crm.internal``). Raises ``ValueError`` naming a bad entry."""
        entries = allowlist.replace(",", " ").split() if isinstance(allowlist, str) else allowlist
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            name = normal_host(entry)
            if "/" in name or ":" in name or not _HOST_NAME.fullmatch(name):
                raise ValueError(
                    f"'{entry}' is neither an address, a network (CIDR) nor a host name"
                )
            hosts.add(name)
        return cls(tuple(networks), frozenset(hosts))

    def allows_host(self, host: str) -> bool:
        """Whether ``host`` (a name) is on the allow-list by name."""
        return normal_host(host) in self.hosts

    def problem(self, host: str, address: IPAddress) -> str | None:
        """Why a request to ``host`` may not go to ``address`` (one sentence), or None."""
        if self.allows_host(host) or any(
            address.version == n.version and address in n for n in self.networks
        ):
            return None
        kind = address_kind(address)
        if kind is None:
            return None
        where = str(address) if parse_address(host) == address else f"{host} ({address})"
        return _refusal(where, kind)

    def host_problem(self, host: str) -> str | None:
        """What can be said of a URL's host before any DNS look-up: an address literal
        is checked now, ``localhost`` names are loopback by definition (RFC 6761);
        other names are checked on their resolved addresses when a request is sent."""
        address = parse_address(host)
        if address is not None:
            return self.problem(str(address), address)
        name = normal_host(host)
        if (name == "localhost" or name.endswith(".localhost")) and not self.allows_host(name):
            return _refusal(name, "loopback")
        return None


def _refusal(where: str, kind: str) -> str:
    article = "an" if kind[0] in "aeiou" else "a"
    return (
        f"{where} is {article} {kind} address; webhooks may only reach public addresses "
        f"(list an internal receiver in {ALLOWLIST_SETTING})"
    )
