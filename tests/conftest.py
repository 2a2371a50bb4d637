"""Shared fixtures: a tiny random-weight CLIP checkpoint loaded through the production code path."""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from handler.core.moderator import Moderator, get_moderator
from handler.core.policy import Action, Policy, PolicySet
from handler.settings import Settings, get_settings
from handler.tools.random_checkpoint import make_random_checkpoint

# Never reach a model hub or AWS from tests, whatever the developer's environment says.
os.environ.update(
    HF_HUB_OFFLINE="1",
    TRANSFORMERS_OFFLINE="1",
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
)
for _name in ("MODERATION_POLICY", "QUARANTINE_BUCKET", "QUARANTINE_PREFIX", "AWS_PROFILE"):
    os.environ.pop(_name, None)


@pytest.fixture(scope="session", autouse=True)
def matplotlib_font_cache() -> None:
    """matplotlib builds its font cache on its first import, running `fc-list` where fontconfig is
    installed: build it once here, before any test's process guard, so that which test happens to import
    matplotlib first does not decide whether it fails."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.font_manager


@pytest.fixture(autouse=True)
def subprocesses_only_in_slow_tests(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that starts a process (seconds of interpreter and torch start-up) must be marked slow, so
    `-m 'not slow'` stays the quick loop: starting one from an unmarked test fails it, saying so."""
    if request.node.get_closest_marker("slow"):
        return

    def refuse(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"{request.node.nodeid} starts a process: mark it @pytest.mark.slow")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_random_checkpoint(tmp_path_factory.mktemp("tiny-clip"), size="tiny")


@pytest.fixture(scope="session")
def baked(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint after `python -m handler bake`'s code: ONNX towers, text embeddings."""
    from handler.tools.bake import bake

    out = tmp_path_factory.mktemp("baked") / "model"
    bake(out, "test/tiny-clip", from_dir=tiny_model_dir)
    return out


@pytest.fixture(scope="session", autouse=True)
def model_env(tiny_model_dir: Path) -> Iterator[None]:
    """MODEL_DIR points at the tiny checkpoint for the whole run, as a deployment would set it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MODEL_DIR", str(tiny_model_dir))
        get_settings.cache_clear()
        get_moderator.cache_clear()
        yield
    get_settings.cache_clear()
    get_moderator.cache_clear()


@pytest.fixture(scope="session")
def moderator(model_env: None) -> Moderator:
    return get_moderator()


@pytest.fixture(scope="session")
def client(moderator: Moderator) -> Iterator[TestClient]:
    from handler.app import app

    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def make_moderator(moderator: Moderator) -> Callable[..., Moderator]:
    """A moderator sharing the loaded model but with other settings (limits, policies)."""

    def build(**overrides: Any) -> Moderator:
        settings = Settings(**{"model_dir": moderator.settings.model_dir, **overrides})
        return Moderator(moderator.encoder, PolicySet.from_paths(settings.moderation_policy), settings)

    return build


@pytest.fixture
def forced(tmp_path: Path, make_moderator: Callable[..., Moderator]) -> Callable[..., Moderator]:
    """A moderator whose default policy forces a verdict, quarantining into QUARANTINE/PREFIX and
    recording in the decision table TABLE (created by the `s3` fixture)."""
    from tests.s3_doubles import PREFIX, QUARANTINE, TABLE, write_policy

    def build(verdict: str, **settings: Any) -> Moderator:
        return make_moderator(
            **{
                "moderation_policy": [write_policy(tmp_path, verdict)],
                "quarantine_bucket": QUARANTINE,
                "quarantine_prefix": PREFIX,
                "decision_table": TABLE,
                **settings,
            }
        )

    return build


@pytest.fixture
def override_moderator(client: TestClient) -> Iterator[Callable[[Moderator], None]]:
    """Serve the app with another moderator for one test."""
    from handler.api.deps import moderator as moderator_dependency
    from handler.app import app

    def use(mod: Moderator) -> None:
        app.dependency_overrides[moderator_dependency] = lambda: mod

    yield use
    app.dependency_overrides.clear()


def image_bytes(
    fmt: str = "JPEG", size: tuple[int, int] = (320, 240), color: Any = (200, 30, 30), **save: Any
) -> bytes:
    mode = "RGB" if fmt == "JPEG" else "RGBA"
    image = Image.new(mode, size, color)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def verdict_by_the_rule(scores: dict[str, float], policy: Policy) -> str:
    """The verdict design.md defines: the most severe action among the flagged categories (score at or
    above the threshold, the safe class never), allow when none is flagged. An oracle for tests that
    cannot force a verdict (random weights give whatever scores they give)."""
    flagged = [c.action for c in policy.categories if not c.safe and scores[c.name] >= c.threshold]
    return max(flagged, key=lambda action: action.severity, default=Action.allow).value


def api_verdict(client: TestClient, image: bytes) -> str:
    """What POST /v1/moderate answers for these bytes (the reference another path must agree with)."""
    response = client.post("/v1/moderate", files={"image": ("a.jpg", image, "image/jpeg")})
    assert response.status_code == 200, response.text
    return str(response.json()["verdict"])


@pytest.fixture
def jpeg() -> bytes:
    return image_bytes("JPEG")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto in server mode: boto3 speaks real HTTP to it through AWS_ENDPOINT_URL."""
    import socket

    from moto.server import ThreadedMotoServer

    from handler.decisions.table import clear_cached_tables
    from handler.s3.client import get_s3_client

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ENDPOINT_URL", endpoint)
        get_s3_client.cache_clear()
        clear_cached_tables()
        yield endpoint
    get_s3_client.cache_clear()
    clear_cached_tables()
    server.stop()


@pytest.fixture
def s3(moto_server: str) -> Any:
    """A fresh client against the moto server (state is reset per test)."""
    import urllib.request

    import boto3

    from handler.decisions.table import table_definition
    from tests.s3_doubles import TABLE

    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST"), timeout=5)
    boto3.client("dynamodb", endpoint_url=moto_server).create_table(**table_definition(TABLE))
    return boto3.client("s3", endpoint_url=moto_server)


@pytest.fixture
def dynamodb(s3: Any, moto_server: str) -> Any:
    """The decision table's client (the table is created with every fresh `s3`)."""
    import boto3

    return boto3.client("dynamodb", endpoint_url=moto_server)


@pytest.fixture
def deploy(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moderator: Moderator
) -> Iterator[Callable[..., ModuleType]]:
    """Configure the deployment through the environment (as the template does) and return the Lambda
    entry module: `deploy("quarantine", METRICS="on")` makes the default policy force that verdict."""
    import handler.main
    from handler.decisions.table import clear_cached_tables
    from handler.observability.verdict_events import get_events_client
    from handler.s3.deferral import get_sqs_client
    from tests.s3_doubles import PREFIX, QUARANTINE, TABLE, make_buckets, write_policy

    def clear() -> None:
        for cached in (get_settings, get_moderator, clear_cached_tables, get_sqs_client, get_events_client):
            getattr(cached, "cache_clear", cached)()

    def configure(verdict: str, **env: str) -> ModuleType:
        values = {
            "MODERATION_POLICY": str(write_policy(tmp_path, verdict)),
            "QUARANTINE_BUCKET": QUARANTINE,
            "QUARANTINE_PREFIX": PREFIX,
            "DECISION_TABLE": TABLE,
            **env,
        }
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        clear()
        return handler.main

    make_buckets(s3)
    yield configure
    monkeypatch.undo()
    clear()
