"""The template gives videos a time budget and a duration limit that fit the function's timeout."""

from __future__ import annotations

from typing import Any

import pytest

from handler.settings import Settings
from handler.video.judge import video_time_limit_s
from tests.test_template import load_template, render, sam_transform

TIMEOUTS = load_template()["Parameters"]["Timeout"]["AllowedValues"]


@pytest.fixture(scope="module")
def transformed() -> Any:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        return sam_transform()


def test_every_timeout_has_a_video_duration_limit_growing_with_it() -> None:
    limits = load_template()["Mappings"]["VideoMaxDuration"]
    assert set(limits) == {str(t) for t in TIMEOUTS}
    seconds = [limits[str(t)]["Seconds"] for t in sorted(TIMEOUTS)]
    assert seconds == sorted(seconds)


@pytest.mark.parametrize("timeout", TIMEOUTS)
def test_function_gets_its_timeout_and_a_fitting_duration_limit(transformed: Any, timeout: int) -> None:
    rendered = render(transformed, {"Timeout": str(timeout)})
    env = rendered["Resources"]["ModerationFunction"]["Properties"]["Environment"]["Variables"]
    settings = Settings(
        function_timeout_s=env["FUNCTION_TIMEOUT_S"], video_max_duration_s=env["VIDEO_MAX_DURATION_S"]
    )
    assert settings.function_timeout_s == timeout
    budget = video_time_limit_s(settings)
    assert 0 < budget < timeout  # room left for the download, the tags and a quarantine move
    assert settings.video_max_duration_s <= 600  # never above the code's own default


def test_default_deployment_numbers(transformed: Any) -> None:
    """Timeout 30 s: 20 s a video, videos up to 60 s (a 60 s 720p clip measured 8.4 s on 2 cores)."""
    env = render(transformed, {})["Resources"]["ModerationFunction"]["Properties"]["Environment"]["Variables"]
    assert (env["FUNCTION_TIMEOUT_S"], env["VIDEO_MAX_DURATION_S"]) == (30, 60)
    assert video_time_limit_s(Settings(function_timeout_s=30)) == 20
