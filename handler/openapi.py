"""`python -m handler.openapi [PATH]`: write the app's OpenAPI schema (what GET /openapi.json serves).

An entry point of its own, beside the app: the command line (handler.cli) never imports the HTTP routes.
`make openapi` writes docs/openapi.json, and tests/test_openapi.py keeps that file equal to the app.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULT_PATH = Path("docs/openapi.json")


def schema() -> dict[str, Any]:
    from handler.app import app

    return app.openapi()


def render(document: dict[str, Any]) -> str:
    """Stable text: two-space indent, keys in the app's order, a final newline."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) > 1 or any(a.startswith("-") for a in args):
        print("usage: python -m handler.openapi [PATH]  (default docs/openapi.json)", file=sys.stderr)
        return 2
    target = Path(args[0]) if args else DEFAULT_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(schema()))
    print(target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
