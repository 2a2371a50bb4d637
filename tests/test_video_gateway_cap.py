"""Videos through API Gateway end (judged or refused) before its 29 s; Function URLs are not capped."""

from __future__ import annotations

import pytest

from handler.api.gateway import API_GATEWAY_BUDGET_S, gateway_time_cap_s
from handler.settings import Settings
from handler.video.judge import sampling_limits
from tests.event_loader import load_event


@pytest.mark.parametrize(
    ("name", "cap"),
    [
        ("apigw_rest_v1_classify", API_GATEWAY_BUDGET_S),
        ("http_api_v2_classify", API_GATEWAY_BUDGET_S),
        ("function_url_classify", None),
    ],
)
def test_the_cap_follows_the_event_source(name: str, cap: float | None) -> None:
    assert gateway_time_cap_s(load_event(name)) == cap


def test_no_lambda_event_means_no_cap() -> None:
    assert gateway_time_cap_s(None) is None  # `make serve`: uvicorn, no gateway in front


def test_the_cap_shortens_a_longer_function_budget_but_never_lengthens_one() -> None:
    long = Settings(function_timeout_s=900)
    assert (
        sampling_limits(long, 224, started=0.0, cap_s=API_GATEWAY_BUDGET_S).time_limit_s
        == API_GATEWAY_BUDGET_S
    )
    short = Settings(function_timeout_s=15)
    uncapped = sampling_limits(short, 224, started=0.0).time_limit_s
    assert sampling_limits(short, 224, started=0.0, cap_s=API_GATEWAY_BUDGET_S).time_limit_s == uncapped
