"""Serves the web console's static files. Public by design: the pages hold no data; every API
call they make carries the user's JWT and is checked like any other client's."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from server.core.errors import NotFound

STATIC = Path(__file__).parent / "static"
# Only same-origin scripts, styles and API calls; no inline script, no framing.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer",
           # small files; revalidate so a deploy is seen at the next load
           "Cache-Control": "no-cache"}
# ES modules need a JavaScript MIME type whatever the host's mime.types says
_TYPES = {".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".html": "text/html; charset=utf-8",
          ".json": "application/json", ".svg": "image/svg+xml", ".txt": "text/plain; charset=utf-8"}

router = APIRouter(tags=["web"], include_in_schema=False)


def _files() -> dict[str, Path]:
    """The servable files, by URL path; read once, so no request path ever reaches the disk."""
    return {p.relative_to(STATIC).as_posix(): p for p in sorted(STATIC.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


FILES = _files()


def _send(path: Path) -> FileResponse:
    media = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or \
        "application/octet-stream"
    return FileResponse(path, media_type=media, headers=HEADERS)


@router.get("/")
def desk() -> FileResponse:
    """The agent desk."""
    return _send(FILES["index.html"])


@router.get("/static/{name:path}")
def static(name: str) -> FileResponse:
    path = FILES.get(name)
    if path is None:
        raise NotFound(f"no such file: /static/{name}", field="name")
    return _send(path)
