"""The command line, run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import image_bytes

ROOT = Path(__file__).parents[1]


def run_cli(*args: str, model_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODEL_DIR": str(model_dir)}
    return subprocess.run(
        [sys.executable, "-m", "handler", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )


@pytest.mark.slow
def test_classify_prints_one_json_line_per_image(tmp_path: Path, tiny_model_dir: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(image_bytes("JPEG"))
    (tmp_path / "b.png").write_bytes(image_bytes("PNG"))
    (tmp_path / "c.txt").write_text("not an image")
    result = run_cli(
        "classify",
        str(tmp_path / "a.jpg"),
        str(tmp_path / "b.png"),
        str(tmp_path / "c.txt"),
        "--classes",
        " cat, dog ,bird",
        model_dir=tiny_model_dir,
    )
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["image"] for line in lines] == [str(tmp_path / n) for n in ("a.jpg", "b.png", "c.txt")]
    assert set(lines[0]["label_probabilities"]) == {"cat", "dog", "bird"}
    assert lines[1]["prediction"] in {"cat", "dog", "bird"}
    assert "not an image" in lines[2]["error"]
    assert result.returncode == 1  # one image failed


@pytest.mark.slow
def test_classify_rejects_a_single_class(tmp_path: Path, tiny_model_dir: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(image_bytes("JPEG"))
    result = run_cli("classify", str(tmp_path / "a.jpg"), "--classes", "cat", model_dir=tiny_model_dir)
    assert result.returncode == 2
    assert "at least two distinct" in result.stderr


@pytest.mark.slow
def test_serve_answers_health_and_classify_over_real_http(tmp_path: Path, tiny_model_dir: Path) -> None:
    import socket
    import time

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "MODEL_DIR": str(tiny_model_dir), "PORT": str(port)}
    server = subprocess.Popen([sys.executable, "-m", "handler", "serve"], env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
                break
            except httpx.TransportError:
                assert server.poll() is None, "server exited"
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.3)
        assert health.status_code == 200
        response = httpx.post(
            f"http://127.0.0.1:{port}/classify/",
            files={"image": ("a.jpg", image_bytes("JPEG"), "image/jpeg")},
            data={"classes": "nsfw, sfw"},
            timeout=30,
        )
        assert response.status_code == 200
        assert set(response.json()["result"]["label_probabilities"]) == {"nsfw", "sfw"}
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_evaluation_tools_say_how_to_install_their_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from handler.evaluation.cli import require_tools
    from handler.exceptions import ConfigurationError

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real_find_spec(name, *a)
    )
    with pytest.raises(ConfigurationError, match=r"sklearn: pip install -r requirements-tools.txt"):
        require_tools()


def test_runtime_requirements_leave_out_the_evaluation_tools() -> None:
    for name in ("requirements-runtime.txt", "requirements.txt", "requirements-build.txt"):
        serving = (ROOT / name).read_text().lower()
        assert "scikit-learn" not in serving
        assert "matplotlib" not in serving
    assert "-r requirements-build.txt" in (ROOT / "requirements-tools.txt").read_text()
    assert "-r requirements.txt" in (ROOT / "requirements-build.txt").read_text()
    assert "-r requirements-runtime.txt" in (ROOT / "requirements.txt").read_text()
