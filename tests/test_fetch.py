"""handler.inputs.fetch against real HTTP(S) servers on loopback: address checks, pinning, redirects."""

from __future__ import annotations

import datetime
import socket
import ssl
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from handler.exceptions import FetchRefused, PayloadTooLarge
from handler.inputs import fetch
from handler.inputs.fetch import fetch_url
from handler.settings import Settings


def _png() -> bytes:
    """A valid 1x1 grey PNG, built by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\x80"))
        + chunk(b"IEND", b"")
    )


PNG = _png()


@dataclass
class Seen:
    """One request as the server saw it."""

    path: str
    host: str | None
    local_address: str


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, format: str, *args: Any) -> None:  # silence the default stderr log
        pass

    def do_GET(self) -> None:
        self.server.seen.append(Seen(self.path, self.headers["Host"], self.connection.getsockname()[0]))
        route = urlsplit(self.path)
        try:
            if route.path == "/image.png":
                self._send(200, PNG, {"Content-Type": "image/png"})
            elif route.path == "/redirect":
                self._send(302, b"", {"Location": parse_qs(route.query)["to"][0]})
            elif route.path.startswith("/chain/"):
                left = int(route.path.rsplit("/", 1)[1])
                self._send(302, b"", {"Location": f"/chain/{left - 1}" if left else "/image.png"})
            elif route.path == "/huge":  # no Content-Length: the body ends when the connection closes
                self.send_response(200)
                self.end_headers()
                for _ in range(256):
                    self.wfile.write(b"\0" * 65536)
            elif route.path == "/declared":
                self.send_response(200)
                self.send_header("Content-Length", str(10**9))
                self.end_headers()
                self.wfile.write(b"\0" * 10)
            elif route.path == "/slow":
                self._wait(1.0)
                self._send(200, PNG, {})
            elif route.path == "/drip":
                self.send_response(200)
                self.end_headers()
                for _ in range(40):
                    self.wfile.write(b"\0")
                    self.wfile.flush()
                    self._wait(0.05)
            else:
                self._send(404, b"not here", {})
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass  # the client gave up, as it should

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _wait(self, seconds: float) -> None:
        self.server.stopping.wait(seconds)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: str, tls: ssl.SSLContext | None = None) -> None:
        super().__init__((address, 0), Handler)
        self.seen: list[Seen] = []
        self.stopping = threading.Event()
        self.tls = tls

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, peer = super().get_request()
        if self.tls is not None:
            sock.settimeout(2)
            sock = self.tls.wrap_socket(sock, server_side=True)
        return sock, peer

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, path: str, host: str | None = None) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host or str(self.server_address[0])}:{self.port}{path}"


def _serve(server: Server) -> Iterator[Server]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.stopping.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def _servers() -> Iterator[tuple[Server, Server]]:
    """The allowed server on 127.0.0.2 and a plain loopback one on 127.0.0.1."""
    allowed, loopback = Server("127.0.0.2"), Server("127.0.0.1")
    gen_a, gen_l = _serve(allowed), _serve(loopback)
    yield next(gen_a), next(gen_l)
    for gen in (gen_a, gen_l):
        next(gen, None)


@pytest.fixture
def server(_servers: tuple[Server, Server]) -> Server:
    _servers[0].seen.clear()
    return _servers[0]


@pytest.fixture
def loopback(_servers: tuple[Server, Server]) -> Server:
    _servers[1].seen.clear()
    return _servers[1]


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "fetch_allow_networks": ["127.0.0.2/32"],
        "fetch_allow_private": False,
        "fetch_connect_timeout_s": 1.0,
        "fetch_read_timeout_s": 1.0,
        "fetch_total_timeout_s": 3.0,
        "fetch_max_redirects": 3,
        "max_image_bytes": 1_000_000,
    }
    return Settings(**{**values, **overrides})


@pytest.fixture
def settings() -> Settings:
    return make_settings()


class FakeDNS:
    """A resolver from a fixed table that records every question."""

    TABLE: dict[str, list[str]] = {  # noqa: RUF012
        "images.test": ["127.0.0.2"],
        "other.test": ["127.0.0.2"],
        "rebind.test": ["127.0.0.2", "10.0.0.1"],
        "evil.test": ["127.0.0.1"],
        "localhost": ["127.0.0.1", "::1"],
    }

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        if host not in self.TABLE:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.TABLE[host]


@pytest.fixture
def dns() -> FakeDNS:
    return FakeDNS()


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection or real DNS lookup fails the test."""

    def forbidden(*args: object, **kwargs: object) -> Any:
        raise AssertionError(f"network used: {args}")

    monkeypatch.setattr(socket, "create_connection", forbidden)
    monkeypatch.setattr(socket, "getaddrinfo", forbidden)


# --- addresses refused before any connection -------------------------------------------------------

REFUSED = [
    ("http://127.0.0.1/", "127.0.0.1 is a loopback address"),
    ("http://2130706433/", "127.0.0.1 is a loopback address"),
    ("http://0x7f000001/", "127.0.0.1 is a loopback address"),
    ("http://0177.0.0.1/", "127.0.0.1 is a loopback address"),
    ("http://127.1/", "127.0.0.1 is a loopback address"),
    ("http://0x7f.1/", "127.0.0.1 is a loopback address"),
    ("http://0x7f.0.1:8080/x.png", "127.0.0.1 is a loopback address"),
    ("http://127.0.0.1./", "127.0.0.1 is a loopback address"),
    ("http://10.0.0.1/", "10.0.0.1 is a private address"),
    ("http://172.16.0.1/", "172.16.0.1 is a private address"),
    ("http://192.168.1.1/", "192.168.1.1 is a private address"),
    ("http://100.64.0.1/", "100.64.0.1 is a shared (carrier-grade NAT) address"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
    ("http://0.0.0.0/", "0.0.0.0 is an unspecified address"),
    ("http://224.0.0.1/", "224.0.0.1 is a multicast address"),
    ("http://240.0.0.1/", "240.0.0.1 is a reserved address"),
    ("http://[::1]/", "::1 is a loopback address"),
    ("http://[::]/", ":: is an unspecified address"),
    ("http://[::ffff:127.0.0.1]/", "::ffff:7f00:1 embeds 127.0.0.1, a loopback address"),
    ("http://[::ffff:7f00:1]/", "::ffff:7f00:1 embeds 127.0.0.1, a loopback address"),
    ("http://[fd00:ec2::254]/", "fd00:ec2::254 is a private address"),
    ("http://[fe80::1]/", "fe80::1 is a link-local address"),
    ("http://[fe80::1%25eth0]/", "IPv6 zone ids are not accepted"),
    ("http://[2002:7f00:1::]/", "2002:7f00:1:: embeds 127.0.0.1, a loopback address"),
    ("http://[64:ff9b::a00:1]/", "64:ff9b::a00:1 embeds 10.0.0.1, a private address"),
    ("http://[::a9fe:a9fe]/", "::a9fe:a9fe embeds 169.254.169.254, a link-local address"),
    ("http://1.2.3.4.5/", "1.2.3.4.5 is not a valid IPv4 address"),
    ("http://%31%32%37.0.0.1/", "percent-encoded hosts"),
    ("http:///image.png", "the URL has no host"),
    ("http://127.0.0.2:99999/", "port 99999 is out of range"),
    ("http://[::1/", "it is not a valid URL"),
    ("ftp://example.com/image.png", "only http and https URLs are accepted"),
    ("file:///etc/passwd", "only http and https URLs are accepted"),
    ("gopher://127.0.0.1:70/", "only http and https URLs are accepted"),
    ("not a url", "only http and https URLs are accepted"),
]


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_refused_without_connecting(url: str, reason: str, settings: Settings, dns: FakeDNS) -> None:
    with pytest.raises(FetchRefused, match=r"^refusing to fetch ") as refused:
        fetch_url(url, settings, resolver=dns)
    assert reason in refused.value.detail
    assert refused.value.status_code == 400
    assert dns.asked == []  # numeric hosts are parsed here, never handed to a resolver


@pytest.mark.usefixtures("no_network")
def test_refusal_message_is_one_clear_sentence(settings: Settings) -> None:
    with pytest.raises(FetchRefused) as refused:
        fetch_url("http://127.0.0.1/", settings)
    assert (
        refused.value.detail
        == "refusing to fetch http://127.0.0.1/: 127.0.0.1 is a loopback address, not a public one"
    )


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("evil.test", "127.0.0.1 is a loopback"),
        ("rebind.test", "10.0.0.1 is a private"),
        ("nx.test", "could not be resolved"),
    ],
)
def test_hostname_refused_when_any_address_is_not_public(
    host: str, reason: str, settings: Settings, dns: FakeDNS
) -> None:
    with pytest.raises(FetchRefused, match=reason):
        fetch_url(f"http://{host}/image.png", settings, resolver=dns)
    assert dns.asked == [(host, 80)]


def test_default_resolver_refuses_localhost(settings: Settings, loopback: Server) -> None:
    with pytest.raises(FetchRefused, match="is a loopback address"):
        fetch_url(loopback.url("/image.png", host="localhost"), settings)
    assert loopback.seen == []


# --- allowed fetches, and pinning ----------------------------------------------------------------


def test_fetches_from_an_allowed_network(server: Server, settings: Settings) -> None:
    assert fetch_url(server.url("/image.png"), settings) == PNG
    assert [s.path for s in server.seen] == ["/image.png"]


def test_connection_is_pinned_to_the_checked_address(
    server: Server, settings: Settings, dns: FakeDNS, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_getaddrinfo = socket.getaddrinfo

    def no_dns(host: str, *args: Any, **kwargs: Any) -> Any:
        assert host == "127.0.0.2", f"the HTTP client looked up {host} again"
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    assert fetch_url(server.url("/image.png", host="images.test"), settings, resolver=dns) == PNG
    assert dns.asked == [("images.test", server.port)]
    assert server.seen == [Seen("/image.png", f"images.test:{server.port}", "127.0.0.2")]


def test_resolver_is_asked_once_per_hop(server: Server, settings: Settings) -> None:
    answers = iter([["127.0.0.2"], ["127.0.0.2"], ["10.0.0.1"]])  # a DNS that rebinds on its third answer
    asked: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        asked.append(host)
        return next(answers)

    assert fetch_url(server.url("/image.png", host="images.test"), settings, resolver=rebinding) == PNG
    assert asked == ["images.test"]  # the connection did not look the name up again
    with pytest.raises(FetchRefused, match=r"10\.0\.0\.1 is a private address") as refused:
        fetch_url(server.url("/chain/1", host="images.test"), settings, resolver=rebinding)
    assert "redirected from" in refused.value.detail
    assert asked == ["images.test"] * 3
    assert [s.path for s in server.seen] == ["/image.png", "/chain/1"]


def test_allow_private_lets_loopback_through(loopback: Server) -> None:
    settings = make_settings(fetch_allow_private=True, fetch_allow_networks=[])
    assert fetch_url(loopback.url("/image.png"), settings) == PNG
    assert [s.local_address for s in loopback.seen] == ["127.0.0.1"]


def test_allow_networks_is_specific(loopback: Server) -> None:
    with pytest.raises(FetchRefused, match="loopback"):
        fetch_url(loopback.url("/image.png"), make_settings())
    assert loopback.seen == []


# --- redirects ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("http://127.0.0.1:{port}/image.png", "127.0.0.1 is a loopback address"),
        ("http://localhost:{port}/image.png", "127.0.0.1 is a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://[::1]/", "::1 is a loopback address"),
        ("http://rebind.test:{port}/image.png", "10.0.0.1 is a private address"),
        ("http://0x7f000001:{port}/image.png", "127.0.0.1 is a loopback address"),
        ("file:///etc/passwd", "only http and https URLs are accepted"),
    ],
)
def test_redirect_target_is_checked(
    target: str, reason: str, server: Server, loopback: Server, settings: Settings, dns: FakeDNS
) -> None:
    location = target.format(port=loopback.port)
    start = server.url(f"/redirect?to={location}")
    with pytest.raises(FetchRefused, match=reason) as refused:
        fetch_url(start, settings, resolver=dns)
    assert f"(redirected from {start})" in refused.value.detail
    assert loopback.seen == []
    assert len(server.seen) == 1


def test_invalid_redirect_location(server: Server, settings: Settings) -> None:
    with pytest.raises(FetchRefused, match=r"the transfer failed \(Invalid URL in location header"):
        fetch_url(server.url("/redirect?to=http://[::1"), settings)


def test_redirect_target_uses_default_resolver(server: Server, loopback: Server, settings: Settings) -> None:
    with pytest.raises(FetchRefused, match="is a loopback address"):
        fetch_url(server.url(f"/redirect?to=http://localhost:{loopback.port}/image.png"), settings)
    assert loopback.seen == []


def test_short_redirect_chain_on_allowed_host_succeeds(
    server: Server, settings: Settings, dns: FakeDNS
) -> None:
    assert fetch_url(server.url("/chain/2", host="images.test"), settings, resolver=dns) == PNG
    assert [s.path for s in server.seen] == ["/chain/2", "/chain/1", "/chain/0", "/image.png"]
    assert {s.host for s in server.seen} == {f"images.test:{server.port}"}
    assert len(dns.asked) == 4  # every hop re-validated


def test_too_many_redirects(server: Server, settings: Settings) -> None:
    with pytest.raises(FetchRefused, match="it redirected more than 3 times"):
        fetch_url(server.url("/chain/4"), settings)
    assert len(server.seen) == 4


def test_no_redirects_allowed(server: Server) -> None:
    with pytest.raises(FetchRefused, match="more than 0 times"):
        fetch_url(server.url("/chain/0"), make_settings(fetch_max_redirects=0))


# --- status, size, time -------------------------------------------------------------------------


def test_non_2xx_is_refused(server: Server, settings: Settings) -> None:
    with pytest.raises(FetchRefused, match="the server answered 404 Not Found"):
        fetch_url(server.url("/missing"), settings)


def test_connection_error_is_refused(settings: Settings) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.2", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FetchRefused, match=r"the transfer failed .*refused"):
        fetch_url(f"http://127.0.0.2:{port}/", settings)


def test_declared_length_over_limit(server: Server, settings: Settings) -> None:
    with pytest.raises(
        PayloadTooLarge, match="declares 1000000000 bytes, over the 1000000-byte limit"
    ) as big:
        fetch_url(server.url("/declared"), settings)
    assert big.value.status_code == 413


def test_streamed_body_over_limit(server: Server, settings: Settings) -> None:
    started = time.monotonic()
    with pytest.raises(PayloadTooLarge, match="sent more than the 100000-byte limit"):
        fetch_url(server.url("/huge"), settings, max_bytes=100_000)
    assert time.monotonic() - started < 1


def test_limit_is_inclusive_and_defaults_to_max_image_bytes(server: Server) -> None:
    assert fetch_url(server.url("/image.png"), make_settings(max_image_bytes=len(PNG))) == PNG
    with pytest.raises(PayloadTooLarge, match=f"{len(PNG) - 1}-byte limit"):
        fetch_url(server.url("/image.png"), make_settings(max_image_bytes=len(PNG) - 1))
    with pytest.raises(PayloadTooLarge):
        fetch_url(server.url("/image.png"), make_settings(), max_bytes=10)


def test_read_timeout(server: Server) -> None:
    started = time.monotonic()
    with pytest.raises(FetchRefused, match=r"it timed out waiting 0.2 s for data"):
        fetch_url(server.url("/slow"), make_settings(fetch_read_timeout_s=0.2))
    assert time.monotonic() - started < 0.8


def test_total_deadline_covers_the_body(server: Server) -> None:
    started = time.monotonic()
    with pytest.raises(FetchRefused, match=r"it timed out after 0.4 s in all"):
        fetch_url(server.url("/drip"), make_settings(fetch_read_timeout_s=1.0, fetch_total_timeout_s=0.4))
    assert time.monotonic() - started < 0.8


# --- TLS: SNI and certificate hostname are the original host --------------------------------------


@dataclass
class TLSServer:
    server: Server
    sni: list[str | None] = field(default_factory=list)
    trust: ssl.SSLContext | None = None


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSServer]:
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "images.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("images.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder: Path = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    state = TLSServer(Server("127.0.0.2", tls=context))
    context.sni_callback = lambda sock, server_name, ctx: state.sni.append(server_name)
    state.trust = ssl.create_default_context(cafile=str(folder / "cert.pem"))
    gen = _serve(state.server)
    next(gen)
    yield state
    next(gen, None)


def test_https_uses_original_host_for_sni_and_certificate(
    tls: TLSServer, settings: Settings, dns: FakeDNS, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls.sni.clear()
    tls.server.seen.clear()
    trust = tls.trust
    assert trust is not None
    monkeypatch.setattr(fetch, "_ssl_context", lambda: trust)
    assert fetch_url(tls.server.url("/image.png", host="images.test"), settings, resolver=dns) == PNG
    assert tls.sni == ["images.test"]
    assert tls.server.seen == [Seen("/image.png", f"images.test:{tls.server.port}", "127.0.0.2")]
    with pytest.raises(FetchRefused, match=r"the transfer failed .*(mismatch|match)"):
        fetch_url(tls.server.url("/image.png", host="other.test"), settings, resolver=dns)


def test_https_untrusted_certificate_is_refused(tls: TLSServer, settings: Settings, dns: FakeDNS) -> None:
    tls.sni.clear()
    with pytest.raises(FetchRefused, match="CERTIFICATE_VERIFY_FAILED"):
        fetch_url(tls.server.url("/image.png", host="images.test"), settings, resolver=dns)
    assert tls.sni == ["images.test"]
