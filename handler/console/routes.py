"""GET / (try an image or a video), GET /review (the review queue), and the console's files (/console/).

The pages are static files: no key is needed to load them (on API Gateway their routes carry no API key
requirement); every API call the page makes sends `x-api-key`. Only the files shipped in `static/` are
served, by exact name, so no path from a request ever reaches the filesystem.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

router = APIRouter(include_in_schema=False)

_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
#: The page's own files and the API only; previews of uploads are blob: URLs, of URLs the URL itself.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' blob: data: https: http:; media-src 'self' blob: https: http:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _load_static() -> dict[str, bytes]:
    folder = resources.files("handler.console").joinpath("static")
    return {
        entry.name: entry.read_bytes()
        for entry in folder.iterdir()
        if entry.is_file() and any(entry.name.endswith(suffix) for suffix in _MEDIA_TYPES)
    }


_FILES = _load_static()


def _file(name: str) -> Response:
    body = _FILES.get(name)
    if body is None:
        raise HTTPException(status_code=404, detail=f"no console file {name!r}")
    suffix = name[name.rindex(".") :]
    headers = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Referrer-Policy": "no-referrer"}
    return Response(content=body, media_type=_MEDIA_TYPES[suffix], headers=headers)


def _stage_root_redirect(request: Request) -> Response | None:
    """Through API Gateway the stage root may be asked for without its slash (`.../v1`); the page's
    relative links need it (`.../v1/`)."""
    event = request.scope.get("aws.event")
    context = event.get("requestContext") if isinstance(event, dict) else None
    path = context.get("path") if isinstance(context, dict) else None
    if isinstance(path, str) and path and not path.endswith("/"):
        return RedirectResponse(path + "/", status_code=308)
    return None


@router.get("/")
def try_page(request: Request) -> Response:
    return _stage_root_redirect(request) or _file("index.html")


@router.get("/review")
def review_page() -> Response:
    return _file("review.html")


@router.get("/console/{name}")
def console_file(name: str) -> Response:
    return _file(name)
