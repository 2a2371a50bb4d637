"""A hostile uploader's files through the HTTP API: every one a 4xx or the right verdict, never a 5xx."""

from __future__ import annotations

import io
import struct

import pytest
from fastapi.testclient import TestClient
from PIL import Image

ROUTES = ("/v1/moderate", "/classify/", "/v1/moderate/batch")


def png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, (200, 30, 30, 255)[: len(mode)]).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def dds_with_unknown_pixel_format() -> bytes:
    """A DDS header Pillow recognises, with a FourCC it has no decoder for (it raises NotImplementedError)."""
    header = struct.pack("<7I", 124, 0x1007, 8, 8, 0, 0, 0) + b"\0" * 44
    header += struct.pack("<2I4s5I", 32, 0x4, b"ZZZZ", 0, 0, 0, 0, 0) + struct.pack("<5I", 0x1000, 0, 0, 0, 0)
    return b"DDS " + header + b"\0" * 256


def post(client: TestClient, route: str, data: bytes, name: str = "x.png") -> tuple[int, dict[str, object]]:
    field = "images" if route.endswith("batch") else "image"
    response = client.post(route, files={field: (name, data, "application/octet-stream")})
    return response.status_code, response.json()


@pytest.mark.parametrize("size", [(20000, 1), (1, 20000)], ids=["20000x1", "1x20000"])
@pytest.mark.parametrize("route", ROUTES)
def test_extreme_aspect_ratios_are_judged(client: TestClient, route: str, size: tuple[int, int]) -> None:
    data = png(size)
    assert len(data) < 1000, "a few hundred bytes"
    status, body = post(client, route, data)
    assert status == 200, body
    if route.endswith("batch"):
        assert body["results"][0]["result"]["verdict"] in ("allow", "review", "quarantine")  # type: ignore[index]


@pytest.mark.parametrize("route", ROUTES)
def test_a_recognised_format_pillow_cannot_decode_is_a_4xx_naming_it(client: TestClient, route: str) -> None:
    status, body = post(client, route, dds_with_unknown_pixel_format(), "x.dds")
    if route.endswith("batch"):
        assert status == 200
        error = body["results"][0]["error"]  # type: ignore[index]
        status, detail = error["status"], error["detail"]
    else:
        detail = body["detail"]
    assert status == 400
    assert "dds image could not be decoded" in str(detail)
