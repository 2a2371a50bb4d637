"""The benchmark's moving parts: test photographs, a served process, timed requests, peak memory."""

from __future__ import annotations

import io
import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

#: `import torch, transformers` + load + one inference: the thesis's cold start without a web server.
BARE_SCRIPT = """
import io, sys, torch, transformers
from PIL import Image
d = sys.argv[1]
model = transformers.CLIPModel.from_pretrained(d).eval()
processor = transformers.CLIPProcessor.from_pretrained(d)
image = Image.open(io.BytesIO(open(sys.argv[2], 'rb').read())).convert('RGB').resize((224, 224))
with torch.no_grad():
    model(**processor(text=['nsfw', 'sfw'], images=image, return_tensors='pt', padding=True))
"""


def make_images(count: int, seed: int = 0, size: tuple[int, int] = (1024, 768)) -> list[bytes]:
    """Distinct photo-like JPEGs: smooth random colour fields with detail, about 100-200 kB each."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        coarse = Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)).resize(
            size, Image.Resampling.BICUBIC
        )
        detail = rng.normal(0, 12, (size[1], size[0], 3))
        pixels = np.clip(np.asarray(coarse, dtype=np.float64) + detail, 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
        images.append(buffer.getvalue())
    return images


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


_CLIENT: httpx.Client | None = None


def client() -> httpx.Client:
    """One keep-alive client for all requests, as a real caller would use: making an httpx.Client costs
    30-60 ms of TLS set-up on this machine, which would otherwise be billed to the service."""
    global _CLIENT
    if _CLIENT is None:
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
        _CLIENT = httpx.Client(timeout=300)
    return _CLIENT


@dataclass
class Server:
    name: str
    url: str
    pid: int
    cold_start_s: float
    log: Path

    @property
    def precision(self) -> str:
        """What the server says it loaded (its start-up log line), not what was asked for."""
        found = re.search(r"runtime=(\w+), precision=([\w-]+)", self.log.read_text())
        return f"{found.group(1)}/{found.group(2)}" if found else "unknown"

    def classify(self, data: bytes) -> None:
        files = {"image": ("a.jpg", data, "image/jpeg")}
        client().post(f"{self.url}/classify/", files=files).raise_for_status()

    def batch(self, images: list[bytes]) -> None:
        files = [("images", (f"{i}.jpg", d, "image/jpeg")) for i, d in enumerate(images)]
        client().post(f"{self.url}/v1/moderate/batch", files=files).raise_for_status()

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")


@contextmanager
def serve(name: str, model_dir: Path, first_image: bytes, logs: Path, **env: str) -> Iterator[Server]:
    """`python -m handler serve` with MODEL_DIR and `env`; yields once it has answered one request (its
    cold start is process start to that answer)."""
    port = free_port()
    log = logs / f"{name}.log"
    settings = {"MODEL_DIR": str(model_dir), "PORT": str(port), "LOG_LEVEL": "INFO", **env}
    started = time.perf_counter()
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "handler", "serve"],
            env={**os.environ, **settings},
            stderr=sink,
            stdout=sink,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                client().post(f"{url}/classify/", files={"image": ("a.jpg", first_image)}).raise_for_status()
                break
            except httpx.TransportError:
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited during start-up; see {log}") from None
                time.sleep(0.02)
        yield Server(name, url, process.pid, time.perf_counter() - started, log)
    finally:
        process.terminate()
        process.wait(timeout=30)


def thesis_path(model_dir: Path) -> Callable[[bytes], Any]:
    """The thesis's per-request code: decode, resize to 224, processor(text+image), full model, softmax."""
    import torch
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(model_dir).eval()
    processor = CLIPProcessor.from_pretrained(model_dir)

    def classify(data: bytes) -> Any:
        image = Image.open(io.BytesIO(data)).convert("RGB").resize((224, 224))
        with torch.no_grad():
            inputs = processor(text=["nsfw", "sfw"], images=image, return_tensors="pt", padding=True)
            return model(**inputs).logits_per_image.softmax(dim=1)

    return classify


def bare_cold_start(model_dir: Path, sample: Path) -> float:
    started = time.perf_counter()
    command = [sys.executable, "-c", BARE_SCRIPT, str(model_dir), str(sample)]
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def ms(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000
