"""HEIF/HEIC and AVIF stills, whatever their major brand (phone photos often say `mif1` or `msf1`)."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from handler.core.moderator import Moderator
from handler.inputs.images import sniff_image_format
from handler.s3.events import ObjectRef
from handler.s3.moderation import moderate_objects
from handler.s3.tags import VERDICT
from handler.video.formats import sniff_video_format
from tests.s3_doubles import UPLOADS, make_buckets, tags_of


def encoded(fmt: str, major: bytes | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 30)).save(buffer, format=fmt)
    data = buffer.getvalue()
    return data if major is None else data[:8] + major + data[12:]


CASES = {
    "heic": ("HEIF", None, "heic"),
    "heic-as-mif1": ("HEIF", b"mif1", "heic"),
    "heic-as-msf1": ("HEIF", b"msf1", "heic"),
    "avif": ("AVIF", None, "avif"),
    "avif-as-mif1": ("AVIF", b"mif1", "avif"),
    "avis": ("AVIF", b"avis", "avif"),
}


@pytest.mark.parametrize("case", CASES)
def test_every_brand_is_an_image_not_a_video(case: str) -> None:
    fmt, major, name = CASES[case]
    data = encoded(fmt, major)
    assert sniff_image_format(data[:32]) == name
    assert sniff_video_format(data[:512]) is None


@pytest.mark.parametrize("case", [c for c in CASES if c != "avis"])  # a real avis file is a sequence
def test_every_brand_is_judged_over_http(client: TestClient, case: str) -> None:
    fmt, major, _ = CASES[case]
    response = client.post("/v1/moderate", files={"image": ("photo", encoded(fmt, major), "image/heic")})
    assert response.status_code == 200, response.text
    assert response.json()["frames"] == 1


@pytest.mark.parametrize("case", ["heic-as-mif1", "avif-as-mif1"])
def test_a_phone_photo_in_s3_is_judged_not_tagged_error(
    s3: Any, forced: Callable[..., Moderator], case: str
) -> None:
    fmt, major, _ = CASES[case]
    make_buckets(s3)
    version = s3.put_object(Bucket=UPLOADS, Key="IMG_0001.HEIC", Body=encoded(fmt, major))["VersionId"]
    [result] = moderate_objects(
        [ObjectRef(UPLOADS, "IMG_0001.HEIC", version)], client=s3, moderator=forced("review")
    )
    assert result.ok
    assert tags_of(s3, UPLOADS, "IMG_0001.HEIC", version)[VERDICT] == "review"
