"""Serves the web console's static files. Public by design: the pages hold no data; every API
call they make carries the user's JWT and is checked like any other client's."""

from __future__ import annotations

import mimetypes
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
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


def _send(path: Path, headers: dict[str, str] = HEADERS) -> FileResponse:
    media = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or \
        "application/octet-stream"
    return FileResponse(path, media_type=media, headers=headers)


def _page_headers(request: Request) -> dict[str, str]:
    """The pages' headers; a configured tile server (CREWLINE_TILE_URL) may serve map images."""
    tile_url = request.app.state.settings.tile_url
    if not tile_url:
        return HEADERS
    parts = urlsplit(tile_url.replace("{s}", "a"))
    origin = f"{parts.scheme}://{parts.netloc}".replace("://a.", "://*.") \
        if "{s}" in tile_url else f"{parts.scheme}://{parts.netloc}"
    return {**HEADERS, "Content-Security-Policy": CSP.replace(
        "img-src 'self' data:", f"img-src 'self' data: {origin}")}


@router.get("/")
def desk(request: Request) -> FileResponse:
    """The agent desk."""
    return _send(FILES["index.html"], _page_headers(request))


def _page(path: str, name: str, doc: str) -> None:
    def serve(request: Request) -> FileResponse:
        return _send(FILES[name], _page_headers(request))

    serve.__doc__ = doc
    router.add_api_route(path, serve, methods=["GET"], name=f"page_{name.split('.')[0]}")


for _path, _name, _doc in (("/dispatch", "dispatch.html", "The dispatcher's map console."),
                           ("/wall", "wall.html", "The wall screen."),
                           ("/outages", "outages.html", "Outages: draw, preview, declare, restore."),
                           ("/inspections", "inspections.html",
                            "Inspections: a technician's day, compliance, exceptions."),
                           ("/sms", "sms.html", "The SMS log."),
                           ("/devices", "devices.html", "Handsets: pair, list, revoke.")):
    _page(_path, _name, _doc)


@router.get("/static/{name:path}")
def static(name: str) -> FileResponse:
    path = FILES.get(name)
    if path is None:
        raise NotFound(f"no such file: /static/{name}", field="name")
    return _send(path)
