"""Where webhooks may go: the address rule on plain values (no network, no database)."""

from __future__ import annotations

import ipaddress

import pytest

from baton.domain.egress import EgressPolicy, address_kind, parse_address

DEFAULT = EgressPolicy()


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.5", "private"),
        ("172.16.4.4", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "shared (carrier-grade NAT)"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("255.255.255.255", "reserved"),
        ("240.0.0.1", "reserved"),
        ("192.0.2.10", "reserved (documentation)"),
        ("2001:db8::1", "reserved (documentation)"),
        ("198.18.0.1", "reserved (benchmarking)"),
        ("2001::1", "reserved"),  # Teredo
        ("4000::1", "reserved"),  # outside global unicast
        # IPv4 inside IPv6: judged by the IPv4 address it reaches.
        ("::ffff:127.0.0.1", "loopback (IPv4 127.0.0.1 inside IPv6)"),
        ("::ffff:169.254.169.254", "link-local (IPv4 169.254.169.254 inside IPv6)"),
        ("64:ff9b::a00:1", "private (IPv4 10.0.0.1 inside IPv6)"),
        ("2002:a9fe:a9fe::1", "link-local (IPv4 169.254.169.254 inside IPv6)"),
    ],
)
def test_inside_addresses_are_named(address: str, kind: str) -> None:
    assert address_kind(ipaddress.ip_address(address)) == kind
    problem = DEFAULT.problem(address, ipaddress.ip_address(address))
    assert problem is not None and "webhooks may only reach public addresses" in problem
    assert "BATON_WEBHOOK_INTERNAL_ALLOWLIST" in problem


@pytest.mark.parametrize(
    "address",
    [
        "93.184.215.14",
        "8.8.8.8",
        "1.1.1.1",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "2002:808:808::1",
    ],
)
def test_public_addresses_pass(address: str) -> None:
    assert address_kind(ipaddress.ip_address(address)) is None
    assert DEFAULT.problem("hooks.example.com", ipaddress.ip_address(address)) is None


def test_the_refusal_names_the_host_and_the_address() -> None:
    assert DEFAULT.problem("evil.example", ipaddress.ip_address("169.254.169.254")) == (
        "evil.example (169.254.169.254) is a link-local address; webhooks may only reach "
        "public addresses (list an internal receiver in BATON_WEBHOOK_INTERNAL_ALLOWLIST)"
    )
    assert DEFAULT.problem("0.0.0.0", ipaddress.ip_address("0.0.0.0")).startswith(  # type: ignore[union-attr]
        "0.0.0.0 is an unspecified address"
    )


def test_the_allowlist_takes_addresses_networks_and_host_names() -> None:
    policy = EgressPolicy.parse("10.20.0.0/16, 127.0.0.1  fd00::/8,CRM.Internal.")
    assert policy.hosts == frozenset({"crm.internal"})
    assert policy.problem("x", ipaddress.ip_address("10.20.3.4")) is None
    assert policy.problem("x", ipaddress.ip_address("127.0.0.1")) is None
    assert policy.problem("x", ipaddress.ip_address("fd00::7")) is None
    assert policy.problem("crm.internal", ipaddress.ip_address("10.99.0.1")) is None
    # Everything else inside stays refused, also the same address in another form.
    assert policy.problem("x", ipaddress.ip_address("10.21.0.1")) is not None
    assert policy.problem("x", ipaddress.ip_address("127.0.0.2")) is not None
    assert policy.problem("x", ipaddress.ip_address("::ffff:127.0.0.1")) is not None
    assert policy.problem("other.internal", ipaddress.ip_address("10.99.0.1")) is not None


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "bad_host!", "http://x", "a/b"])
def test_a_bad_allowlist_entry_is_named(entry: str) -> None:
    with pytest.raises(ValueError, match="neither an address, a network"):
        EgressPolicy.parse(f"10.0.0.1,{entry}")


@pytest.mark.parametrize(
    ("host", "refused"),
    [
        ("169.254.169.254", True),
        ("[::1]", True),
        ("::ffff:7f00:1", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        ("api.localhost", True),
        ("hooks.example.com", False),  # a name: checked on its addresses when sent
        ("93.184.215.14", False),
    ],
)
def test_what_can_be_refused_before_any_dns_look_up(host: str, refused: bool) -> None:
    assert (DEFAULT.host_problem(host) is not None) is refused


def test_a_listed_localhost_name_is_allowed() -> None:
    assert EgressPolicy.parse("localhost").host_problem("localhost") is None


def test_parse_address_takes_brackets_and_zones() -> None:
    assert parse_address("[::1]") == ipaddress.ip_address("::1")
    assert parse_address("fe80::1%eth0") == ipaddress.ip_address("fe80::1")
    assert parse_address("hooks.example.com") is None
