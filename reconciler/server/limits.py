"""What ``reconciler serve`` allows each client, and the proxies whose headers it trusts.

``ClientLimits`` holds the numbers the serving worker (``reconciler.server.worker``)
enforces on every connection: how long a client may take to send a request, how long an
idle kept-alive connection stays open, how long a send may make no progress, and how
many connections one client address may hold. ``TrustedProxies`` is
``--forwarded-allow-ips``: only a peer on that list may say who the client is
(``X-Forwarded-For``) and whether it came over HTTPS (``X-Forwarded-Proto``); any other
peer's are ignored, so a client cannot make itself look like someone else to the access
log or the login throttle.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from reconciler.errors import InvalidInput

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class TrustedProxies:
    """Addresses and networks (``10.0.0.0/8``, ``127.0.0.1``, ``::1``) of the reverse
    proxies in front of the server; empty by default: nobody is trusted."""

    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, text: str | Iterable[str] | None) -> TrustedProxies:
        """From ``--forwarded-allow-ips`` (comma-separated); ``InvalidInput`` naming the bad entry."""
        if text is None:
            return cls()
        items = text.split(",") if isinstance(text, str) else list(text)
        networks = []
        for item in (i.strip() for i in items):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=True))
            except ValueError as exc:
                raise InvalidInput(f"--forwarded-allow-ips: {item!r} is not an IP address or network: {exc}",
                                   hint="list the reverse proxies' addresses, e.g. 127.0.0.1,10.0.0.0/8") from None
        return cls(tuple(networks))

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, address: str) -> bool:
        if not self.networks or not address:
            return False
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        return any(ip in net for net in self.networks)

    def client(self, peer: str, forwarded_for: str | None) -> str:
        """The client's address: the peer itself, unless the peer is a trusted proxy
        with an ``X-Forwarded-For`` header; then the right-most address in it that is
        not a trusted proxy (the entries left of it were written by the client and
        prove nothing)."""
        if not forwarded_for or not self.trusts(peer):
            return peer
        hops = [h.strip() for h in forwarded_for.split(",")]
        for hop in reversed(hops):
            if not hop:
                continue
            try:
                ipaddress.ip_address(hop)
            except ValueError:
                return peer  # not an address (a forged or garbled header): keep the peer
            if not self.trusts(hop):
                return hop
        return peer

    def scheme(self, peer: str, forwarded_proto: str | None) -> str | None:
        """``http`` or ``https`` as a trusted proxy's ``X-Forwarded-Proto`` says (the
        first value of a list), else None: the connection's own scheme stands."""
        if not forwarded_proto or not self.trusts(peer):
            return None
        proto = forwarded_proto.split(",", 1)[0].strip().lower()
        return proto if proto in ("http", "https") else None


@dataclass(frozen=True)
class ClientLimits:
    """What ``reconciler serve`` allows each client (docs/server.md, "Slow and idle clients")."""

    #: seconds a client has to send a whole request (headers and any small body), from
    #: its connection or from the first byte of a request on a kept-alive one
    request_timeout: float = 10.0
    #: seconds an idle kept-alive connection stays open between requests
    keepalive: float = 30.0
    #: seconds a response may make no progress (a client that stops reading) before the
    #: connection is dropped
    send_timeout: float = 60.0
    #: open connections one client address may hold in each worker process; trusted
    #: proxies (which carry many clients' connections) are exempt
    max_client_connections: int = 100
    trusted_proxies: TrustedProxies = field(default_factory=TrustedProxies)
