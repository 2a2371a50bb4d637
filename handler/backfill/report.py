"""Summarise a job's completion report: objects per verdict, failures per reason.

The report is `<prefix>/job-<id>/manifest.json`, naming CSV result files whose columns its ReportSchema
lists (Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage). For a LambdaInvoke
job, ResultMessage is the function's resultString: `judged; verdict=allow; ...` (handler/s3/entry.py).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

_VERDICT = re.compile(r"\bverdict=(\w+)")
DEFAULT_SCHEMA = "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage"


@dataclass
class Summary:
    tasks: int = 0
    succeeded: int = 0
    failed: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tasks": self.tasks,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "verdicts": dict(self.verdicts.most_common()),
            "failures": dict(self.failures.most_common()),
        }


def _reason(error_code: str, message: str) -> str:
    """`PermanentFailure: ClientError AccessDenied`: the code and the message's head, not its details."""
    head = message.split(":", 1)[0].strip() if message else ""
    return f"{error_code or 'failed'}: {head}" if head else error_code or "failed"


def add_rows(summary: Summary, text: str, columns: list[str]) -> None:
    for row in csv.reader(io.StringIO(text)):
        if not row:
            continue
        values = dict(zip(columns, row, strict=False))
        summary.tasks += 1
        message = values.get("ResultMessage", "")
        if values.get("TaskStatus", "").lower() == "succeeded":
            summary.succeeded += 1
            match = _VERDICT.search(message)
            summary.verdicts[match.group(1) if match else "unknown"] += 1
        else:
            summary.failed += 1
            summary.failures[_reason(values.get("ErrorCode", ""), message)] += 1


def summarise(s3: Any, report_bucket_arn: str, prefix: str, job_id: str) -> Summary:
    bucket = report_bucket_arn.split(":::", 1)[-1]
    base = f"{prefix.rstrip('/')}/job-{job_id}" if prefix else f"job-{job_id}"
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=f"{base}/manifest.json")["Body"].read())
    columns = [c.strip() for c in manifest.get("ReportSchema", DEFAULT_SCHEMA).split(",")]
    summary = Summary()
    for result in manifest.get("Results", []):
        result_bucket = str(result.get("Bucket", bucket)).split(":::", 1)[-1]  # a name, or an ARN
        body = s3.get_object(Bucket=result_bucket, Key=result["Key"])["Body"].read().decode("utf-8")
        add_rows(summary, body, columns)
    return summary
