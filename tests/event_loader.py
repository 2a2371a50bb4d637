"""Real AWS event shapes from tests/events/*.json, with `${name}` placeholders filled in.

A string that is exactly `${name}` becomes the value itself (so `size` stays a number and `version_id=None`
becomes JSON null); a placeholder inside a longer string (such as an SQS body, which is JSON in a string)
is replaced by its text (None as empty text, which the event views read as "no version").
"""

from __future__ import annotations

import base64
import copy
import json
import re
import string
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

EVENTS = Path(__file__).parent / "events"
_WHOLE = re.compile(r"^\$\{(\w+)\}$")

DEFAULTS: dict[str, Any] = {
    "bucket": "uploads",
    "key": "photo.jpg",
    "size": 1024,
    "etag": "0123456789abcdef0123456789abcdef",
    "version_id": None,
    "sequencer": "0055AED6DCD90281E5",
    "message_id": "059f36b4-87a3-44ab-83d2-661975830a7d",
    "boundary": "----moderation-test-boundary",
    "body": "",
    "content_length": "0",
}


def encode_key(key: str) -> str:
    """A key as S3 writes it into notifications: form-URL-encoded (space -> +), slashes kept."""
    return quote_plus(key, safe="/")


def load_event(name: str, **substitutions: Any) -> dict[str, Any]:
    values = {**DEFAULTS, **substitutions}
    data = json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))
    filled: dict[str, Any] = _fill(data, values)
    return filled


def _fill(node: Any, values: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        return {k: _fill(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_fill(v, values) for v in node]
    if isinstance(node, str):
        whole = _WHOLE.match(node)
        if whole:
            return values[whole.group(1)]
        if "${" in node:
            texts = {k: "" if v is None else str(v) for k, v in values.items()}
            return string.Template(node).substitute(texts)
    return node


def sqs_event(*bodies: dict[str, Any], ids: list[str] | None = None) -> dict[str, Any]:
    """An SQS batch in the real record shape, one message per body (each body JSON-encoded)."""
    template = load_event("sqs_s3_put")["Records"][0]
    records = []
    for index, body in enumerate(bodies):
        record = copy.deepcopy(template)
        record["messageId"] = ids[index] if ids else f"message-{index + 1}"
        record["body"] = json.dumps(body)
        records.append(record)
    return {"Records": records}


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes, str]], boundary: str) -> bytes:
    """A multipart/form-data body as a browser or curl sends it."""
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    for name, (filename, data, content_type) in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        )
        parts.append(head.encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


def http_event(name: str, image: bytes, classes: str = "nsfw, sfw") -> dict[str, Any]:
    """An HTTP event (`apigw_rest_v1_classify`, `http_api_v2_classify`, `function_url_classify`) whose
    base64 body is a multipart upload of `image` to /classify/."""
    boundary = DEFAULTS["boundary"]
    body = multipart({"classes": classes}, {"image": ("photo.jpg", image, "image/jpeg")}, boundary)
    return load_event(
        name, body=base64.b64encode(body).decode(), boundary=boundary, content_length=str(len(body))
    )
