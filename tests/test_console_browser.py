"""The console in a real browser: Debian's headless Chromium driven by Playwright against the real server.

No browser is downloaded: Playwright drives the system's `/usr/bin/chromium` (`.ci/run` installs it
where apt is available); without it every test here skips with one line saying so. Set
CONSOLE_SCREENSHOTS=docs to refresh the docs' screenshots (docs/api.md shows them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from handler.core.moderator import Moderator
from handler.s3.events import ObjectRef
from handler.s3.moderation import moderate_objects
from handler.s3.tags import VERDICT
from tests.conftest import image_bytes
from tests.live_server import serving
from tests.s3_doubles import (
    PREFIX,
    QUARANTINE,
    TABLE,
    UPLOADS,
    exists,
    make_buckets,
    quarantined_key,
    tags_of,
    write_policy,
)
from tests.video_media import BLUE, GREEN, RED, encoder_available, make_video

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
KEY = "console-test-key"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A persistent context on a fresh profile directory (`--user-data-dir`), headless."""
    if not CHROMIUM.exists():
        pytest.skip(f"no {CHROMIUM}: install Debian's chromium (apt-get install chromium chromium-driver)")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": 1200, "height": 900},
        )
        yield context
        context.close()


@pytest.fixture(scope="module")
def server(
    browser: Any, tiny_model_dir: Path, moto_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The server, whose default policy flags `bad` on everything (action review): verdicts are certain.
    Its decision table and buckets are moto's (the `s3` fixture makes them afresh per test)."""
    root = tmp_path_factory.mktemp("console-server")
    env = {
        "MODEL_DIR": str(tiny_model_dir),
        "MODERATION_POLICY": str(write_policy(root, "review")),
        "FEEDBACK_DIR": str(root / "feedback"),
        "AWS_ENDPOINT_URL": moto_server,
        "DECISION_TABLE": TABLE,
        "QUARANTINE_BUCKET": QUARANTINE,
        "QUARANTINE_PREFIX": PREFIX,
        "LOG_LEVEL": "WARNING",
    }
    with serving(env, root / "server.log") as base:
        yield base


@pytest.fixture
def page(browser: Any, server: str) -> Iterator[Any]:
    page = browser.new_page()
    page.set_default_timeout(60_000)
    yield page
    page.close()


def snap(page: Any, name: str) -> None:
    folder = os.environ.get("CONSOLE_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / f"console-{name}.png"), full_page=True)


def open_console(page: Any, server: str) -> None:
    page.goto(f"{server}/")
    page.wait_for_selector("#policy option", state="attached")


def judge_file(page: Any, path: Path) -> None:
    page.set_input_files("#file", str(path))
    page.click("#judge")


@pytest.fixture
def png_file(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    path.write_bytes(image_bytes("PNG", size=(320, 240), color=(40, 120, 200)))
    return path


def test_an_uploaded_image_gets_a_bar_per_category_with_thresholds(
    page: Any, server: str, png_file: Path
) -> None:
    open_console(page, server)
    assert page.input_value("#policy") == "forced-review"

    judge_file(page, png_file)
    page.wait_for_selector("#bars .bar-row")

    assert page.text_content("#verdict") == "review"
    rows = page.locator("#bars .bar-row")
    assert sorted(rows.evaluate_all("rows => rows.map(r => r.dataset.category)")) == ["bad", "fine", "meh"]
    assert page.locator("#bars .bar-row.flagged").evaluate_all("r => r.map(x => x.dataset.category)") == [
        "bad"
    ]
    # Thresholds marked where the policy puts them (bad at 0, meh at 1); none on the safe class.
    marks = {
        name: page.locator(f'#bars [data-category="{name}"] .bar-threshold').count()
        for name in ("bad", "meh", "fine")
    }
    assert marks == {"bad": 1, "meh": 1, "fine": 0}
    meh_mark = page.locator('#bars [data-category="meh"] .bar-threshold').evaluate("m => m.style.left")
    assert meh_mark == "100%"
    assert "ms on the server" in page.text_content("#summary-text")
    snap(page, "try-image")

    # Blurred until hovered.
    image = page.locator("#preview-image")
    assert "blur(" in image.evaluate("i => getComputedStyle(i).filter")
    image.hover()
    expect(image).to_have_css("filter", "none")


def test_zero_shot_classes_show_one_bar_per_class(page: Any, server: str, png_file: Path) -> None:
    open_console(page, server)
    page.check("input[name=mode][value=classes]")
    page.fill("#classes", "a cat, a dog, a bird")

    judge_file(page, png_file)
    page.wait_for_selector("#bars .bar-row")

    names = page.locator("#bars .bar-row").evaluate_all("r => r.map(x => x.dataset.category)")
    assert sorted(names) == ["a bird", "a cat", "a dog"]
    assert page.text_content("#verdict") == names[0]  # the prediction is the most probable class


@pytest.fixture
def clip_file(tmp_path: Path) -> Path:
    """A 3 s clip (blue, red, green seconds) that this Chromium can play: VP8 in WebM when PyAV has it."""
    if encoder_available("libvpx"):
        return make_video(tmp_path / "clip.webm", [(BLUE, 1), (RED, 1), (GREEN, 1)], codec="libvpx")
    return make_video(tmp_path / "clip.mp4", [(BLUE, 1), (RED, 1), (GREEN, 1)], size=(160, 120))


def test_an_uploaded_video_shows_its_flagged_segment_on_a_timeline_that_seeks(
    page: Any, server: str, clip_file: Path
) -> None:
    open_console(page, server)

    judge_file(page, clip_file)
    page.wait_for_selector("#timeline .segment")

    assert page.text_content("#verdict") == "review"
    lanes = page.locator("#timeline .lane").evaluate_all("l => l.map(x => x.dataset.category)")
    assert lanes == ["bad", "meh"]  # the safe class has no lane
    ticks = page.locator('#timeline [data-category="bad"] .tick').count()
    assert ticks >= 3  # one per sampled frame: the first, one in each second, and the scene cuts
    assert page.locator('#timeline [data-category="bad"] .tick.flagged').count() == ticks
    assert page.locator('#timeline [data-category="meh"] .tick.flagged').count() == 0
    segment = page.locator('#timeline [data-category="bad"] .segment')
    assert segment.count() == 1
    assert (segment.get_attribute("data-start"), segment.evaluate("s => s.style.width")) == ("0", "100%")
    snap(page, "try-video")

    expect(page.locator("#preview-video")).to_have_js_property("readyState", 4)
    page.evaluate("document.getElementById('preview-video').currentTime = 2.5")
    segment.click()
    assert page.evaluate("document.getElementById('preview-video').currentTime") == 0

    track = page.locator('#timeline [data-category="meh"] .lane-track')
    box = track.bounding_box()
    track.click(position={"x": box["width"] * 2 / 3, "y": box["height"] - 2})
    assert page.evaluate("document.getElementById('preview-video').currentTime") == pytest.approx(
        2.0, abs=0.1
    )


def test_an_error_shows_the_apis_detail(page: Any, server: str, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_bytes(b"these are notes, not an image")
    direct = httpx.post(
        f"{server}/v1/moderate", files={"image": ("notes.txt", text.read_bytes(), "text/plain")}
    )
    assert direct.status_code >= 400
    open_console(page, server)

    judge_file(page, text)
    page.wait_for_selector("#error:not([hidden])")

    assert page.text_content("#error") == f"{direct.status_code}: {direct.json()['detail']}"


def test_a_pasted_url_goes_to_the_api_and_its_refusal_is_shown(page: Any, server: str) -> None:
    url = f"{server}/console/nothing.png"  # loopback: the API never fetches it (SSRF guard)
    direct = httpx.post(f"{server}/v1/moderate", files={"location": (None, url)})
    assert direct.status_code == 400
    open_console(page, server)

    page.fill("#url", url)
    page.click("#judge")
    page.wait_for_selector("#error:not([hidden])")

    assert page.text_content("#error") == f"400: {direct.json()['detail']}"
    assert page.locator("#result").is_hidden()


def test_a_key_is_asked_for_once_kept_for_the_tab_and_sent_on_every_call(
    page: Any, server: str, png_file: Path
) -> None:
    """API Gateway in front: calls without the right key get its 403 {"message": "Forbidden"}."""
    sent: list[tuple[str, str | None]] = []

    def gateway(route: Any) -> None:
        key = route.request.headers.get("x-api-key")
        sent.append((route.request.url, key))
        if key != KEY:
            route.fulfill(
                status=403, content_type="application/json", body=json.dumps({"message": "Forbidden"})
            )
        else:
            route.continue_()

    page.route(f"{server}/v1/**", gateway)
    page.goto(f"{server}/")  # the page itself needs no key

    page.wait_for_selector("#key-dialog[open]")
    page.fill("#key-input", KEY)
    page.click("#key-ok")
    page.wait_for_selector("#policy option", state="attached")
    judge_file(page, png_file)
    page.wait_for_selector("#bars .bar-row")

    assert all(key is not None for _, key in sent)  # every call carried the header
    assert sent[0][1] == ""  # the first, before a key was known
    assert [key for _, key in sent[1:]] == [KEY] * (len(sent) - 1)
    assert page.evaluate("sessionStorage.getItem('moderation-api-key')") == KEY
    assert page.evaluate("localStorage.length") == 0
    assert page.text_content("#key-state") == "API key set for this tab"

    page.reload()  # the same tab: the key is not asked for again
    page.wait_for_selector("#policy option", state="attached")
    assert not page.locator("#key-dialog").evaluate("d => d.open")


def test_the_review_queue_decides_by_key_and_by_click_and_items_leave_it(
    page: Any, server: str, s3: Any, forced: Callable[..., Moderator]
) -> None:
    make_buckets(s3)
    mod = forced("review")
    refs = []
    for i, key in enumerate(["first.jpg", "second.jpg"]):
        version = s3.put_object(Bucket=UPLOADS, Key=key, Body=image_bytes(color=(60 * i, 90, 30)))[
            "VersionId"
        ]
        refs.append(ObjectRef(UPLOADS, key, version))
        [result] = moderate_objects([refs[-1]], client=s3, moderator=mod)  # the S3 flow's own record
        assert result.verdict == "review"

    page.goto(f"{server}/review")
    page.wait_for_selector("#queue .card img")
    assert page.locator("#queue .card").evaluate_all("c => c.map(x => x.dataset.key)") == [
        "second.jpg",
        "first.jpg",
    ]
    thumb = page.locator("#queue .card img").first
    expect(thumb).to_have_js_property("complete", True)
    assert thumb.evaluate("i => i.naturalWidth") == 320  # the presigned URL served the object itself
    assert "blur(" in thumb.evaluate("i => getComputedStyle(i).filter")
    snap(page, "review")

    page.fill("#reviewer", "Ana")
    page.press("#reviewer", "Tab")  # keyboard shortcuts act outside text fields
    page.keyboard.press("a")  # allow the selected (newest) item
    expect(page.locator("#queue .card")).to_have_count(1)
    assert tags_of(s3, UPLOADS, "second.jpg", refs[1].version_id)[VERDICT] == "allow"

    page.locator("#queue .card button.quarantine").click()
    expect(page.locator("#queue .card")).to_have_count(0)
    expect(page.locator("#empty")).to_be_visible()
    assert not exists(s3, UPLOADS, "first.jpg", refs[0].version_id)
    assert exists(s3, QUARANTINE, quarantined_key("first.jpg", str(refs[0].version_id)))

    page.fill("#history-bucket", UPLOADS)
    page.fill("#history-key", "second.jpg")
    page.click("#history-form button")
    page.wait_for_selector("#history table")
    assert "allow by Ana" in page.text_content("#history table")
    snap(page, "review-history")


def test_a_second_reviewer_is_told_who_decided_first(
    browser: Any, page: Any, server: str, s3: Any, forced: Callable[..., Moderator]
) -> None:
    make_buckets(s3)
    version = s3.put_object(Bucket=UPLOADS, Key="both.jpg", Body=image_bytes())["VersionId"]
    [result] = moderate_objects(
        [ObjectRef(UPLOADS, "both.jpg", version)], client=s3, moderator=forced("review")
    )
    assert result.verdict == "review"
    other = browser.new_page()
    try:
        for reviewer, tab in (("Ana", page), ("Bo", other)):
            tab.goto(f"{server}/review")
            tab.wait_for_selector("#queue .card")
            tab.fill("#reviewer", reviewer)
            tab.press("#reviewer", "Tab")

        page.locator("#queue .card button.allow").click()
        expect(page.locator("#queue .card")).to_have_count(0)
        other.locator("#queue .card button.quarantine").click()  # Bo's page still shows it

        expect(other.locator("#queue .card")).to_have_count(0)
        expect(other.locator("#error")).to_contain_text("already decided: allow by Ana")
        assert exists(s3, UPLOADS, "both.jpg", version)
        assert tags_of(s3, UPLOADS, "both.jpg", version)[VERDICT] == "allow"
    finally:
        other.close()
