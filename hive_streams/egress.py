"""Where outbound HTTP may go, for http nodes now and callbacks later.

Loopback, link-local, private and other non-public addresses, and the fabric's own listeners,
are denied unless allow-listed. The check runs on the addresses a name resolves to, and the
request then goes to the address that was checked (no second lookup to rebind); every redirect
is followed by hand and checked again. Bodies are read incrementally up to a cap.
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable
from urllib.parse import urlsplit

import httpx

from .exceptions import ConfigError, HiveError
from .settings import Settings

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 5
CREDENTIAL_HEADERS = ("authorization", "cookie", "proxy-authorization")


class EgressDenied(HiveError):
    """The policy does not let a request go there."""


class EgressError(HiveError):
    """The request went out but failed: transport error, timeout, too large, too many redirects."""


@dataclass(frozen=True)
class Rule:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    port: int | None = None

    @classmethod
    def parse(cls, entry: str) -> "Rule":
        """`IP`, `CIDR`, `IP:port`, `CIDR:port`, `[IPv6]:port` or `[IPv6 CIDR]:port`."""
        text, port = entry.strip(), None
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            text, port = host, rest.removeprefix(":") or None
        elif text.count(":") == 1:
            text, port = text.split(":")
        try:
            return cls(ipaddress.ip_network(text, strict=False), int(port) if port is not None else None)
        except ValueError:
            raise ConfigError(f"HIVE_EGRESS_ALLOW: {entry!r} is not an IP, a CIDR or either with :port") from None

    def matches(self, ip: IP, port: int) -> bool:
        return ip in self.network and self.port in (None, port)


@dataclass(frozen=True)
class Response:
    status: int
    headers: httpx.Headers
    body: bytes
    url: str


@dataclass(frozen=True)
class EgressPolicy:
    allow: tuple[Rule, ...] = ()
    listeners: tuple[tuple[IP | None, int], ...] = ()  # (None, port): that port on any address of this host
    max_bytes: int = 1024 * 1024
    timeout_seconds: float = 30.0
    local: Callable[[IP], bool] = lambda ip: _is_local(ip)

    @classmethod
    def from_settings(cls, s: Settings) -> "EgressPolicy":
        allow = tuple(Rule.parse(e) for e in s.egress_allow.split(",") if e.strip())
        return cls(allow, fabric_listeners(s), s.egress_max_kb * 1024, s.egress_timeout_seconds)

    def allowing(self, *entries: str) -> "EgressPolicy":
        return EgressPolicy(self.allow + tuple(Rule.parse(e) for e in entries), self.listeners, self.max_bytes,
                            self.timeout_seconds, self.local)

    def verdict(self, address: str | IP, port: int) -> str:
        """Empty when a connection to address:port is allowed, else why not."""
        ip = _unmapped(ipaddress.ip_address(address))
        for host, listener_port in self.listeners:
            if port == listener_port and (ip == host or (host is None and (ip.is_loopback or self.local(ip)))):
                if any(r.port == port and r.matches(ip, port) for r in self.allow):
                    return ""  # only an entry naming this very port opens a listener of the fabric
                return f"{_show(ip, port)} is one of the fabric's own listeners"
        if any(r.matches(ip, port) for r in self.allow):
            return ""
        for kind in ("loopback", "link_local", "private", "multicast", "unspecified", "reserved"):
            if getattr(ip, f"is_{kind}"):
                return f"{_show(ip, port)} is a {kind.replace('_', '-')} address"
        return "" if ip.is_global else f"{_show(ip, port)} is not a public address"

    async def check(self, url: str) -> tuple[httpx.URL, str]:
        """The URL and the one address it may be fetched from; raises EgressDenied."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise EgressDenied(f"{url!r} is not a valid URL: {exc}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise EgressDenied(f"{url!r}: only http and https URLs with a host may be fetched")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            found = await asyncio.get_running_loop().getaddrinfo(parsed.host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise EgressError(f"cannot resolve {parsed.host!r}: {exc}") from None
        addresses = list(dict.fromkeys(info[4][0] for info in found))
        for address in addresses:  # one bad address is enough: the name could lead there
            reason = self.verdict(address, port)
            if reason:
                raise EgressDenied(f"{parsed.host} -> {reason}; denied by the egress policy")
        return parsed, addresses[0]

    async def fetch(self, method: str, url: str, *, json: Any = None, headers: dict | None = None,
                    timeout: float | None = None, content: bytes | None = None) -> Response:
        """One request, redirects followed by hand, each hop checked; raises EgressDenied or EgressError."""
        headers = {str(k): str(v) for k, v in (headers or {}).items() if str(k).lower() != "host"}
        timeout = min(timeout or self.timeout_seconds, self.timeout_seconds)
        for _ in range(MAX_REDIRECTS + 1):
            parsed, address = await self.check(url)
            response = await self._send(method, parsed, address, json, headers, timeout, content)
            location = response.headers.get("location")
            if response.status not in REDIRECTS or not location:
                return response
            try:
                next_url = parsed.join(location)
            except httpx.InvalidURL as exc:
                raise EgressError(f"{url} redirected to an invalid URL: {exc}") from None
            if (next_url.scheme, next_url.host, next_url.port) != (parsed.scheme, parsed.host, parsed.port):
                headers = {k: v for k, v in headers.items() if k.lower() not in CREDENTIAL_HEADERS}
            if (response.status == 303 and method != "HEAD") or (response.status in (301, 302) and method == "POST"):
                method, json, content = "GET", None, None
            url = str(next_url)
        raise EgressError(f"more than {MAX_REDIRECTS} redirects")

    async def _send(self, method: str, parsed: httpx.URL, address: str, json: Any, headers: dict,
                    timeout: float, content: bytes | None = None) -> Response:
        target = parsed.copy_with(host=address)
        host_header = parsed.host if parsed.port is None else f"{_bracketed(parsed.host)}:{parsed.port}"
        extensions = {"sni_hostname": parsed.host} if parsed.scheme == "https" else {}
        try:
            async with httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=timeout) as client:
                async with client.stream(method, target, json=json, content=content,
                                         headers={**headers, "Host": host_header}, extensions=extensions) as reply:
                    body = await self._read(reply)
                    return Response(reply.status_code, reply.headers, body, str(parsed))
        except httpx.TimeoutException as exc:
            raise EgressError(f"{method} {parsed} timed out after {timeout:g}s ({type(exc).__name__})") from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise EgressError(f"{method} {parsed} failed: {type(exc).__name__}: {exc}") from None

    async def _read(self, reply: httpx.Response) -> bytes:
        declared = reply.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise EgressError(f"response of {declared} bytes is over the limit of {self.max_bytes}")
        body = bytearray()
        async for chunk in reply.aiter_bytes():
            body += chunk
            if len(body) > self.max_bytes:
                raise EgressError(f"response is over the limit of {self.max_bytes} bytes")
        return bytes(body)


def fabric_listeners(s: Settings) -> tuple[tuple[IP | None, int], ...]:
    """The API, the Kafka bootstrap servers and the store's server, by address and port."""
    endpoints = [(s.api_host, s.api_port), ("127.0.0.1", s.postgres_port)]
    for server in s.bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        if port.isdigit():
            endpoints.append((host.strip("[]") or "127.0.0.1", int(port)))
    database = urlsplit(s.database_url) if "://" in s.database_url else None
    if database is not None and database.hostname:
        try:
            endpoints.append((database.hostname, database.port or 5432))
        except ValueError:
            pass
    listeners: list[tuple[IP | None, int]] = []
    for host, port in endpoints:
        for ip in _addresses(host):
            if (ip, port) not in listeners:
                listeners.append((ip, port))
    return tuple(listeners)


def _addresses(host: str) -> list[IP | None]:
    try:
        ip = ipaddress.ip_address(host)
        return [None if ip.is_unspecified else ip]
    except ValueError:
        pass
    try:
        return [ipaddress.ip_address(info[4][0]) for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)]
    except (socket.gaierror, UnicodeError, ValueError):
        return []


def _unmapped(ip: IP) -> IP:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@lru_cache(maxsize=256)
def _is_local(ip: IP) -> bool:
    """An address of this host: one a socket can bind to."""
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((str(ip), 0))
        return True
    except OSError:
        return False


def _show(ip: IP, port: int) -> str:
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host
