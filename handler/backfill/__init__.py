"""Backfill: moderate a bucket's existing objects with an S3 Batch Operations job invoking the function."""
