"""Request bodies over the limits are refused with a 413 while streaming, under TestClient and uvicorn."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from handler.api.body_limit import BODY_OVERHEAD
from handler.core.moderator import Moderator
from handler.settings import get_settings

LIMIT = 3000  # MAX_IMAGE_BYTES in these tests


@pytest.fixture
def small_limits(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """MAX_IMAGE_BYTES=3000 for the server: a route's body may then be 4000 bytes plus the overhead."""
    monkeypatch.setenv("MAX_IMAGE_BYTES", str(LIMIT))
    get_settings.cache_clear()
    yield LIMIT * 4 // 3 + BODY_OVERHEAD
    get_settings.cache_clear()


def test_a_declared_length_over_the_limit_is_refused_before_reading(
    client: TestClient, small_limits: int
) -> None:
    body = b"x" * (small_limits + 1)
    response = client.post("/v1/moderate", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert str(small_limits) in response.json()["detail"]


def test_a_body_within_the_limit_goes_through(client: TestClient, small_limits: int) -> None:
    response = client.post("/v1/moderate", content=b"{}", headers={"content-type": "application/json"})
    assert response.status_code == 422, "read and judged invalid, not refused for its size"


@pytest.fixture
def server(moderator: Moderator) -> Iterator[str]:
    """The app under uvicorn, as `make serve` and self-hosting run it."""
    from handler.app import app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not instance.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=10)


def test_a_chunked_body_is_cut_off_once_it_passes_the_limit_under_uvicorn(
    server: str, small_limits: int
) -> None:
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        boundary = b"--b\r\nContent-Disposition: form-data; name=image; filename=a.png\r\n\r\n"
        yield boundary
        for _ in range(200):  # 200 x 64 KiB = 12.5 MiB, far past the limit
            sent += 65536
            yield b"\0" * 65536

    try:
        response = httpx.post(
            f"{server}/v1/moderate",
            content=chunks(),
            headers={"content-type": "multipart/form-data; boundary=b"},
            timeout=30,
        )
    except httpx.HTTPError:  # the server may close the connection while the client still sends
        assert sent < 200 * 65536, "the server stopped reading early"
        return
    assert response.status_code == 413, response.text
    assert "request body" in response.json()["detail"], "refused for the body, not the image inside it"
