"""The SSRF guard for every outbound URL taken from users: vet, resolve once, pin the address, bound the fetch.

Only http/https. A host is resolved once; every address must be public (not private, loopback, link-local,
multicast, reserved, unspecified, CGNAT, nor an IPv4 such address hidden in an IPv6 mapped/compat/NAT64/6to4
form). Numeric IPv4 hosts are parsed the way browsers parse them (decimal, octal, hex, short forms), so
`2130706433` and `0177.0.0.1` are loopback here too. The connection then goes to the vetted address with the
original Host header and TLS SNI, so a second DNS answer (rebinding) is never used. Redirects are followed by
hand, each hop vetted again. An allow list opens chosen internal hosts (`host`, `host:port`, IP, `IP:port`)
and networks (CIDRs) on purpose.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import anyio
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str], Awaitable[list[str]]]

SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
# Names that are internal whatever they resolve to.
DENY_NAMES = ("localhost", "metadata.google.internal", "metadata.amazonaws.com", "instance-data")
# Special-purpose ranges checked explicitly, whatever this Python's `ipaddress` tables say.
EXTRA_DENY = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "100.64.0.0/10",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "240.0.0.0/4",
        "2001::/23",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
    )
)
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


class EgressBlocked(Exception):
    """The URL may not be fetched; the message says why (never echoes credentials)."""


class EgressFailed(Exception):
    """The fetch was allowed but failed or ran past a limit (redirects, bytes, time)."""


async def system_resolver(host: str) -> list[str]:
    """Every A/AAAA address of `host` from the system resolver."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _ipv4_number(part: str) -> int | None:
    try:
        if part[:2].lower() == "0x":
            return int(part[2:] or "0", 16)
        if len(part) > 1 and part.startswith("0"):
            return int(part[1:], 8)
        return int(part, 10)
    except ValueError:
        return None


def parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address a browser reads in `host` (WHATWG rules: 1-4 parts, decimal/octal/hex), else None."""
    parts = host.split(".")
    if parts and parts[-1] == "":
        parts = parts[:-1]
    if not 1 <= len(parts) <= 4 or any(p == "" for p in parts):
        return None
    numbers = [_ipv4_number(p) for p in parts]
    if any(n is None for n in numbers):
        return None
    nums = [n for n in numbers if n is not None]
    if any(n > 255 for n in nums[:-1]) or nums[-1] >= 256 ** (5 - len(nums)):
        return None
    value = nums[-1]
    for i, n in enumerate(nums[:-1]):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def parse_ip(host: str) -> IPAddress | None:
    """An IP literal in any encoding (bracketed IPv6, browser-style IPv4), else None."""
    text = host.strip("[]")
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text.split("%", 1)[0])
        except ValueError:
            return None
    return parse_ipv4(text)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address carried inside a mapped, compatible, NAT64 or 6to4 IPv6 address."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    packed = int(ip)
    if packed >> 32 == 0 and packed > 1:  # ::a.b.c.d (deprecated "compatible" form)
        return ipaddress.IPv4Address(packed & 0xFFFFFFFF)
    if any(ip in net for net in NAT64):
        return ipaddress.IPv4Address(packed & 0xFFFFFFFF)
    return None


def is_blocked_ip(ip: IPAddress) -> bool:
    """True for every address that is not plainly public unicast."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        if inner is not None and is_blocked_ip(inner):
            return True
        if ip.is_site_local or any(ip in net for net in NAT64[1:]):
            return True
    if any(ip.version == net.version and ip in net for net in EXTRA_DENY):
        return True
    return bool(
        not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


@dataclass(frozen=True)
class Vetted:
    """A URL that passed the guard, with the one address the connection must use."""

    url: str
    scheme: str
    host: str  # lowercased, IDNA-encoded, without brackets
    port: int
    ip: str

    @property
    def host_header(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return shown if self.port == DEFAULT_PORTS[self.scheme] else f"{shown}:{self.port}"

    @property
    def pinned_url(self) -> str:
        """The same URL with the vetted address in place of the host name."""
        parts = urlsplit(self.url)
        ip = f"[{self.ip}]" if ":" in self.ip else self.ip
        return parts._replace(netloc=f"{ip}:{self.port}").geturl()


def _entry(text: str) -> tuple[str, int | None]:
    """`host`, `host:port`, `[v6]:port` → (host, port or None)."""
    text = text.strip().lower()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, None


@dataclass
class EgressPolicy:
    """What may be reached: public addresses, plus the allow list; resolution through `resolver`."""

    allow_hosts: Iterable[str] = ()
    allow_cidrs: Iterable[str] = ()
    resolver: Resolver = system_resolver
    resolve_timeout: float = 5.0
    _hosts: list[tuple[str, int | None]] = field(init=False, default_factory=list)
    _nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self._hosts = [_entry(h) for h in self.allow_hosts if h.strip()]
        self._nets = [ipaddress.ip_network(c.strip(), strict=False) for c in self.allow_cidrs if c.strip()]

    def _allowed(self, host: str, port: int, ip: IPAddress | None) -> bool:
        for name, allowed_port in self._hosts:
            if allowed_port is not None and allowed_port != port:
                continue
            literal = parse_ip(name)
            if (literal is not None and ip is not None and literal == ip) or (literal is None and name == host):
                return True
        return ip is not None and any(ip in net for net in self._nets)

    def split(self, url: str) -> tuple[str, str, int]:
        """(scheme, host, port) of an http(s) URL, or EgressBlocked; no DNS."""
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError:
            raise EgressBlocked("blocked: the URL can't be parsed") from None
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES:
            raise EgressBlocked(f"blocked: only http and https URLs may be fetched, not {scheme or 'no'} scheme")
        host = (parts.hostname or "").rstrip(".").lower()
        if not host:
            raise EgressBlocked("blocked: the URL has no host")
        if parse_ip(host) is None:
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError:
                raise EgressBlocked("blocked: the host name is not valid") from None
        return scheme, host, port if port is not None else DEFAULT_PORTS[scheme]

    def check_static(self, url: str) -> tuple[str, str, int]:
        """The checks that need no DNS: scheme, IP literals in any encoding, internal names."""
        scheme, host, port = self.split(url)
        self._check_name(host, port)
        return scheme, host, port

    def _check_name(self, host: str, port: int) -> None:
        literal = parse_ip(host)
        if literal is not None:
            if is_blocked_ip(literal) and not self._allowed(host, port, literal):
                raise EgressBlocked(f"blocked: {literal} is not a public address")
        elif any(host == n or host.endswith("." + n) for n in DENY_NAMES) and not self._allowed(host, port, None):
            raise EgressBlocked(f"blocked: {host} is an internal name")

    async def vet_host(self, host: str, port: int) -> str:
        """Resolve `host` once and return the address to connect to, or raise EgressBlocked."""
        host = host.strip("[]").rstrip(".").lower()
        self._check_name(host, port)
        literal = parse_ip(host)
        if literal is not None:
            return str(literal)
        try:
            with anyio.fail_after(self.resolve_timeout):
                answers = await self.resolver(host)
        except (OSError, TimeoutError):
            raise EgressBlocked(f"blocked: {host} does not resolve") from None
        ips = [ipaddress.ip_address(a) for a in answers]
        if not ips:
            raise EgressBlocked(f"blocked: {host} does not resolve")
        if self._allowed(host, port, None):
            return str(ips[0])
        for ip in ips:  # every answer must be public: a mixed answer is a rebinding setup
            if is_blocked_ip(ip) and not self._allowed(host, port, ip):
                raise EgressBlocked(f"blocked: {host} resolves to a non-public address")
        return str(ips[0])

    async def vet(self, url: str) -> Vetted:
        """Vet a URL and pin its address."""
        scheme, host, port = self.check_static(url)
        ip = await self.vet_host(host, port)
        return Vetted(url=url.strip(), scheme=scheme, host=host, port=port, ip=ip)


@dataclass(frozen=True)
class FetchResult:
    url: str  # the final URL, after redirects
    status: int
    headers: dict[str, str]
    content: bytes
    redirects: tuple[str, ...]


@dataclass
class GuardedClient:
    """Plain HTTP fetches through the guard: pinned address, redirects re-vetted, bytes and time bounded."""

    policy: EgressPolicy
    max_redirects: int = 5
    max_bytes: int = 5_000_000
    timeout: float = 20.0
    user_agent: str = "isa-web/1.0"

    async def fetch(self, url: str, *, headers: dict[str, str] | None = None) -> FetchResult:
        """GET `url`; raises EgressBlocked (a hop is not allowed) or EgressFailed (a limit or a network error)."""
        try:
            with anyio.fail_after(self.timeout):
                return await self._fetch(url, headers or {})
        except TimeoutError:
            raise EgressFailed(f"the fetch took longer than {self.timeout:g} s") from None

    async def _fetch(self, url: str, headers: dict[str, str]) -> FetchResult:
        redirects: list[str] = []
        limits = httpx.Timeout(self.timeout, connect=min(10.0, self.timeout))
        async with httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=limits) as client:
            while True:
                target = await self.policy.vet(url)
                request = client.build_request(
                    "GET",
                    target.pinned_url,
                    headers={"Host": target.host_header, "User-Agent": self.user_agent, **headers},
                    extensions={"sni_hostname": target.host} if target.scheme == "https" else None,
                )
                try:
                    response = await client.send(request, stream=True)
                except httpx.HTTPError as exc:
                    raise EgressFailed(f"could not fetch {target.host}: {type(exc).__name__}") from None
                try:
                    location = response.headers.get("location")
                    if response.is_redirect and location:
                        if len(redirects) >= self.max_redirects:
                            raise EgressFailed(f"more than {self.max_redirects} redirects")
                        redirects.append(url)
                        url = urljoin(url, location)
                        continue
                    body = bytearray()
                    async for chunk in response.aiter_bytes():  # decoded: the cap holds after decompression
                        body.extend(chunk)
                        if len(body) > self.max_bytes:
                            raise EgressFailed(f"the response is larger than {self.max_bytes} bytes")
                    return FetchResult(url, response.status_code, dict(response.headers), bytes(body), tuple(redirects))
                except httpx.HTTPError as exc:
                    raise EgressFailed(f"could not read {target.host}: {type(exc).__name__}") from None
                finally:
                    await response.aclose()
