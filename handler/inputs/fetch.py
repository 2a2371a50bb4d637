"""Fetch an image URL safely: public addresses only, pinned connections, redirect, size and time limits."""

from __future__ import annotations

import logging
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from functools import cache
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from urllib.parse import urlsplit

import httpcore
import httpx

from handler.exceptions import FetchRefused, PayloadTooLarge
from handler.inputs.backend_transport import BackendTransport
from handler.settings import Settings

logger = logging.getLogger(__name__)

Resolver = Callable[[str, int], list[str]]
IPAddress = IPv4Address | IPv6Address

_HEADERS = {"User-Agent": "clip-moderation", "Accept": "image/*,*/*;q=0.8", "Accept-Encoding": "identity"}
_SHARED = ip_network("100.64.0.0/10")
_NAT64 = ip_network("64:ff9b::/96")
_NUMERIC_CHARS = re.compile(r"[0-9a-fx.]+")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")


class _Refused(Exception):
    """Why a URL is not fetched, one clause; fetch_url turns it into FetchRefused."""


def _default_resolver(host: str, port: int) -> list[str]:
    """The distinct addresses `getaddrinfo` gives for host, in its order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _ipv4_literal(host: str) -> IPv4Address | None:
    """host in any inet_aton notation (`2130706433`, `0x7f.1`, `0177.0.0.1`); None for a DNS name.

    ValueError for a host that ends in a number yet is no valid IPv4 address.
    """
    host = host.removesuffix(".")
    if not _NUMERIC_CHARS.fullmatch(host) or not _NUMERIC_LABEL.fullmatch(host.rsplit(".", 1)[-1]):
        return None
    try:
        return IPv4Address(socket.inet_aton(host))
    except OSError:
        raise ValueError(f"{host} is not a valid IPv4 address") from None


def _kind(ip: IPAddress) -> str | None:
    """What makes ip non-public, as a noun phrase; None for a public address."""
    kinds = {
        "an unspecified": ip.is_unspecified,
        "a loopback": ip.is_loopback,
        "a link-local": ip.is_link_local,
        "a multicast": ip.is_multicast,
        "a shared (carrier-grade NAT)": ip in _SHARED,
        "a reserved": ip.is_reserved,
        "a private": ip.is_private,
        "a non-global": not ip.is_global,
    }
    return next((f"{kind} address, not a public one" for kind, hit in kinds.items() if hit), None)


def _embedded(ip: IPv6Address) -> IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, 6to4, NAT64, IPv4-compatible or Teredo address."""
    if ip.ipv4_mapped or ip.sixtofour:
        return ip.ipv4_mapped or ip.sixtofour
    if ip in _NAT64 or (int(ip) >> 32 == 0 and int(ip) > 1):
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.teredo[1] if ip.teredo else None


def _why_not(ip: IPAddress, settings: Settings, outer: IPv6Address | None = None) -> str | None:
    """Why ip (embedded in outer, if given) may not be fetched from, as a clause; None when it may."""
    if settings.fetch_allow_private or any(ip in net for net in settings.fetch_allow_networks):
        return None
    if isinstance(ip, IPv6Address) and (inner := _embedded(ip)) is not None:
        if why := _why_not(inner, settings, outer=ip):
            return why
        if ip.ipv4_mapped or ip in _NAT64:
            return None  # a translation of inner, which may be fetched from
    if (kind := _kind(ip)) is None:
        return None
    return f"{ip} is {kind}" if outer is None else f"{outer} embeds {ip}, {kind}"


def _cap(timeout: float | None, deadline: float, error: type[Exception]) -> float:
    """timeout, shortened to what is left before deadline; error once nothing is left."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the total time limit has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every operation also ends at the overall deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self._inner, self._deadline = inner, deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _cap(timeout, self._deadline, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _cap(timeout, self._deadline, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        limit = _cap(timeout, self._deadline, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, limit), self._deadline)

    def get_extra_info(self, info: str) -> object:
        return self._inner.get_extra_info(info)


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects (host, port) only to the addresses validated for it, never past the deadline.

    The URL keeps its hostname, so the Host header, TLS SNI and certificate check all use it,
    while DNS is never asked again (no rebinding).
    """

    def __init__(self, deadline: float) -> None:
        self.pins: dict[tuple[str, int], list[str]] = {}
        self._deadline = deadline
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        error = httpcore.ConnectError(f"{host}:{port} was not validated")
        for address in self.pins.get((host, port), []):
            limit = _cap(timeout, self._deadline, httpcore.ConnectTimeout)
            try:
                stream = self._inner.connect_tcp(address, port, limit, local_address, socket_options)
            except httpcore.ConnectError as exc:
                error = exc
                continue
            return _DeadlineStream(stream, self._deadline)
        raise error


@cache
def _ssl_context() -> ssl.SSLContext:
    """The TLS settings httpx uses by default (certifi roots, hostname check), built once."""
    return httpx.create_ssl_context()


def _parse(url: str, settings: Settings) -> httpx.URL:
    """url as httpx reads it; a numeric host httpx rejects (`0177.0.0.1`) is still judged by its address."""
    try:
        return httpx.URL(url)
    except httpx.InvalidURL as exc:
        why = f"it is not a valid URL ({exc})"
        try:
            ip = _ipv4_literal(urlsplit(url).hostname or "")
        except ValueError:
            ip = None
        raise FetchRefused(f"refusing to fetch {url}: {(ip and _why_not(ip, settings)) or why}") from None


def _pin(url: httpx.URL, settings: Settings, resolver: Resolver, backend: _PinnedBackend) -> None:
    """Check url's scheme and every address of its host, then pin the connection to them."""
    if url.scheme not in ("http", "https"):
        raise _Refused("only http and https URLs are accepted")
    host = url.raw_host.decode("ascii")
    port = url.port or (443 if url.scheme == "https" else 80)
    if not host:
        raise _Refused("the URL has no host")
    if "%" in host:
        raise _Refused("percent-encoded hosts and IPv6 zone ids are not accepted")
    if not 0 < port < 65536:
        raise _Refused(f"port {port} is out of range")
    try:
        literal = ip_address(host) if ":" in host else _ipv4_literal(host)
    except ValueError as exc:
        raise _Refused(str(exc)) from None
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            addresses = [ip_address(a) for a in resolver(host, port)]
        except (OSError, UnicodeError, ValueError) as exc:
            raise _Refused(f"{host} could not be resolved ({exc})") from None
        if not addresses:
            raise _Refused(f"{host} resolved to no address")
    for ip in addresses:
        if why := _why_not(ip, settings):
            raise _Refused(why)
    backend.pins[(host, port)] = [str(ip) for ip in addresses]
    logger.debug("fetching %s from %s", url, backend.pins[(host, port)])


def _timeout_of(exc: httpx.TimeoutException, settings: Settings, deadline: float) -> str:
    """Which time limit exc ran into, as the end of a sentence."""
    if time.monotonic() >= deadline - 0.01:
        return f"after {settings.fetch_total_timeout_s} s in all"
    if isinstance(exc, httpx.ConnectTimeout):
        return f"connecting, after {settings.fetch_connect_timeout_s} s"
    return f"waiting {settings.fetch_read_timeout_s} s for data"


def _body(response: httpx.Response, where: str, limit: int) -> bytes:
    """The body of a final response: a 2xx one of at most limit bytes."""
    if not response.is_success:
        raise _Refused(f"the server answered {response.status_code} {response.reason_phrase}")
    declared = response.headers.get("content-length", "")
    refusing = f"refusing to fetch {where}: it"
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"{refusing} declares {declared} bytes, over the {limit}-byte limit")
    body: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"{refusing} sent more than the {limit}-byte limit")
        body.append(chunk)
    logger.debug("fetched %d bytes from %s", size, where)
    return b"".join(body)


def fetch_url(
    url: str, settings: Settings, *, resolver: Resolver | None = None, max_bytes: int | None = None
) -> bytes:
    """The body of url (GET), fetched only from public addresses and within the configured limits.

    Raises FetchRefused (400) for a URL, address, redirect, status, connection or time it refuses,
    and PayloadTooLarge (413) for a body over max_bytes (default `settings.max_image_bytes`).
    """
    limit = settings.max_image_bytes if max_bytes is None else max_bytes
    hops = settings.fetch_max_redirects
    deadline = time.monotonic() + settings.fetch_total_timeout_s
    backend = _PinnedBackend(deadline)
    timeout = httpx.Timeout(settings.fetch_read_timeout_s, connect=settings.fetch_connect_timeout_s)
    current = _parse(url, settings)
    transport = BackendTransport(backend, _ssl_context())
    with httpx.Client(transport=transport, timeout=timeout, trust_env=False, headers=_HEADERS) as client:
        for hop in range(hops + 1):
            where = f"{current}" + (f" (redirected from {url})" if hop else "")
            try:
                _pin(current, settings, resolver or _default_resolver, backend)
                with client.stream("GET", current) as response:
                    if not response.has_redirect_location:
                        return _body(response, where, limit)
                    current = current.join(response.headers["location"])
            except _Refused as exc:
                raise FetchRefused(f"refusing to fetch {where}: {exc}") from None
            except httpx.TimeoutException as exc:
                why = _timeout_of(exc, settings, deadline)
                raise FetchRefused(f"refusing to fetch {where}: it timed out {why}") from None
            except httpx.HTTPError as exc:
                why = str(exc) or type(exc).__name__
                raise FetchRefused(f"refusing to fetch {where}: the transfer failed ({why})") from None
    raise FetchRefused(f"refusing to fetch {url}: it redirected more than {hops} times")
