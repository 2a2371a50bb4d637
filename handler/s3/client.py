"""boto3 clients, created lazily (never at import) so tests can point them at moto first."""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache
def get_s3_client() -> Any:
    """The process-wide S3 client. boto3 honours AWS_ENDPOINT_URL itself (moto in tests). It keeps two
    connections for each of the S3_IO_WORKERS threads that share it (an object's tags and first bytes are
    read at once; boto3's default pool holds 10)."""
    import boto3
    from botocore.config import Config

    from handler.settings import get_settings

    config = Config(
        retries={"max_attempts": 4, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
        max_pool_connections=max(10, 2 * get_settings().s3_io_workers),
    )
    return boto3.client("s3", config=config)
