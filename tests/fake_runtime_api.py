"""A small local implementation of the Lambda Runtime API, enough to drive the real `awslambdaric` loop.

Events put with `invoke()` are handed out by `GET /2018-06-01/runtime/invocation/next`; the runtime's
answers (`.../response`, `.../error`, `/runtime/init/error`) are collected and returned by `result()`.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "/2018-06-01/runtime"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:moderation"


class FakeRuntimeApi:
    def __init__(self) -> None:
        self._events: queue.Queue[tuple[str, bytes] | None] = queue.Queue()
        self._answers: dict[str, tuple[str, Any]] = {}
        self._answered = threading.Condition()
        self.init_error: Any = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def __enter__(self) -> FakeRuntimeApi:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._events.put(None)  # wake a runtime still waiting for its next event
        self._server.shutdown()
        self._server.server_close()

    def invoke(self, event: Any) -> str:
        """Queue an invocation; returns its request id."""
        request_id = str(uuid.uuid4())
        self._events.put((request_id, json.dumps(event).encode()))
        return request_id

    def result(self, request_id: str, timeout: float) -> tuple[str, Any]:
        """("response" | "error", the JSON body) for `request_id`, waiting up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._answered:
            while request_id not in self._answers:
                left = deadline - time.monotonic()
                if left <= 0 or self.init_error is not None:
                    raise TimeoutError(f"no answer for {request_id}; init error: {self.init_error}")
                self._answered.wait(left)
            return self._answers[request_id]

    def _record(self, request_id: str | None, kind: str, body: Any) -> None:
        with self._answered:
            if request_id is None:
                self.init_error = body
            else:
                self._answers[request_id] = (kind, body)
            self._answered.notify_all()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if self.path != f"{PREFIX}/invocation/next":
                    self._reply(404, b'{"errorMessage": "not found"}')
                    return
                item = api._events.get()
                if item is None:
                    api._events.put(None)
                    self._reply(500, b'{"errorMessage": "shutting down"}')
                    return
                request_id, body = item
                deadline = int((time.time() + 60) * 1000)
                self._reply(
                    200,
                    body,
                    {
                        "Lambda-Runtime-Aws-Request-Id": request_id,
                        "Lambda-Runtime-Deadline-Ms": str(deadline),
                        "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
                        "Lambda-Runtime-Trace-Id": f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}",
                    },
                )

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                parts = self.path.removeprefix(PREFIX).strip("/").split("/")
                if parts == ["init", "error"]:
                    api._record(None, "init_error", body)
                elif len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                    api._record(parts[1], parts[2], body)
                else:
                    self._reply(404, b'{"errorMessage": "not found"}')
                    return
                self._reply(202, b'{"status": "OK"}')

            def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        return Handler
