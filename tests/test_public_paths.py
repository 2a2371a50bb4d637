"""The public URLs, through the transformed template: one stage named for the environment, the version in
the path exactly as the app (and `make serve`) has it, and the deprecated `v1` stage answering the old
`.../v1/v1/...` URLs while LegacyV1Paths is true."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

from handler.core.moderator import Moderator
from handler.openapi import schema
from tests.conftest import image_bytes
from tests.event_loader import load_event
from tests.test_template import Json, of_type, render, sam_transform


@pytest.fixture(scope="module")
def shapes() -> Iterator[dict[str, dict[str, Json]]]:
    """The rendered stack for: the defaults, the old URLs turned off, another environment's stage."""
    cases = {"default": {}, "no-legacy": {"LegacyV1Paths": "false"}, "staging": {"ApiStageName": "staging"}}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        yield {name: render(sam_transform(**overrides), overrides) for name, overrides in cases.items()}


def route(stack: dict[str, Json], url_path: str) -> tuple[str, str, str] | None:
    """(stage, API resource, path the function sees) for https://<api>.execute-api...{url_path}, as API
    Gateway matches it (a greedy {proxy+} takes one or more segments; /classify/ matches /classify);
    None where API Gateway answers 403 without invoking anything."""
    stage, _, rest = url_path.lstrip("/").partition("/")
    stages = {
        s["Properties"]["StageName"] for s in of_type(stack["Resources"], "AWS::ApiGateway::Stage").values()
    }
    if stage not in stages:
        return None
    path = "/" + rest
    wanted = path.rstrip("/") or "/"
    for resource in stack["Resources"]["ModerationApi"]["Properties"]["Body"]["paths"]:
        greedy = resource.removesuffix("{proxy+}")
        if (
            resource != greedy and wanted.startswith(greedy) and len(wanted) > len(greedy)
        ) or resource == wanted:
            return stage, resource, path
    return None


def app_paths() -> list[str]:
    return [*schema()["paths"], "/openapi.json"]


@pytest.mark.parametrize("shape", ["default", "no-legacy"])
def test_every_app_path_is_public_at_the_same_path_under_the_stage(
    shapes: dict[str, dict[str, Json]], shape: str
) -> None:
    for path in app_paths():
        assert route(shapes[shape], f"/prod{path}") is not None, f"{path} is not reachable"
        assert route(shapes[shape], f"/prod{path}")[2] == path, "the function sees the app's own path"
    assert route(shapes[shape], "/prod/v1/moderate") == ("prod", "/v1/{proxy+}", "/v1/moderate")
    assert route(shapes[shape], "/prod/classify/") == ("prod", "/classify", "/classify/")
    assert route(shapes[shape], "/prod/docs") is None, "only the routes the app serves invoke the function"


def test_the_stage_is_named_for_the_environment(shapes: dict[str, dict[str, Json]]) -> None:
    staging = shapes["staging"]
    assert route(staging, "/staging/v1/moderate") == ("staging", "/v1/{proxy+}", "/v1/moderate")
    assert route(staging, "/prod/v1/moderate") is None
    assert staging["Outputs"]["ApiUrl"]["Value"]["Fn::Sub"].endswith("/${ApiStageName}/")


def test_the_old_urls_answer_on_the_deprecated_stage_until_turned_off(
    shapes: dict[str, dict[str, Json]],
) -> None:
    default, off = shapes["default"], shapes["no-legacy"]
    assert route(default, "/v1/v1/moderate") == ("v1", "/v1/{proxy+}", "/v1/moderate")
    assert route(default, "/v1/classify/") == ("v1", "/classify", "/classify/")
    assert route(default, "/v1/health") == ("v1", "/health", "/health")
    assert route(off, "/v1/v1/moderate") is None
    assert "LegacyApiUrl" not in off["Outputs"]

    resources = default["Resources"]
    stages = of_type(resources, "AWS::ApiGateway::Stage")
    (deployment,) = of_type(resources, "AWS::ApiGateway::Deployment")
    assert {s["Properties"]["DeploymentId"]["Ref"] for s in stages.values()} == {deployment}, (
        "both stages serve the one deployment, so the old URLs reach the same routes and function"
    )
    plans = of_type(resources, "AWS::ApiGateway::UsagePlan")
    covered = {stage["Stage"]["Ref"] for plan in plans.values() for stage in plan["Properties"]["ApiStages"]}
    assert covered == set(stages), "the API key works on both stages"
    keys = of_type(resources, "AWS::ApiGateway::UsagePlanKey").values()
    assert {k["Properties"]["KeyId"]["Ref"] for k in keys} == {"ModerationApiApiKey"}
    assert {k["Properties"]["UsagePlanId"]["Ref"] for k in keys} == set(plans)
    assert not of_type(off["Resources"], "AWS::ApiGateway::UsagePlanKey").keys() - {
        "ModerationApiUsagePlanKey"
    }


def rest_event(url_path: str, stack: dict[str, Json], body: dict[str, Any]) -> dict[str, Any]:
    """The API Gateway REST event for a JSON POST to url_path, as the routed stage and resource send it."""
    matched = route(stack, url_path)
    assert matched is not None
    stage, resource, path = matched
    event = load_event("apigw_rest_v1_classify", boundary="unused", body="", content_length="0")
    headers = {"Content-Type": "application/json", "x-api-key": "EXAMPLEKEYEXAMPLEKEYEXAMPLEKEY"}
    event.update(
        resource=resource,
        path=path,
        headers=headers,
        multiValueHeaders={k: [v] for k, v in headers.items()},
        body=json.dumps(body),
        isBase64Encoded=False,
        pathParameters={"proxy": path.removeprefix(resource.removesuffix("{proxy+}"))}
        if resource.endswith("{proxy+}")
        else None,
    )
    event["requestContext"].update(resourcePath=resource, path=url_path, stage=stage)
    return event


@pytest.fixture
def main(moderator: Moderator) -> ModuleType:
    import handler.main

    return handler.main


@pytest.mark.parametrize("url_path", ["/prod/v1/moderate", "/v1/v1/moderate"])
def test_the_function_answers_the_new_and_the_old_url_alike(
    shapes: dict[str, dict[str, Json]],
    main: ModuleType,
    forced: Callable[..., Moderator],
    override_moderator: Callable[[Moderator], None],
    url_path: str,
) -> None:
    override_moderator(forced("review"))
    body = {"image_base64": base64.b64encode(image_bytes()).decode()}
    response = main.handler(rest_event(url_path, shapes["default"], body), None)

    assert response["statusCode"] == 200, response
    answer = json.loads(response["body"])
    assert (answer["verdict"], answer["policy"].split("@")[0]) == ("review", "forced-review")
    headers = {k.lower(): v for k, v in response["headers"].items()}
    if url_path.startswith("/v1/"):
        assert headers["deprecation"] == "@1796169600", "RFC 9745: deprecated since 2026-12-02"
        assert "ApiUrl" in headers["x-deprecation-notice"]
    else:
        assert "deprecation" not in headers
