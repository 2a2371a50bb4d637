"""Create the S3 Batch Operations job (LambdaInvoke, invocation schema 2.0) and read its state back."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from handler.backfill import manifest
from handler.backfill.listing import Listed
from handler.exceptions import InputError

MANIFEST_PREFIX = "manifests/"
REPORT_PREFIX = "reports"
REPORT_FORMAT = "Report_CSV_20180820"


@dataclass(frozen=True)
class Target:
    """Where the job runs: the function it invokes, the role it assumes, the bucket for its files."""

    function_arn: str
    role_arn: str
    work_bucket: str  # the manifest goes under manifests/, the completion report under reports/

    @property
    def account(self) -> str:
        return self._arn_part(4, "account id")

    @property
    def region(self) -> str:
        return self._arn_part(3, "region")

    def _arn_part(self, index: int, what: str) -> str:
        parts = self.function_arn.split(":")
        if len(parts) < 7 or parts[2] != "lambda" or not parts[index]:
            raise InputError(f"--function-arn must be a Lambda function ARN with its {what}")
        return parts[index]


@dataclass(frozen=True)
class Created:
    job_id: str
    manifest_url: str
    manifest_bytes: int


def upload_manifest(s3: Any, target: Target, body: bytes) -> tuple[str, str]:
    """Put the manifest in the work bucket; (key, ETag) for the job's manifest location."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    key = f"{MANIFEST_PREFIX}backfill-{stamp}-{uuid.uuid4().hex[:8]}.csv"
    put = s3.put_object(Bucket=target.work_bucket, Key=key, Body=body, ContentType="text/csv")
    return key, str(put["ETag"]).strip('"')


def job_request(target: Target, objects: list[Listed], key: str, etag: str, source: str) -> dict[str, Any]:
    """The CreateJob request (tests pin its shape with botocore's Stubber)."""
    partition = target.function_arn.split(":")[1]
    return {
        "AccountId": target.account,
        "ConfirmationRequired": False,
        "Operation": {
            "LambdaInvoke": {
                "FunctionArn": target.function_arn,
                "InvocationSchemaVersion": "2.0",
                "UserArguments": {"requestedBy": "moderation-backfill"},
            }
        },
        "Report": {
            "Bucket": f"arn:{partition}:s3:::{target.work_bucket}",
            "Prefix": REPORT_PREFIX,
            "Format": REPORT_FORMAT,
            "Enabled": True,
            "ReportScope": "AllTasks",
        },
        "ClientRequestToken": str(uuid.uuid4()),
        "Manifest": {
            "Spec": {"Format": manifest.FORMAT, "Fields": manifest.fields(objects)},
            "Location": {"ObjectArn": f"arn:{partition}:s3:::{target.work_bucket}/{key}", "ETag": etag},
        },
        "Description": f"moderation backfill of s3://{source} ({len(objects)} objects)"[:256],
        "Priority": 10,
        "RoleArn": target.role_arn,
    }


def create(s3: Any, s3control: Any, target: Target, objects: list[Listed], source: str) -> Created:
    body = manifest.render(objects)
    key, etag = upload_manifest(s3, target, body)
    response = s3control.create_job(**job_request(target, objects, key, etag, source))
    return Created(str(response["JobId"]), f"s3://{target.work_bucket}/{key}", len(body))


def describe(s3control: Any, account: str, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = s3control.describe_job(AccountId=account, JobId=job_id)["Job"]
    return job
