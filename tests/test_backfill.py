"""`python -m handler backfill`: the manifest from a listing or an Inventory report, the Batch Operations
job request, and `backfill status` over a completion report.

moto 5.2.5 serves S3 and STS but not S3 Control's CreateJob/DescribeJob (its s3control backend has access
points, public access blocks and Storage Lens only), so those two calls go through botocore's Stubber:
botocore still validates each request against the S3 Control model, and the tests pin its shape.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from handler.backfill import cli as backfill_cli
from handler.backfill import cost
from handler.cli import main

UPLOADS, WORK, INVENTORY = "uploads", "backfill-work", "inventory"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:clip-moderation"
ROLE_ARN = "arn:aws:iam::123456789012:role/clip-moderation-BackfillRole"
ODD_KEY = "photos/holiday photos/a+b é.jpg"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any] | str]:
    status = main(["backfill", *argv])
    out, err = capsys.readouterr()
    return status, json.loads(out) if status == 0 else err


@pytest.fixture
def uploads(s3: Any) -> dict[str, str]:
    """A versioned bucket: current objects under photos/ (one overwritten), a folder placeholder, a
    deleted object, and one outside the prefix. key -> current version id."""
    s3.create_bucket(Bucket=UPLOADS)
    s3.put_bucket_versioning(Bucket=UPLOADS, VersioningConfiguration={"Status": "Enabled"})
    s3.create_bucket(Bucket=WORK)
    versions = {}
    for key in ("photos/a.jpg", "photos/b.png", ODD_KEY, "photos/a.jpg", "other/c.jpg"):
        versions[key] = s3.put_object(Bucket=UPLOADS, Key=key, Body=b"image bytes")["VersionId"]
    s3.put_object(Bucket=UPLOADS, Key="photos/", Body=b"")
    s3.put_object(Bucket=UPLOADS, Key="photos/gone.jpg", Body=b"x")
    s3.delete_object(Bucket=UPLOADS, Key="photos/gone.jpg")
    del versions["other/c.jpg"]
    return versions


def manifest_rows(path: Path) -> list[list[str]]:
    return list(csv.reader(path.read_text().splitlines()))


def test_dry_run_lists_current_versions_writes_the_manifest_and_prices_it(
    s3: Any, uploads: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "manifest.csv"
    status, report = run(capsys, f"s3://{UPLOADS}/photos/", "--dry-run", "--manifest-out", str(out))

    assert status == 0, report
    assert isinstance(report, dict)
    assert report["job_id"] is None
    assert report["objects"] == 3
    assert report["manifest_fields"] == ["Bucket", "Key", "VersionId"]
    rows = manifest_rows(out)
    assert sorted(rows) == sorted(
        [
            [UPLOADS, "photos/a.jpg", uploads["photos/a.jpg"]],  # the overwrite: the current version only
            [UPLOADS, "photos/b.png", uploads["photos/b.png"]],
            [UPLOADS, "photos/holiday%20photos/a%2Bb%20%C3%A9.jpg", uploads[ODD_KEY]],  # URL-encoded
        ]
    )
    assert report["manifest_bytes"] == out.stat().st_size
    estimate = report["estimated_cost"]
    per_object = (
        cost.BATCH_OPERATIONS_PER_OBJECT + cost.LAMBDA_PER_IMAGE + 4 * cost.S3_GET_CLASS + cost.S3_PUT_CLASS
    )
    expected = cost.BATCH_OPERATIONS_PER_JOB + 3 * per_object + report["listing_requests"] * cost.S3_PUT_CLASS
    assert estimate["total_usd"] == pytest.approx(expected, abs=1e-6)
    assert estimate["batch_operations_job_usd"] == 0.25
    assert estimate["prices_as_of"] == cost.PRICE_DATE
    assert not s3.list_objects_v2(Bucket=WORK).get("Contents"), "a dry run uploads nothing"


def test_since_leaves_out_older_objects(
    s3: Any, uploads: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.csv"
    _, later = run(
        capsys, f"s3://{UPLOADS}/", "--dry-run", "--since", "2999-01-01", "--manifest-out", str(out)
    )
    _, earlier = run(
        capsys, f"s3://{UPLOADS}", "--dry-run", "--since", "2000-01-01", "--manifest-out", str(out)
    )

    assert isinstance(later, dict)
    assert isinstance(earlier, dict)
    assert later["objects"] == 0
    assert later["estimated_cost"]["batch_operations_job_usd"] == 0, "no objects, no job, no job fee"
    assert earlier["objects"] == 4  # photos/ (3) and other/c.jpg


def test_an_unversioned_bucket_gets_a_manifest_without_version_ids(
    s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s3.create_bucket(Bucket="plain")
    s3.put_object(Bucket="plain", Key="x.jpg", Body=b"x")
    out = tmp_path / "m.csv"
    _, report = run(capsys, "s3://plain", "--dry-run", "--manifest-out", str(out))

    assert isinstance(report, dict)
    assert report["manifest_fields"] == ["Bucket", "Key"]
    assert manifest_rows(out) == [["plain", "x.jpg"]]


def put_inventory(s3: Any, rows: list[list[str]], schema: str) -> str:
    s3.create_bucket(Bucket=INVENTORY)
    data_key = f"{UPLOADS}/all/data/part-0.csv.gz"
    text = io.StringIO()
    csv.writer(text, quoting=csv.QUOTE_ALL).writerows(rows)
    s3.put_object(Bucket=INVENTORY, Key=data_key, Body=gzip.compress(text.getvalue().encode()))
    manifest = {
        "sourceBucket": UPLOADS,
        "destinationBucket": f"arn:aws:s3:::{INVENTORY}",
        "version": "2016-11-30",
        "fileFormat": "CSV",
        "fileSchema": schema,
        "files": [{"key": data_key, "size": 1, "MD5checksum": "x"}],
    }
    key = f"{UPLOADS}/all/2026-12-01T01-00Z/manifest.json"
    s3.put_object(Bucket=INVENTORY, Key=key, Body=json.dumps(manifest).encode())
    return f"s3://{INVENTORY}/{key}"


def test_an_inventory_report_is_read_instead_of_listing(
    s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schema = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate"
    url = put_inventory(
        s3,
        [
            [UPLOADS, "photos/new.jpg", "v1", "true", "false", "10", "2026-11-30T10:00:00.000Z"],
            [UPLOADS, "photos/old.jpg", "v2", "true", "false", "10", "2025-01-01T10:00:00.000Z"],
            [UPLOADS, "photos/new.jpg", "v0", "false", "false", "10", "2026-11-29T10:00:00.000Z"],
            [UPLOADS, "photos/deleted.jpg", "v3", "true", "true", "", "2026-11-30T10:00:00.000Z"],
            [UPLOADS, "photos/a+b%C3%A9.jpg", "v4", "true", "false", "10", "2026-11-30T11:00:00.000Z"],
            [UPLOADS, "other/x.jpg", "v5", "true", "false", "10", "2026-11-30T10:00:00.000Z"],
        ],
        schema,
    )
    out = tmp_path / "m.csv"
    status, report = run(
        capsys,
        f"s3://{UPLOADS}/photos/",
        "--inventory",
        url,
        "--since",
        "2026-06-01",
        "--dry-run",
        "--manifest-out",
        str(out),
    )

    assert status == 0, report
    assert isinstance(report, dict)
    assert report["objects"] == 2
    assert manifest_rows(out) == [
        [UPLOADS, "photos/new.jpg", "v1"],
        [UPLOADS, "photos/a%20b%C3%A9.jpg", "v4"],  # the inventory's "+" is a space; re-encoded as %20
    ]
    assert report["listing_requests"] == 2, "the manifest.json and one data file, no LIST"

    status, err = run(
        capsys, "s3://someone-else/", "--inventory", url, "--dry-run", "--manifest-out", str(out)
    )
    assert status == 2
    assert "the inventory is of bucket 'uploads'" in str(err)


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Stubber, list[dict[str, Any]]]]:
    """S3 Control through Stubber (requests validated against the model and captured); S3 and STS moto."""
    client = boto3.client("s3control", region_name="us-east-1")
    captured: list[dict[str, Any]] = []

    def capture(params: dict[str, Any], **_: Any) -> None:
        captured.append(dict(params))

    client.meta.events.register("provide-client-params.s3-control.*", capture)
    real: Callable[..., Any] = backfill_cli.make_client
    monkeypatch.setattr(
        backfill_cli,
        "make_client",
        lambda service, region=None: client if service == "s3control" else real(service, region),
    )
    with Stubber(client) as stubber:
        yield stubber, captured
        stubber.assert_no_pending_responses()


def test_a_job_invokes_the_function_with_schema_2_over_the_uploaded_manifest(
    s3: Any,
    uploads: dict[str, str],
    stubbed: tuple[Stubber, list[dict[str, Any]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    stubber, captured = stubbed
    stubber.add_response(
        "create_job",
        {"JobId": "job-1234"},
        {
            **{
                k: ANY
                for k in (
                    "AccountId",
                    "ConfirmationRequired",
                    "Operation",
                    "Report",
                    "ClientRequestToken",
                    "Manifest",
                    "Description",
                    "Priority",
                    "RoleArn",
                )
            }
        },
    )

    status, report = run(
        capsys,
        f"s3://{UPLOADS}/photos/",
        "--function-arn",
        FUNCTION_ARN,
        "--role-arn",
        ROLE_ARN,
        "--work-bucket",
        WORK,
    )

    assert status == 0, report
    assert isinstance(report, dict)
    assert report["job_id"] == "job-1234"
    assert report["objects"] == 3
    (request,) = captured
    manifest_key = report["manifest"].removeprefix(f"s3://{WORK}/")
    uploaded = s3.head_object(Bucket=WORK, Key=manifest_key)
    assert request == {
        "AccountId": "123456789012",
        "ConfirmationRequired": False,
        "Operation": {
            "LambdaInvoke": {
                "FunctionArn": FUNCTION_ARN,
                "InvocationSchemaVersion": "2.0",
                "UserArguments": {"requestedBy": "moderation-backfill"},
            }
        },
        "Report": {
            "Bucket": f"arn:aws:s3:::{WORK}",
            "Prefix": "reports",
            "Format": "Report_CSV_20180820",
            "Enabled": True,
            "ReportScope": "AllTasks",
        },
        "ClientRequestToken": request["ClientRequestToken"],
        "Manifest": {
            "Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key", "VersionId"]},
            "Location": {
                "ObjectArn": f"arn:aws:s3:::{WORK}/{manifest_key}",
                "ETag": uploaded["ETag"].strip('"'),
            },
        },
        "Description": f"moderation backfill of s3://{UPLOADS} (3 objects)",
        "Priority": 10,
        "RoleArn": ROLE_ARN,
    }
    assert manifest_key.startswith("manifests/")
    body = s3.get_object(Bucket=WORK, Key=manifest_key)["Body"].read().decode()
    assert len(body.splitlines()) == 3
    assert report["report"] == f"s3://{WORK}/reports/job-job-1234/"


def test_a_job_needs_the_stack_outputs(
    s3: Any, uploads: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    status, err = run(capsys, f"s3://{UPLOADS}/photos/", "--function-arn", FUNCTION_ARN)
    assert status == 2
    assert "--role-arn" in str(err)
    status, err = run(capsys, "uploads/photos", "--dry-run")
    assert status == 2
    assert "expected s3://bucket" in str(err)


def put_completion_report(s3: Any, job_id: str) -> None:
    base = f"reports/job-{job_id}"
    succeeded = [
        [UPLOADS, "photos/a.jpg", "v1", "succeeded", "200", "", "judged; verdict=allow"],
        [UPLOADS, "photos/b.jpg", "v2", "succeeded", "200", "", "judged; verdict=allow"],
        [UPLOADS, "photos/c.jpg", "v3", "succeeded", "200", "", "quarantined; verdict=quarantine"],
        [UPLOADS, "photos/d.txt", "v4", "succeeded", "200", "", "error; verdict=error; not an image"],
        [UPLOADS, "photos/e.jpg", "v5", "succeeded", "200", "", "already_judged; verdict=review"],
    ]
    failed = [
        [
            UPLOADS,
            "photos/f.jpg",
            "v6",
            "failed",
            "PermanentFailure",
            "200",
            "ClientError AccessDenied: An error occurred (AccessDenied) on HeadObject: Access Denied",
        ],
        [
            UPLOADS,
            "photos/g.jpg",
            "v7",
            "failed",
            "PermanentFailure",
            "200",
            "ClientError AccessDenied: An error occurred (AccessDenied) on GetObject: Access Denied",
        ],
        [
            UPLOADS,
            "photos/h.jpg",
            "v8",
            "failed",
            "TemporaryFailure",
            "200",
            "ClientError SlowDown: slow down",
        ],
    ]
    results = []
    for name, rows in (("succeeded", succeeded), ("failed", failed)):
        text = io.StringIO()
        csv.writer(text).writerows(rows)
        key = f"{base}/results/{name}-0123abcd.csv"
        s3.put_object(Bucket=WORK, Key=key, Body=text.getvalue().encode())
        results.append({"TaskExecutionStatus": name, "Bucket": WORK, "MD5Checksum": "x", "Key": key})
    manifest = {
        "Format": "Report_CSV_20180820",
        "ReportCreationDate": "2026-12-01T12:00:00Z",
        "Results": results,
        "ReportSchema": "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage",
    }
    s3.put_object(Bucket=WORK, Key=f"{base}/manifest.json", Body=json.dumps(manifest).encode())


def described(status: str, succeeded: int, failed: int) -> dict[str, Any]:
    return {
        "Job": {
            "JobId": "job-1234",
            "Status": status,
            "ProgressSummary": {
                "TotalNumberOfTasks": 8,
                "NumberOfTasksSucceeded": succeeded,
                "NumberOfTasksFailed": failed,
            },
            "Report": {
                "Bucket": f"arn:aws:s3:::{WORK}",
                "Prefix": "reports",
                "Format": "Report_CSV_20180820",
                "Enabled": True,
                "ReportScope": "AllTasks",
            },
        }
    }


def test_status_counts_verdicts_and_failures_from_the_completion_report(
    s3: Any, stubbed: tuple[Stubber, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    stubber, captured = stubbed
    s3.create_bucket(Bucket=WORK)
    put_completion_report(s3, "job-1234")
    stubber.add_response("describe_job", described("Complete", 5, 3), {"AccountId": ANY, "JobId": "job-1234"})

    status, report = run(capsys, "status", "job-1234")

    assert status == 0, report
    assert isinstance(report, dict)
    assert captured == [{"AccountId": "123456789012", "JobId": "job-1234"}], "the caller's account (STS)"
    assert report["status"] == "Complete"
    assert report["progress"] == {"total": 8, "succeeded": 5, "failed": 3}
    assert report["report"] == {
        "tasks": 8,
        "succeeded": 5,
        "failed": 3,
        "verdicts": {"allow": 2, "quarantine": 1, "error": 1, "review": 1},
        "failures": {
            "PermanentFailure: ClientError AccessDenied": 2,
            "TemporaryFailure: ClientError SlowDown": 1,
        },
    }


def test_status_of_a_running_job_has_no_report_yet(
    stubbed: tuple[Stubber, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    stubber, _ = stubbed
    stubber.add_response(
        "describe_job", described("Active", 2, 0), {"AccountId": "111122223333", "JobId": "job-1234"}
    )

    status, report = run(capsys, "status", "job-1234", "--account", "111122223333")

    assert status == 0
    assert isinstance(report, dict)
    assert (report["status"], report["report"]) == ("Active", None)
    assert report["progress"]["succeeded"] == 2


def test_the_bench_runs_the_dry_run_over_what_it_uploaded(tmp_path: Path) -> None:
    from handler.backfill.bench import run as bench

    result = bench(25, tmp_path)

    assert result["objects"] == 25
    assert result["manifest_bytes"] == (tmp_path / "manifest.csv").stat().st_size > 25 * len("bench-uploads,")


def test_an_inventory_it_cannot_read_is_a_clear_error(
    s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = put_inventory(s3, [[UPLOADS, "photos/a.jpg", "v1"]], "Bucket, Key, VersionId")
    out = str(tmp_path / "m.csv")

    status, err = run(
        capsys,
        f"s3://{UPLOADS}/",
        "--inventory",
        url,
        "--since",
        "2026-01-01",
        "--dry-run",
        "--manifest-out",
        out,
    )
    assert status == 2
    assert "--since needs the inventory's LastModifiedDate field" in err

    status, report = run(capsys, f"s3://{UPLOADS}/", "--inventory", url, "--dry-run", "--manifest-out", out)
    assert status == 0
    assert report["objects"] == 1, "without --since, the date is not needed"

    status, err = run(capsys, f"s3://{UPLOADS}/", "--inventory", f"s3://{INVENTORY}/x/data.csv", "--dry-run")
    assert status == 2
    assert "manifest.json" in err


def test_a_missing_bucket_is_one_line_naming_it(s3: Any, capsys: pytest.CaptureFixture[str]) -> None:
    status, err = run(capsys, "s3://no-such-bucket/photos/", "--dry-run")
    assert status == 2
    assert "ListObjectVersions: NoSuchBucket" in err


def test_the_cost_per_image_comes_from_the_bench_json_that_make_bench_writes(
    s3: Any, uploads: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--bench` reads what `make bench` writes (handler.tools.bench_table.costs into bench.json); a file
    without that figure is one clear line, not a traceback."""
    from handler.tools.bench_table import cost_per_million, costs

    results = {
        "batch": 32,
        "native": {
            "single_ms": {"thesis": 100.0, "onnx-auto": 20.0, "onnx-fp32": 60.0},
            "batch_images_per_s": {"onnx-auto": 80.0, "onnx-fp32": 35.0},
        },
        "s3_path_images_per_s": {"0ms": 30.0, "50ms": 20.0},
    }
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({**results, "cost_per_million_usd": costs(results)}))
    out = str(tmp_path / "manifest.csv")

    status, report = run(
        capsys, f"s3://{UPLOADS}/photos/", "--dry-run", "--manifest-out", out, "--bench", str(bench)
    )
    _, fp32 = run(
        capsys,
        f"s3://{UPLOADS}/photos/",
        "--dry-run",
        "--manifest-out",
        out,
        "--bench",
        str(bench),
        "--precision",
        "fp32",
    )

    assert status == 0, report
    assert isinstance(report, dict)
    assert isinstance(fp32, dict)
    assert report["estimated_cost"]["function_usd"] == pytest.approx(
        3 * cost_per_million(20.0, 1) / 1e6, abs=1e-9
    )
    assert fp32["estimated_cost"]["function_usd"] == pytest.approx(
        3 * cost_per_million(60.0, 1) / 1e6, abs=1e-9
    )
    bench.write_text(json.dumps(results))  # an older bench.json, without the costs
    status, err = run(
        capsys, f"s3://{UPLOADS}/photos/", "--dry-run", "--manifest-out", out, "--bench", str(bench)
    )
    assert status != 0
    assert "cost_per_million_usd.single_onnx-auto" in str(err)
