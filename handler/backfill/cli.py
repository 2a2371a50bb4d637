"""The `backfill` command (registered by handler.cli): moderate what is already in a bucket.

    python -m handler backfill s3://bucket/prefix [--since DATE] [--inventory s3://.../manifest.json]
        [--dry-run] --function-arn ARN --role-arn ARN --work-bucket NAME
    python -m handler backfill status JOB_ID [--account ID] [--region REGION]

Both print one JSON document. boto3 finds credentials and AWS_ENDPOINT_URL the usual way.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from handler.backfill import cost, job, manifest
from handler.backfill.listing import from_bucket, from_inventory, parse_s3_url, parse_since
from handler.backfill.report import summarise
from handler.exceptions import InputError


def make_client(service: str, region: str | None = None) -> Any:
    """A boto3 client (tests replace this to stub the services moto does not implement)."""
    import boto3

    factory: Any = boto3.client  # typed per service name; these names are plain strings here
    return factory(service, region_name=region) if region else factory(service)


def _start(args: argparse.Namespace) -> dict[str, Any]:
    bucket, prefix = parse_s3_url(args.source)
    since = parse_since(args.since)
    if not args.dry_run and not (args.function_arn and args.role_arn and args.work_bucket):
        raise InputError("a job needs --function-arn, --role-arn and --work-bucket (the stack's outputs)")
    s3 = make_client("s3")
    started = time.perf_counter()
    if args.inventory:
        source, listing = from_inventory(s3, args.inventory, prefix, since)
        if source != bucket:
            raise InputError(f"the inventory is of bucket {source!r}, not {bucket!r}")
    else:
        listing = from_bucket(s3, bucket, prefix, since)
    listed_s = time.perf_counter() - started
    per_image, per_image_from = cost.lambda_cost_per_image(args.bench, args.precision)
    summary: dict[str, Any] = {
        "source": args.source,
        "since": since.isoformat() if since else None,
        "objects": len(listing.objects),
        "listing_requests": listing.requests,
        "listing_s": round(listed_s, 3),
        "manifest_fields": manifest.fields(listing.objects),
        "estimated_cost": cost.estimate(
            len(listing.objects), listing.requests, per_image, per_image_from
        ).as_dict(),
    }
    if args.dry_run or not listing.objects:
        written = time.perf_counter()
        body = manifest.render(listing.objects)
        args.manifest_out.write_bytes(body)
        summary.update(
            job_id=None,
            manifest=str(args.manifest_out),
            manifest_bytes=len(body),
            manifest_write_s=round(time.perf_counter() - written, 3),
            note="dry run: no job created" if args.dry_run else "nothing to moderate: no job created",
        )
        return summary
    target = job.Target(args.function_arn, args.role_arn, args.work_bucket)
    created = job.create(s3, make_client("s3control", target.region), target, listing.objects, bucket)
    summary.update(
        job_id=created.job_id, manifest=created.manifest_url, manifest_bytes=created.manifest_bytes
    )
    summary["report"] = f"s3://{args.work_bucket}/{job.REPORT_PREFIX}/job-{created.job_id}/"
    return summary


def _status(args: argparse.Namespace) -> dict[str, Any]:
    account = args.account or make_client("sts", args.region).get_caller_identity()["Account"]
    described = job.describe(make_client("s3control", args.region), account, args.job_id)
    progress = described.get("ProgressSummary", {})
    status: dict[str, Any] = {
        "job_id": args.job_id,
        "status": described["Status"],
        "progress": {
            "total": progress.get("TotalNumberOfTasks"),
            "succeeded": progress.get("NumberOfTasksSucceeded"),
            "failed": progress.get("NumberOfTasksFailed"),
        },
    }
    if described.get("FailureReasons"):
        status["failure_reasons"] = described["FailureReasons"]
    report = described.get("Report", {})
    if described["Status"] in ("Complete", "Failed", "Cancelled") and report.get("Enabled"):
        summary = summarise(make_client("s3"), report["Bucket"], report.get("Prefix", ""), args.job_id)
        status["report"] = summary.as_dict()
    else:
        status["report"] = None  # written when the job ends
    return status


# AWS answers an operator can act on (a bucket name, a grant, a job id): one line, not a traceback.
_OPERATOR_ERRORS = {"NoSuchBucket", "NoSuchKey", "AccessDenied", "InvalidRequest", "NoSuchJob", "BadRequest"}


def _backfill(args: argparse.Namespace) -> int:
    from botocore.exceptions import ClientError

    try:
        return _run(args)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") in _OPERATOR_ERRORS:
            raise InputError(
                f"{exc.operation_name}: {error.get('Code')}: {error.get('Message', '')}"
            ) from exc
        raise


def _run(args: argparse.Namespace) -> int:
    words: list[str] = args.what
    if words[0] == "status":
        if len(words) != 2:
            raise InputError("usage: backfill status JOB_ID")
        args.job_id = words[1]
        result = _status(args)
    else:
        if len(words) != 1:
            raise InputError("usage: backfill s3://bucket/prefix [options], or backfill status JOB_ID")
        args.source = words[0]
        result = _start(args)
    print(json.dumps(result, indent=2))
    return 0


def add_commands(sub: Any) -> None:
    backfill = sub.add_parser(
        "backfill",
        help="moderate existing objects with an S3 Batch Operations job; `backfill status JOB` reports",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    backfill.add_argument("what", nargs="+", metavar="s3://bucket/prefix | status JOB_ID")
    backfill.add_argument("--since", default=None, help="only objects last modified at or after this date")
    backfill.add_argument("--inventory", default=None, help="an S3 Inventory report's manifest.json (CSV)")
    backfill.add_argument("--dry-run", action="store_true", help="write the manifest locally; start nothing")
    backfill.add_argument(
        "--manifest-out",
        type=Path,
        default=Path("backfill-manifest.csv"),
        help="where a dry run writes the manifest (default backfill-manifest.csv)",
    )
    backfill.add_argument("--function-arn", default=None, help="the stack's FunctionArn output")
    backfill.add_argument("--role-arn", default=None, help="the stack's BackfillRoleArn output")
    backfill.add_argument("--work-bucket", default=None, help="the stack's BackfillBucketName output")
    backfill.add_argument("--bench", type=Path, default=None, help="a bench.json for the cost per image")
    backfill.add_argument(
        "--precision", choices=("auto", "fp32"), default="auto", help="INFERENCE_PRECISION, for --bench"
    )
    backfill.add_argument("--account", default=None, help="status: the account id (default: the caller's)")
    backfill.add_argument("--region", default=None, help="status: the job's region (default: boto3's)")
    backfill.set_defaults(func=_backfill)
