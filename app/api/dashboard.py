"""The dashboard: `/` is index.html, `/assets/...` its ES modules, CSS and the vendored
livekit-client, `/sw.js` the service worker that shows Web Push notifications (served
from the root, with `Service-Worker-Allowed: /`, so it may control the whole site).
Static files only; nothing under /api.

App files are sent with `Cache-Control: no-cache` (the browser revalidates with the
ETag, so an upgrade shows at once); `assets/vendor/` is cacheable for a day.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse

from app.errors import ApiError

ROOT = Path(__file__).resolve().parent.parent.parent
INDEX = ROOT / "index.html"
ASSETS = ROOT / "assets"
SERVICE_WORKER = ASSETS / "sw.js"

NO_CACHE = "no-cache"
VENDOR_CACHE = "public, max-age=86400"

# Served types; anything else under assets/ is not served.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".map": "application/json; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
}

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(tags=["dashboard"], include_in_schema=False)


def _not_found(path: str) -> ApiError:
    return ApiError(404, "not_found", f"No dashboard file {path!r}.")


def _etag(path: Path) -> str:
    st = path.stat()
    digest = hashlib.md5(f"{st.st_mtime_ns}-{st.st_size}".encode(), usedforsecurity=False)
    return f'"{digest.hexdigest()}"'


def _send(
    request: Request, path: Path, cache_control: str, extra: dict[str, str] | None = None
) -> Response:
    content_type = CONTENT_TYPES.get(path.suffix)
    if content_type is None or not path.is_file():
        raise _not_found(path.name)
    etag = _etag(path)
    headers = {**HEADERS, **(extra or {}), "Cache-Control": cache_control, "ETag": etag}
    if etag in {t.strip() for t in request.headers.get("if-none-match", "").split(",")}:
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type=content_type, headers=headers)


@router.api_route("/", methods=["GET", "HEAD"])
def index(request: Request) -> Response:
    return _send(request, INDEX, NO_CACHE)


@router.api_route("/sw.js", methods=["GET", "HEAD"])
def service_worker(request: Request) -> Response:
    # Browsers check sw.js for updates themselves; no-cache keeps that check honest.
    return _send(request, SERVICE_WORKER, NO_CACHE, {"Service-Worker-Allowed": "/"})


@router.api_route("/assets/{path:path}", methods=["GET", "HEAD"])
def asset(path: str, request: Request) -> Response:
    target = (ASSETS / path).resolve()
    if not target.is_relative_to(ASSETS) or any(p.startswith(".") for p in Path(path).parts):
        raise _not_found(path)
    vendor = target.is_relative_to(ASSETS / "vendor")
    return _send(request, target, VENDOR_CACHE if vendor else NO_CACHE)
