"""`make s3-local`: the S3 flow end to end against its own moto server, as a developer runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.parametrize("verdict", ["quarantine", "review"])
def test_s3_local_moves_or_tags_every_upload_and_prints_it(verdict: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MODEL_DIR", "AWS_ENDPOINT_URL")}
    result = subprocess.run(
        [sys.executable, "-m", "handler.local_s3", "--verdict", verdict],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    uploads, rest = out.split("s3://local-quarantine:")
    quarantine, records = rest.split("decision table local-decisions:")
    media = ("photos/beach + sun.jpg", "photos/night sky.png", "clips/wave.mp4")
    if verdict == "quarantine":
        for key in media:
            assert f"  {key}: gone (moved to quarantine)" in uploads
            assert f"  quarantine/local-uploads/{key}/" in quarantine, "one copy per source version"
        assert quarantine.count("moderation-verdict=quarantine") == 3
    else:
        for key in media:
            line = next(x for x in uploads.splitlines() if x.startswith(f"  {key}: "))
            assert "moderation-verdict=review" in line
        assert "(empty)" in quarantine
    notes = next(x for x in uploads.splitlines() if x.startswith("  docs/notes.txt: "))
    assert "moderation-verdict=error" in notes
    assert "moderation-reason=not an image" in notes
    for key in media:  # the record, not only the tags
        assert f"  {key}: {verdict} (done) by local-demo-{verdict}@" in records
    assert "  docs/notes.txt: error (done)" in records
