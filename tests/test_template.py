"""The infrastructure as code: template.yaml linted and transformed offline, infra/Dockerfile and samconfig.

Nothing here needs AWS, Docker, the network or the model. The SAM template is transformed with
samtranslator exactly as CloudFormation's AWS::Serverless transform would, then "rendered" for a set of
parameter values (conditions decided, Fn::If / Fn::FindInMap / parameter Refs resolved) so that each
deployment shape can be asserted on as CloudFormation would create it.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode.cfn_yaml import loads as load_cfn_yaml
from samtranslator.translator.transform import transform

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
DOCKERFILE = ROOT / "infra" / "Dockerfile"
IMAGE_URI = "123456789012.dkr.ecr.us-east-1.amazonaws.com/clip:latest"
UPLOAD_BUCKET_NAME = "${BucketNamePrefix}-uploads-${AWS::AccountId}-${AWS::Region}"
UPLOAD_BUCKET_ARN = "arn:${AWS::Partition}:s3:::" + UPLOAD_BUCKET_NAME
NO_VALUE = object()

Json = Any


# ---------------------------------------------------------------------------------------------- helpers
def load_template() -> dict[str, Json]:
    """template.yaml as plain JSON data (short tags such as !Ref become their long forms)."""
    return json.loads(json.dumps(load_cfn_yaml(TEMPLATE.read_text(), str(TEMPLATE))))


class NoManagedPolicies:
    """The managed-policy loader samtranslator asks for AWS-managed policy names; none are used here."""

    def load(self) -> dict[str, str]:
        return {}


def sam_transform(**overrides: str) -> dict[str, Json]:
    """The template after the AWS::Serverless transform, with the image URI `sam build` would add."""
    template = load_template()
    template["Resources"]["ModerationFunction"]["Properties"]["ImageUri"] = IMAGE_URI
    return transform(template, {"AWS::Region": "us-east-1", **overrides}, NoManagedPolicies())


def parameter_values(template: dict[str, Json], overrides: dict[str, str]) -> dict[str, Json]:
    values = {name: spec.get("Default") for name, spec in template["Parameters"].items()}
    values.update(overrides)
    return values


def render(template: dict[str, Json], overrides: dict[str, str]) -> dict[str, Json]:
    """What CloudFormation would create for these parameter values: resources and outputs whose condition
    is false are dropped, Fn::If picks its branch, AWS::NoValue disappears, Fn::FindInMap and Refs to
    parameters are replaced by their values. Other intrinsics (Fn::Sub, Fn::GetAtt, resource Refs) stay."""
    params = parameter_values(template, overrides)
    conditions: dict[str, bool] = {}

    def condition(name: str) -> bool:
        if name not in conditions:
            conditions[name] = evaluate(template["Conditions"][name])
        return conditions[name]

    def evaluate(expr: Json) -> bool:
        ((fn, arg),) = expr.items()
        if fn == "Fn::Equals":
            left, right = (resolve(x) for x in arg)
            return str(left) == str(right)
        if fn == "Fn::Not":
            return not evaluate(arg[0])
        if fn == "Fn::And":
            return all(evaluate(x) for x in arg)
        if fn == "Fn::Or":
            return any(evaluate(x) for x in arg)
        if fn == "Condition":
            return condition(arg)
        raise AssertionError(f"unsupported condition function {fn}")

    def resolve(node: Json) -> Json:
        if isinstance(node, list):
            items = [resolve(x) for x in node]
            return [x for x in items if x is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref" and arg == "AWS::NoValue":
                return NO_VALUE
            if key == "Ref" and arg in params:
                return params[arg]
            if key == "Fn::If":
                name, when_true, when_false = arg
                return resolve(when_true if condition(name) else when_false)
            if key == "Fn::FindInMap":
                name, top, second = (resolve(x) for x in arg)
                return template["Mappings"][name][str(top)][second]
        items = {k: resolve(v) for k, v in node.items()}
        return {k: v for k, v in items.items() if v is not NO_VALUE}

    rendered = copy.deepcopy(template)
    for section in ("Resources", "Outputs"):
        rendered[section] = {
            name: resolve({k: v for k, v in body.items() if k != "Condition"})
            for name, body in template.get(section, {}).items()
            if "Condition" not in body or condition(body["Condition"])
        }
    return rendered


def of_type(resources: dict[str, Json], type_: str) -> dict[str, Json]:
    return {name: body for name, body in resources.items() if body["Type"] == type_}


def as_list(value: Json) -> list[Json]:
    return value if isinstance(value, list) else [value]


def role_statements(resources: dict[str, Json]) -> Iterator[tuple[str, dict[str, Json]]]:
    for name, role in of_type(resources, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                yield f"{name}/{policy['PolicyName']}", statement


def allowed_actions(resources: dict[str, Json], resource: Json) -> set[str]:
    """Every action the function's role allows on `resource` (an ARN expression, compared as written)."""
    return {
        action
        for _, statement in role_statements(resources)
        if statement["Effect"] == "Allow" and resource in as_list(statement["Resource"])
        for action in as_list(statement["Action"])
    }


@pytest.fixture(scope="module")
def transformed() -> Iterator[dict[str, dict[str, Json]]]:
    """One transform per deployment shape. samtranslator asks boto3 for a region; give it one."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        yield {
            "buffered": sam_transform(),
            "direct": sam_transform(BufferThroughSqs="false"),
        }


@pytest.fixture(scope="module")
def buffered(transformed: dict[str, dict[str, Json]]) -> dict[str, Json]:
    return render(transformed["buffered"], {})


@pytest.fixture(scope="module")
def direct(transformed: dict[str, dict[str, Json]]) -> dict[str, Json]:
    return render(transformed["direct"], {"BufferThroughSqs": "false"})


# ---------------------------------------------------------------------------------------------- lint
@pytest.mark.slow
def test_cfn_lint_reports_no_errors() -> None:
    exe = Path(sys.executable).with_name("cfn-lint")
    cfn_lint = str(exe) if exe.exists() else shutil.which("cfn-lint")
    assert cfn_lint, "cfn-lint is not installed; run `make install`"
    result = subprocess.run(
        [cfn_lint, "--format", "parseable", str(TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    findings = result.stdout.splitlines()
    errors = [line for line in findings if re.search(r":E\d{4}:", line)]
    warnings = [line for line in findings if line not in errors]
    if warnings:
        print("cfn-lint warnings:", *warnings, sep="\n")
    # cfn-lint's exit status is a bit mask: 2 errors, 4 warnings, 8 informational; anything else a crash.
    assert not errors, "\n".join(errors)
    assert result.returncode & ~(4 | 8) == 0, result.stdout + result.stderr


# ---------------------------------------------------------------------------------------------- resources
def test_transform_creates_the_expected_resources(transformed: dict[str, dict[str, Json]]) -> None:
    expected = {
        "ModerationFunction": "AWS::Lambda::Function",
        "ModerationFunctionRole": "AWS::IAM::Role",
        "ModerationLogGroup": "AWS::Logs::LogGroup",
        "ModerationApi": "AWS::ApiGateway::RestApi",
        "ModerationApiStage": "AWS::ApiGateway::Stage",
        "ModerationApiv1Stage": "AWS::ApiGateway::Stage",
        "ModerationApiApiKey": "AWS::ApiGateway::ApiKey",
        "ModerationApiUsagePlan": "AWS::ApiGateway::UsagePlan",
        "ModerationApiUsagePlanKey": "AWS::ApiGateway::UsagePlanKey",
        "UploadBucket": "AWS::S3::Bucket",
        "UploadBucketPolicy": "AWS::S3::BucketPolicy",
        "QuarantineBucket": "AWS::S3::Bucket",
        "QuarantineBucketPolicy": "AWS::S3::BucketPolicy",
        "UploadQueue": "AWS::SQS::Queue",
        "UploadQueuePolicy": "AWS::SQS::QueuePolicy",
        "UploadQueueEventSourceMapping": "AWS::Lambda::EventSourceMapping",
        "UploadDLQ": "AWS::SQS::Queue",
        "UploadBucketInvokePermission": "AWS::Lambda::Permission",
        "ModerationAsyncInvokeConfig": "AWS::Lambda::EventInvokeConfig",
        "DeadLetterQueueAlarm": "AWS::CloudWatch::Alarm",
        "FunctionErrorsAlarm": "AWS::CloudWatch::Alarm",
        "AlarmTopic": "AWS::SNS::Topic",
    }
    resources = transformed["buffered"]["Resources"]
    actual = {name: body["Type"] for name, body in resources.items()}
    print("\n".join(f"{name}: {type_}" for name, type_ in sorted(actual.items())))
    assert expected.items() <= actual.items()
    assert not of_type(resources, "AWS::Serverless::Function"), "the transform left SAM resources behind"
    stages = of_type(resources, "AWS::ApiGateway::Stage")
    assert {name: stage["Properties"]["StageName"] for name, stage in stages.items()} == {
        "ModerationApiStage": {"Ref": "ApiStageName"},  # the environment's stage
        "ModerationApiv1Stage": "v1",  # the deprecated one (LegacyV1Paths)
    }


def test_function_is_the_baked_image(
    transformed: dict[str, dict[str, Json]], buffered: dict[str, Json]
) -> None:
    props = buffered["Resources"]["ModerationFunction"]["Properties"]
    assert props["PackageType"] == "Image"
    assert props["Code"] == {"ImageUri": IMAGE_URI}
    assert "Handler" not in props
    assert "Runtime" not in props
    assert props["Architectures"] == ["x86_64"]
    assert int(props["MemorySize"]) == 3008
    assert int(props["Timeout"]) == 30
    assert int(props["ReservedConcurrentExecutions"]) == 10
    env = props["Environment"]["Variables"]
    assert {"MODEL_DIR", "QUARANTINE_BUCKET", "QUARANTINE_PREFIX", "MODERATION_POLICY", "LOG_LEVEL"} <= set(
        env
    )
    assert env["MODEL_DIR"] == "/opt/model"
    assert env["QUARANTINE_BUCKET"] == {"Ref": "QuarantineBucket"}
    assert env["QUARANTINE_PREFIX"] == "quarantine/"
    assert env["MODERATION_POLICY"] == "", "empty = the built-in policy"
    assert props["LoggingConfig"]["LogGroup"] == {"Ref": "ModerationLogGroup"}
    assert props["Role"] == {"Fn::GetAtt": ["ModerationFunctionRole", "Arn"]}

    arm = render(transformed["buffered"], {"Architecture": "arm64", "MemorySize": "4096"})
    arm_props = arm["Resources"]["ModerationFunction"]["Properties"]
    assert arm_props["Architectures"] == ["arm64"]
    assert int(arm_props["MemorySize"]) == 4096
    uncapped = render(transformed["buffered"], {"ReservedConcurrency": "0"})
    assert "ReservedConcurrentExecutions" not in uncapped["Resources"]["ModerationFunction"]["Properties"]


def test_parameters_constrain_the_knobs() -> None:
    params = load_template()["Parameters"]
    assert (params["MemorySize"]["MinValue"], params["MemorySize"]["MaxValue"]) == (1024, 10240)
    assert params["Architecture"]["AllowedValues"] == ["x86_64", "arm64"]
    assert params["BufferThroughSqs"]["AllowedValues"] == ["true", "false"]
    assert params["PolicyFile"]["Default"] == ""
    assert params["AlarmEmail"]["Default"] == ""


# ---------------------------------------------------------------------------------------------- API
def test_every_api_method_but_the_console_pages_requires_the_api_key(buffered: dict[str, Json]) -> None:
    resources = buffered["Resources"]
    body = resources["ModerationApi"]["Properties"]["Body"]
    assert body["components"]["securitySchemes"]["api_key"] == {
        "type": "apiKey",
        "name": "x-api-key",
        "in": "header",
    }
    methods = {
        (path, method): spec
        for path, operations in body["paths"].items()
        for method, spec in operations.items()
        if method.startswith("x-amazon-apigateway-any-method") or method in {"get", "post", "put", "delete"}
    }
    console_pages = {("/", "get"), ("/review", "get"), ("/console/{name}", "get")}
    assert set(methods) == {
        ("/classify", "post"),
        ("/v1/{proxy+}", "x-amazon-apigateway-any-method"),
        ("/health", "get"),
        ("/openapi.json", "get"),
        *console_pages,
    }
    for (path, method), spec in methods.items():
        assert spec["x-amazon-apigateway-integration"]["type"] == "aws_proxy"
        if (path, method) in console_pages:  # static files: the page asks for the key, then sends it
            assert {"api_key": []} not in spec.get("security", []), f"{method} {path} requires the key"
            continue
        assert {"api_key": []} in spec.get("security", []), f"{method} {path} does not require the API key"

    plan = resources["ModerationApiUsagePlan"]["Properties"]
    assert plan["Quota"] == {"Limit": 10000, "Period": "DAY"}
    assert plan["Throttle"] == {"RateLimit": 10, "BurstLimit": 20}
    assert plan["ApiStages"] == [{"ApiId": {"Ref": "ModerationApi"}, "Stage": {"Ref": "ModerationApiStage"}}]
    key = resources["ModerationApiUsagePlanKey"]["Properties"]
    assert key["KeyId"] == {"Ref": "ModerationApiApiKey"}
    assert key["UsagePlanId"] == {"Ref": "ModerationApiUsagePlan"}
    assert resources["ModerationApiApiKey"]["Properties"]["Enabled"] is True


def test_api_stage_binary_types_and_throttling(buffered: dict[str, Json]) -> None:
    resources = buffered["Resources"]
    api = resources["ModerationApi"]["Properties"]
    assert set(api["BinaryMediaTypes"]) == {"multipart~1form-data", "image~1*", "application~1octet-stream"}
    assert set(api["Body"]["x-amazon-apigateway-binary-media-types"]) == {
        "multipart/form-data",
        "image/*",
        "application/octet-stream",
    }
    assert api["EndpointConfiguration"] == {"Types": ["REGIONAL"]}
    for stage in ("ModerationApiStage", "ModerationApiv1Stage"):
        (setting,) = resources[stage]["Properties"]["MethodSettings"]
        assert (setting["ResourcePath"], setting["HttpMethod"]) == ("/*", "*")
        assert (int(setting["ThrottlingRateLimit"]), int(setting["ThrottlingBurstLimit"])) == (10, 20)


def test_classify_with_trailing_slash_may_invoke_the_function(buffered: dict[str, Json]) -> None:
    permissions = of_type(buffered["Resources"], "AWS::Lambda::Permission")
    source_arns = [json.dumps(p["Properties"]["SourceArn"]) for p in permissions.values()]
    assert any('/POST/classify"' in arn for arn in source_arns), source_arns
    assert any('/POST/classify/"' in arn for arn in source_arns), source_arns


# ---------------------------------------------------------------------------------------------- buckets
@pytest.mark.parametrize("bucket", ["UploadBucket", "QuarantineBucket"])
def test_buckets_are_private_versioned_encrypted_and_tls_only(buffered: dict[str, Json], bucket: str) -> None:
    resources = buffered["Resources"]
    props = resources[bucket]["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}

    policies = [
        p["Properties"]
        for p in of_type(resources, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket}
    ]
    assert len(policies) == 1, f"{bucket} has no bucket policy"
    deny_insecure = [
        s
        for s in policies[0]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert deny_insecure, f"{bucket} does not deny plain-HTTP requests"
    assert deny_insecure[0]["Principal"] == "*"
    assert {"Fn::GetAtt": [bucket, "Arn"]} in deny_insecure[0]["Resource"]
    assert {"Fn::Sub": f"${{{bucket}.Arn}}/*"} in deny_insecure[0]["Resource"]


def test_quarantine_evidence_never_expires_unless_a_retention_is_set(transformed: Json) -> None:
    def expiring_rules(**overrides: str) -> list[Json]:
        rendered = render(transformed["buffered"], overrides)
        rules = rendered["Resources"]["QuarantineBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
        return [r for r in rules if "ExpirationInDays" in r or "NoncurrentVersionExpiration" in r]

    assert expiring_rules() == []
    [rule] = expiring_rules(QuarantineRetentionDays="400")
    assert rule["Status"] == "Enabled"
    assert int(rule["ExpirationInDays"]) == 400
    assert int(rule["NoncurrentVersionExpiration"]["NoncurrentDays"]) == 400


def test_decision_table_is_on_demand_recoverable_encrypted_and_matches_the_code(
    buffered: dict[str, Json],
) -> None:
    from handler.decisions.table import table_definition

    table = buffered["Resources"]["DecisionTable"]
    props = table["Properties"]
    assert table["DeletionPolicy"] == "Retain"
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"] == {"SSEEnabled": True}
    code = table_definition("any")
    for field in ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes"):
        assert props[field] == code[field], field
    env = buffered["Resources"]["ModerationFunction"]["Properties"]["Environment"]["Variables"]
    assert env["DECISION_TABLE"] == {"Ref": "DecisionTable"}
    assert env["API_S3_BUCKETS"] == {"Fn::Sub": UPLOAD_BUCKET_NAME}


def test_only_the_function_may_write_moderation_tags_on_uploads(buffered: dict[str, Json]) -> None:
    statements = buffered["Resources"]["UploadBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    [deny] = [s for s in statements if s.get("Sid") == "OnlyTheFunctionWritesModerationTags"]
    assert deny["Effect"] == "Deny"
    assert deny["Principal"] == "*"
    assert set(deny["Action"]) == {"s3:PutObject", "s3:PutObjectTagging", "s3:PutObjectVersionTagging"}
    assert deny["Condition"]["ForAnyValue:StringLike"] == {"s3:RequestObjectTagKeys": "moderation-*"}
    assert deny["Condition"]["ArnNotEquals"] == {
        "aws:PrincipalArn": {"Fn::GetAtt": ["ModerationFunctionRole", "Arn"]}
    }


def test_upload_bucket_name_is_the_one_every_grant_names(buffered: dict[str, Json]) -> None:
    """The upload bucket's ARN is built from its name (no Ref: it would be a cycle); all copies must agree."""
    text = json.dumps(buffered["Resources"])
    props = buffered["Resources"]["UploadBucket"]["Properties"]
    assert props["BucketName"] == {"Fn::Sub": UPLOAD_BUCKET_NAME}
    assert text.count(json.dumps(UPLOAD_BUCKET_ARN)[1:-1]) >= 3, "role, queue policy and ListBucket grant"
    # Bucket names are at most 63 characters: prefix + "-uploads-" + account + "-" + the longest region.
    longest = int(load_template()["Parameters"]["BucketNamePrefix"]["MaxLength"])
    assert longest + len("-uploads-") + 12 + 1 + len("ap-southeast-2") <= 63


# ---------------------------------------------------------------------------------------------- S3 events
def test_buffered_uploads_flow_through_sqs(buffered: dict[str, Json]) -> None:
    resources = buffered["Resources"]
    notifications = resources["UploadBucket"]["Properties"]["NotificationConfiguration"]
    assert notifications == {
        "QueueConfigurations": [
            {"Event": "s3:ObjectCreated:*", "Queue": {"Fn::GetAtt": ["UploadQueue", "Arn"]}}
        ]
    }
    # The queue must accept the bucket's messages before S3 will store the notification.
    assert resources["UploadBucket"]["Metadata"] == {
        "NotificationDestinationGrant": {"Ref": "UploadQueuePolicy"}
    }
    (allow,) = [
        s
        for s in resources["UploadQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Allow"
    ]
    assert allow["Principal"] == {"Service": "s3.amazonaws.com"}
    assert allow["Action"] == "sqs:SendMessage"
    assert allow["Condition"]["ArnEquals"]["aws:SourceArn"] == {"Fn::Sub": UPLOAD_BUCKET_ARN}
    assert allow["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}

    mapping = resources["UploadQueueEventSourceMapping"]["Properties"]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["UploadQueue", "Arn"]}
    assert mapping["FunctionName"] == {"Ref": "ModerationFunction"}
    assert mapping["BatchSize"] == 10
    assert mapping["MaximumBatchingWindowInSeconds"] == 5
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]

    queue = resources["UploadQueue"]["Properties"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["UploadDLQ", "Arn"]},
        "maxReceiveCount": 5,
    }
    assert queue["SqsManagedSseEnabled"] is True
    s3_permissions = [
        p
        for p in of_type(resources, "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "s3.amazonaws.com"
    ]
    assert not s3_permissions, "buffered mode must not let the bucket invoke the function"
    assert "ModerationAsyncInvokeConfig" not in resources
    assert "UploadQueueUrl" in buffered["Outputs"]


@pytest.mark.parametrize("timeout", load_template()["Parameters"]["Timeout"]["AllowedValues"])
def test_queue_visibility_timeout_is_at_least_six_function_timeouts(transformed: Json, timeout: int) -> None:
    rendered = render(transformed["buffered"], {"Timeout": str(timeout)})
    function_timeout = int(rendered["Resources"]["ModerationFunction"]["Properties"]["Timeout"])
    visibility = int(rendered["Resources"]["UploadQueue"]["Properties"]["VisibilityTimeout"])
    assert function_timeout == timeout
    assert visibility >= 6 * function_timeout
    assert visibility <= 43200, "SQS maximum (12 hours)"


def test_visibility_mapping_covers_exactly_the_allowed_timeouts() -> None:
    template = load_template()
    allowed = {str(v) for v in template["Parameters"]["Timeout"]["AllowedValues"]}
    assert set(template["Mappings"]["QueueVisibilityTimeout"]) == allowed


def test_direct_uploads_invoke_the_function(direct: dict[str, Json]) -> None:
    resources = direct["Resources"]
    assert {"UploadQueue", "UploadQueuePolicy", "UploadQueueEventSourceMapping"}.isdisjoint(resources)
    assert "UploadQueueUrl" not in direct["Outputs"]
    notifications = resources["UploadBucket"]["Properties"]["NotificationConfiguration"]
    assert notifications == {
        "LambdaConfigurations": [
            {"Event": "s3:ObjectCreated:*", "Function": {"Fn::GetAtt": ["ModerationFunction", "Arn"]}}
        ]
    }
    permission = resources["UploadBucketInvokePermission"]["Properties"]
    assert permission["Principal"] == "s3.amazonaws.com"
    assert permission["Action"] == "lambda:InvokeFunction"
    assert permission["SourceArn"] == {"Fn::Sub": UPLOAD_BUCKET_ARN}
    assert permission["SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert resources["UploadBucket"]["Metadata"] == {
        "NotificationDestinationGrant": {"Ref": "UploadBucketInvokePermission"}
    }
    invoke_config = resources["ModerationAsyncInvokeConfig"]["Properties"]
    assert invoke_config["DestinationConfig"] == {
        "OnFailure": {"Destination": {"Fn::GetAtt": ["UploadDLQ", "Arn"]}}
    }
    assert allowed_actions(resources, {"Fn::GetAtt": ["UploadDLQ", "Arn"]}) == {"sqs:SendMessage"}
    assert not any(
        a.startswith("sqs:Receive") for _, s in role_statements(resources) for a in as_list(s["Action"])
    ), "no queue to consume in direct mode"


# ---------------------------------------------------------------------------------------------- IAM
@pytest.mark.parametrize("shape", ["buffered", "direct"])
def test_iam_is_least_privilege(request: pytest.FixtureRequest, shape: str) -> None:
    rendered: dict[str, Json] = request.getfixturevalue(shape)
    resources = rendered["Resources"]
    statements = list(role_statements(resources))
    listing = "\n".join(
        f"  {where} {s.get('Sid', '')}: {as_list(s['Action'])} on {as_list(s['Resource'])}"
        for where, s in statements
    )
    assert statements, "no IAM statements found"
    for name, role in of_type(resources, "AWS::IAM::Role").items():
        assert not role["Properties"].get("ManagedPolicyArns"), f"{name} attaches managed policies"
    for where, statement in statements:
        actions = as_list(statement["Action"])
        assert not any("*" in action for action in actions), f"wildcard action in {where}:\n{listing}"
        assert "*" not in as_list(statement["Resource"]), f"Resource '*' in {where}:\n{listing}"
        assert statement["Effect"] == "Allow"
        assert "NotAction" not in statement
        assert "NotResource" not in statement

    upload_objects = {"Fn::Sub": UPLOAD_BUCKET_ARN + "/*"}
    assert allowed_actions(resources, upload_objects) == {
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:GetObjectTagging",
        "s3:GetObjectVersionTagging",
        "s3:PutObjectTagging",
        "s3:PutObjectVersionTagging",
        "s3:DeleteObject",
        "s3:DeleteObjectVersion",
    }, listing
    assert allowed_actions(resources, {"Fn::Sub": "${QuarantineBucket.Arn}/*"}) == {
        "s3:PutObject",
        "s3:PutObjectTagging",
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:GetObjectTagging",
    }, listing
    assert allowed_actions(resources, {"Fn::GetAtt": ["ModerationLogGroup", "Arn"]}) == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }
    assert allowed_actions(resources, {"Fn::GetAtt": ["DecisionTable", "Arn"]}) == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
    }
    if shape == "buffered":
        assert allowed_actions(resources, {"Fn::GetAtt": ["UploadQueue", "Arn"]}) == {
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ChangeMessageVisibility",
            "sqs:SendMessage",  # deferred videos go back as new messages
            "sqs:GetQueueUrl",
        }


# ------------------------------------------------------------------------------------- alarms, outputs
def test_alarms_watch_the_dead_letter_queue_and_function_errors(transformed: Json, buffered: Json) -> None:
    alarms = {
        a["Properties"]["MetricName"]: a["Properties"]
        for a in of_type(buffered["Resources"], "AWS::CloudWatch::Alarm").values()
    }
    dlq = alarms["ApproximateNumberOfMessagesVisible"]
    assert dlq["Namespace"] == "AWS/SQS"
    assert dlq["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["UploadDLQ", "QueueName"]}}]
    errors = alarms["Errors"]
    assert errors["Namespace"] == "AWS/Lambda"
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "ModerationFunction"}}]
    for alarm in (dlq, errors):
        assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]

    assert "AlarmEmailSubscription" not in buffered["Resources"]
    with_email = render(transformed["buffered"], {"AlarmEmail": "ops@example.com"})
    subscription = with_email["Resources"]["AlarmEmailSubscription"]["Properties"]
    assert subscription == {
        "TopicArn": {"Ref": "AlarmTopic"},
        "Protocol": "email",
        "Endpoint": "ops@example.com",
    }


def test_outputs(buffered: dict[str, Json]) -> None:
    outputs = buffered["Outputs"]
    assert {
        "ApiUrl",
        "ApiKeyId",
        "ApiKeyValueCommand",
        "UploadBucketName",
        "QuarantineBucketName",
        "UploadQueueUrl",
        "DeadLetterQueueUrl",
        "FunctionName",
    } <= set(outputs)
    assert outputs["ApiUrl"]["Value"] == {
        "Fn::Sub": "https://${ModerationApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${ApiStageName}/"
    }
    assert outputs["LegacyApiUrl"]["Value"] == {
        "Fn::Sub": "https://${ModerationApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/v1/"
    }
    # The key's logical id is SAM's (<api>ApiKey); the output must name a resource that exists.
    assert outputs["ApiKeyId"]["Value"] == {"Ref": "ModerationApiApiKey"}
    assert "ModerationApiApiKey" in buffered["Resources"]
    assert (
        "--api-key ${ModerationApiApiKey} --include-value"
        in outputs["ApiKeyValueCommand"]["Value"]["Fn::Sub"]
    )


# ---------------------------------------------------------------------------------------------- samconfig
def test_samconfig_overrides_are_the_template_defaults() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert config["version"] == 0.1
    deploy = config["default"]["deploy"]["parameters"]
    assert deploy["resolve_image_repos"] is True
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    overrides = dict(
        pair.split("=", 1)
        for pair in shlex.split(config["default"]["global"]["parameters"]["parameter_overrides"])
    )
    params = load_template()["Parameters"]
    assert set(overrides) <= set(params), set(overrides) - set(params)
    assert overrides == {k: str(params[k]["Default"]) for k in overrides}


# ---------------------------------------------------------------------------------------------- Dockerfile
def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        pending += " " + line.rstrip("\\").strip() if pending else line.rstrip("\\").strip()
        if not line.endswith("\\"):
            logical.append(pending)
            pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


def runtime_stage() -> list[tuple[str, str]]:
    """The instructions of the last stage (the image Lambda runs)."""
    instructions = dockerfile_instructions()
    last_from = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    return instructions[last_from:]


def arg_defaults() -> dict[str, list[str]]:
    defaults: dict[str, list[str]] = {}
    for op, args in dockerfile_instructions():
        if op == "ARG" and "=" in args:
            name, value = args.split("=", 1)
            defaults.setdefault(name.strip(), []).append(value.strip())
    return defaults


def test_dockerfile_cmd_is_the_lambda_entry_point() -> None:
    cmds = [args for op, args in runtime_stage() if op == "CMD"]
    assert [json.loads(c) for c in cmds] == [["handler.main.handler"]]
    main = ROOT / "handler" / "main.py"
    assert main.exists(), "handler/main.py (the Lambda entry point named by CMD) does not exist"
    tree = ast.parse(main.read_text())
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)} | {
        t.id
        for n in tree.body
        if isinstance(n, ast.Assign | ast.AnnAssign)
        for t in ast.walk(n)
        if isinstance(t, ast.Name)
    }
    assert "handler" in defined, "handler/main.py defines no module-level `handler`"


def test_dockerfile_copies_only_existing_paths_and_the_context_allows_them() -> None:
    sources = []
    for op, args in dockerfile_instructions():
        if op in {"COPY", "ADD"} and not args.startswith("--from="):
            *srcs, _dest = args.split()
            sources += srcs
    assert sources, "no COPY instructions"
    for source in sources:
        assert (ROOT / source).exists(), f"COPY source {source} does not exist"

    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", ".dockerignore is an allow-list"
    for source in sources:
        assert f"!{source}" in patterns, f".dockerignore excludes COPY source {source}"
    for private in (".venv", "tests", ".git", ".aws-sam", ".mypy_cache", ".pytest_cache"):
        assert not any(p.startswith(f"!{private}") for p in patterns), f"{private} is sent to the build"


def test_dockerfile_installs_cpu_torch_at_the_requirements_pin() -> None:
    pins = dict(
        line.split("==", 1)
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.lstrip().startswith("#")
    )
    torch_version = arg_defaults()["TORCH_VERSION"]
    assert torch_version == [pins["torch"].strip()]
    runs = [args for op, args in dockerfile_instructions() if op == "RUN"]
    assert any(
        '"torch==${TORCH_VERSION}"' in run and "--index-url https://download.pytorch.org/whl/cpu" in run
        for run in runs
    )
    torch_run = next(i for i, run in enumerate(runs) if "torch==${TORCH_VERSION}" in run)
    requirements_run = next(i for i, run in enumerate(runs) if "-r /tmp/requirements-build.txt" in run)
    assert torch_run < requirements_run, "torch (CPU) must be installed before the requirements"


def stage_chain(name: str) -> list[tuple[str, str]]:
    """The instructions a stage inherits and runs, following FROM back to the base image."""
    stages: dict[str, list[tuple[str, str]]] = {}
    parents: dict[str, str] = {}
    current = ""
    for op, args in dockerfile_instructions():
        if op == "FROM":
            base, _, current = args.partition(" AS ")
            parents[current.strip()] = base.strip()
            current = current.strip()
            stages[current] = []
        elif current:
            stages[current].append((op, args))
    chain: list[tuple[str, str]] = []
    while name in stages:
        chain = stages[name] + chain
        name = parents[name]
    return chain


def test_the_runtime_image_installs_the_torch_free_requirements_only() -> None:
    last = [args for op, args in dockerfile_instructions() if op == "FROM"][-1].split(" AS ")[1].strip()
    runs = [args for op, args in stage_chain(last) if op == "RUN"]
    installs = [run for run in runs if "pip install" in run]
    assert installs, "the runtime stage installs nothing"
    assert all("-r /tmp/requirements-runtime.txt" in run and "torch==" not in run for run in installs)
    pins = (ROOT / "requirements-runtime.txt").read_text().lower()
    assert "-r " not in pins, "the runtime requirements include no other file"
    for heavy in ("torch", "transformers", "onnxscript", "scikit-image", "scikit-learn", "matplotlib"):
        assert f"\n{heavy}==" not in "\n" + pins, f"{heavy} is not a serving dependency"
    assert "onnxruntime==" in pins


def test_dockerfile_bakes_the_model_and_runs_offline() -> None:
    runs = [args for op, args in dockerfile_instructions() if op == "RUN"]
    assert any("python -m handler bake --model-id" in run and "--out /opt/model" in run for run in runs)
    assert (ROOT / "handler" / "__main__.py").exists(), "`python -m handler` needs handler/__main__.py"
    env: dict[str, str] = {}
    for op, args in runtime_stage():
        if op == "ENV":
            env.update(pair.split("=", 1) for pair in args.split())
    assert env == {
        "MODEL_DIR": "/opt/model",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HOME": "/tmp/hf",
        "TOKENIZERS_PARALLELISM": "false",
    }
    globals_env = load_template()["Globals"]["Function"]["Environment"]["Variables"]
    assert globals_env["MODEL_DIR"] == env["MODEL_DIR"]
    assert any(args.startswith("--from=bake /opt/model") for op, args in runtime_stage() if op == "COPY")


def test_dockerfile_bake_command_is_one_the_cli_accepts() -> None:
    from handler.cli import build_parser

    (run,) = [args for op, args in dockerfile_instructions() if op == "RUN" and "-m handler bake" in args]
    command = run.split("python -m handler ", 1)[1].split("&&", 1)[0]
    argv = shlex.split(command.replace("${MODEL_ID}", "openai/clip-vit-base-patch32"))
    parsed = build_parser().parse_args(argv)
    assert parsed.command == "bake"
    assert parsed.out == "/opt/model"
    assert parsed.model_id == "openai/clip-vit-base-patch32"
    # The bake stage is offline: it bakes from the files the model-fetch stage downloaded.
    assert parsed.from_dir == "/opt/model-src"
    assert any(args.startswith("--from=model-fetch /opt/model-src") for op, args in dockerfile_instructions())


def test_dockerfile_base_image_has_a_glibc_the_wheels_need() -> None:
    """torch/numpy/pillow ship manylinux_2_28 wheels only; the python:3.11 Lambda image is Amazon Linux 2
    (glibc 2.26). Python 3.12+ images run on Amazon Linux 2023 (glibc 2.34)."""
    (base,) = arg_defaults()["BASE_IMAGE"]
    repository, tag = base.rsplit(":", 1)
    assert repository == "public.ecr.aws/lambda/python"
    assert tuple(int(p) for p in tag.split(".")[:2]) >= (3, 12)


def test_model_id_is_the_same_in_template_build_args_and_dockerfile() -> None:
    template = load_template()
    function = template["Resources"]["ModerationFunction"]
    build_arg = function["Metadata"]["DockerBuildArgs"]["MODEL_ID"]
    assert template["Parameters"]["ModelId"]["Default"] == build_arg
    assert set(arg_defaults()["MODEL_ID"]) == {build_arg}
    assert (ROOT / function["Metadata"]["Dockerfile"]).exists()
    assert function["Metadata"]["DockerContext"] == "."


# ---------------------------------------------------------------------------------------------- feedback
def test_feedback_bucket_is_optional_and_write_only_under_its_prefix(
    transformed: dict[str, dict[str, Json]], buffered: dict[str, Json]
) -> None:
    def feedback_statements(resources: dict[str, Json]) -> list[dict[str, Json]]:
        return [s for _, s in role_statements(resources) if s.get("Sid") == "WriteFeedback"]

    env = buffered["Resources"]["ModerationFunction"]["Properties"]["Environment"]["Variables"]
    assert (env["FEEDBACK_BUCKET"], env["FEEDBACK_PREFIX"]) == ("", "feedback/"), "empty = not configured"
    assert not feedback_statements(buffered["Resources"])

    rendered = render(transformed["buffered"], {"FeedbackBucket": "my-feedback", "FeedbackPrefix": "fb/"})
    env = rendered["Resources"]["ModerationFunction"]["Properties"]["Environment"]["Variables"]
    assert (env["FEEDBACK_BUCKET"], env["FEEDBACK_PREFIX"]) == ("my-feedback", "fb/")
    [statement] = feedback_statements(rendered["Resources"])
    assert statement["Effect"] == "Allow"
    assert as_list(statement["Action"]) == ["s3:PutObject"]
    assert statement["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:s3:::${FeedbackBucket}/${FeedbackPrefix}*"
    }


# ---------------------------------------------------------------------------------------------- backfill
def test_backfill_role_invokes_this_function_only_reads_manifests_and_writes_reports(
    buffered: dict[str, Json],
) -> None:
    resources = buffered["Resources"]
    role = resources["BackfillRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "batchoperations.s3.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    (policy,) = role["Policies"]
    granted = {
        (action, json.dumps(statement["Resource"], sort_keys=True))
        for statement in policy["PolicyDocument"]["Statement"]
        for action in as_list(statement["Action"])
    }
    assert granted == {
        ("lambda:InvokeFunction", json.dumps({"Fn::GetAtt": ["ModerationFunction", "Arn"]})),
        ("s3:GetObject", json.dumps({"Fn::Sub": "${BackfillBucket.Arn}/manifests/*"})),
        ("s3:GetObjectVersion", json.dumps({"Fn::Sub": "${BackfillBucket.Arn}/manifests/*"})),
        ("s3:PutObject", json.dumps({"Fn::Sub": "${BackfillBucket.Arn}/reports/*"})),
        ("s3:GetBucketLocation", json.dumps({"Fn::GetAtt": ["BackfillBucket", "Arn"]})),
    }
    bucket = resources["BackfillBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert "BucketName" not in bucket, "not a name the upload notifications could ever cover"
    outputs = buffered["Outputs"]
    assert outputs["BackfillRoleArn"]["Value"] == {"Fn::GetAtt": ["BackfillRole", "Arn"]}
    assert outputs["BackfillBucketName"]["Value"] == {"Ref": "BackfillBucket"}
    assert outputs["FunctionArn"]["Value"] == {"Fn::GetAtt": ["ModerationFunction", "Arn"]}


# ---------------------------------------------------------------------------------------------- operations
def _dashboard_body(rendered: dict[str, Json]) -> Json:
    """The dashboard's JSON with the Fn::Sub variables filled in as CloudFormation would."""
    body, variables = rendered["Resources"]["ModerationDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    names = {"AWS::Region": "us-east-1", "AWS::StackName": "stack", **{k: f"<{k}>" for k in variables}}
    for name, value in names.items():
        body = body.replace("${" + name + "}", value)
    assert "${" not in body, "an unresolved variable in the dashboard"
    return json.loads(body)


def test_dashboard_shows_verdicts_rate_latency_errors_dlq_throttles_concurrency(
    buffered: dict[str, Json],
) -> None:
    widgets = _dashboard_body(buffered)["widgets"]
    titles = " | ".join(w["properties"]["title"] for w in widgets)
    for needed in (
        "Verdicts",
        "Quarantine rate",
        "latency",
        "Errors",
        "Dead-letter",
        "Throttles",
        "Concurrency",
    ):
        assert needed in titles, titles
    latency = next(w for w in widgets if "latency" in w["properties"]["title"])
    stats = {m[-1]["stat"] for m in latency["properties"]["metrics"] if isinstance(m[-1], dict)}
    assert stats == {"p50", "p95", "p99"}
    env = buffered["Resources"]["ModerationFunction"]["Properties"]["Environment"]["Variables"]
    namespace = buffered["Resources"]["ModerationDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][1][
        "Ns"
    ]
    assert env["METRICS_NAMESPACE"] == namespace  # the dashboard reads what the function writes


def test_logs_are_json_and_tracing_is_a_parameter(transformed: Json) -> None:
    for tracing in ("PassThrough", "Active"):
        rendered = render(transformed["buffered"], {"Tracing": tracing})
        function = rendered["Resources"]["ModerationFunction"]["Properties"]
        assert function["LoggingConfig"]["LogFormat"] == "JSON"
        assert function["TracingConfig"] == {"Mode": tracing}
        xray = [s for _, s in role_statements(rendered["Resources"]) if s.get("Sid") == "SendTraces"]
        assert len(xray) == (tracing == "Active")
        if xray:  # the one "*" the role has: X-Ray's APIs take no resource-level permissions
            assert set(xray[0]["Action"]) == {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def test_verdict_events_and_their_email_rule(transformed: Json, buffered: dict[str, Json]) -> None:
    env = buffered["Resources"]["ModerationFunction"]["Properties"]["Environment"]["Variables"]
    assert env["EVENT_BUS_NAME"] == "default"
    assert allowed_actions(
        buffered["Resources"],
        {"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default"},
    ) == {"events:PutEvents"}
    assert "VerdictRule" not in buffered["Resources"]  # off by default
    rendered = render(transformed["buffered"], {"VerdictEmail": "ops@example.com"})
    rule = rendered["Resources"]["VerdictRule"]["Properties"]
    assert rule["EventPattern"]["source"] == ["clip-moderation"]
    assert rule["EventPattern"]["detail"]["verdict"] == ["review", "quarantine"]
    assert rendered["Resources"]["VerdictEmailSubscription"]["Properties"]["Endpoint"] == "ops@example.com"


def test_quarantine_rate_alarm_is_off_by_default(transformed: Json, buffered: dict[str, Json]) -> None:
    assert "QuarantineRateAlarm" not in buffered["Resources"]
    rendered = render(transformed["buffered"], {"QuarantineRateAlarmPercent": "5"})
    alarm = rendered["Resources"]["QuarantineRateAlarm"]["Properties"]
    assert int(alarm["Threshold"]) == 5
    assert {m["Id"] for m in alarm["Metrics"]} == {"rate", "total", "q", "a", "r", "e"}


def test_video_sampling_is_keyed_per_stack(transformed: Json) -> None:
    def key(**overrides: str) -> Json:
        rendered = render(transformed["buffered"], overrides)
        return rendered["Resources"]["ModerationFunction"]["Properties"]["Environment"]["Variables"][
            "VIDEO_SAMPLING_KEY"
        ]

    assert key() == {"Ref": "AWS::StackId"}  # stable across containers and retries, unknown to uploaders
    assert key(VideoSamplingKey="s3cr3t") == "s3cr3t"
    assert load_template()["Parameters"]["VideoSamplingKey"]["NoEcho"] is True
