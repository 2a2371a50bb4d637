"""Image input: decoding with limits, and where request images come from (uploads, URLs, base64, S3)."""
