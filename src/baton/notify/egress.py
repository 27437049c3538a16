"""An HTTP client that only connects where :mod:`baton.domain.egress` allows.

Checking a URL's host when an endpoint is saved is not enough: a name can resolve to a
public address then and to ``169.254.169.254`` a minute later (DNS rebinding), and a
client that resolves the name again when it connects would follow. So the check sits
in the client's connection step itself: the host is resolved once, *every* address it
resolves to is checked (a name that points partly inside is refused), and the socket is
opened to an address that was checked, never to the name. TLS still verifies the
certificate against the URL's host name, so HTTPS keeps working.

Both steps are injectable, which is how the tests check the rule without ever
connecting to a private or link-local address: a *resolver* ``(host, port) ->
addresses`` (default: the system's ``getaddrinfo``) and a *connector* ``(address, port,
timeout) -> stream`` (default: a plain TCP connection).

The client never uses proxies from the environment (``HTTP_PROXY``...): behind a
proxy the proxy would resolve the name, and the check would be made on the proxy's
address instead of the receiver's.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import httpcore
import httpx

from baton.config import Settings
from baton.domain.egress import EgressPolicy, parse_address

Resolver = Callable[[str, int], Sequence[str]]
"""``(host, port)`` -> the host's addresses, in the order to try them."""
Connector = Callable[[str, int, float | None], httpcore.NetworkStream]
"""``(address, port, timeout)`` -> an open stream to that address."""


class EgressRefused(Exception):
    """The request would have gone to an address the policy refuses; nothing was sent."""


def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses from the operating system (``getaddrinfo``), without
    duplicates, in the order the system prefers."""
    address = parse_address(host)
    if address is not None:
        return [str(address)]
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise httpcore.ConnectError(f"cannot resolve {host}: {error}") from error
    return list(dict.fromkeys(str(info[4][0]) for info in found))


_TCP = httpcore.SyncBackend()


def tcp_connector(address: str, port: int, timeout: float | None) -> httpcore.NetworkStream:
    """A plain TCP connection to ``address`` (an IP address, never a name)."""
    return _TCP.connect_tcp(address, port, timeout=timeout)


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's network step with the policy in it (see the module docstring)."""

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        resolver: Resolver = system_resolver,
        connector: Connector = tcp_connector,
    ) -> None:
        self.policy = policy
        self.resolver = resolver
        self.connector = connector

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = list(self.resolver(host, port))
        if not addresses:
            raise httpcore.ConnectError(f"{host} has no address")
        for text in addresses:
            address = parse_address(text)
            if address is None:
                raise EgressRefused(f"{host} resolved to {text!r}, which is not an address")
            problem = self.policy.problem(host, address)
            if problem is not None:
                raise EgressRefused(problem)
        error: Exception | None = None
        for text in addresses:
            try:
                return self.connector(text, port, timeout)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as failed:
                error = failed
        assert error is not None
        raise error

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise EgressRefused("webhooks never connect to a local socket")


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport over a :class:`GuardedBackend` connection pool."""

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        resolver: Resolver = system_resolver,
        connector: Connector = tcp_connector,
    ) -> None:
        super().__init__(trust_env=False)
        # httpx has no public way to give its pool a network backend; build the pool
        # it would have built (no proxy), with ours. A change inside httpx fails here.
        assert isinstance(self._pool, httpcore.ConnectionPool)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=GuardedBackend(policy, resolver=resolver, connector=connector),
        )


def guarded_client(
    policy: EgressPolicy,
    *,
    resolver: Resolver = system_resolver,
    connector: Connector = tcp_connector,
) -> httpx.Client:
    """An ``httpx.Client`` that follows no redirects, reads no proxy settings and
    connects only where ``policy`` allows."""
    return httpx.Client(
        transport=GuardedTransport(policy, resolver=resolver, connector=connector),
        follow_redirects=False,
        trust_env=False,
    )


def webhook_client(
    settings: Settings,
    *,
    resolver: Resolver = system_resolver,
    connector: Connector = tcp_connector,
) -> httpx.Client:
    """The client the worker posts webhooks with: public addresses, plus
    ``BATON_WEBHOOK_INTERNAL_ALLOWLIST``."""
    policy = EgressPolicy.parse(settings.webhook_internal_allowlist)
    return guarded_client(policy, resolver=resolver, connector=connector)
