"""CSRF protection for cookie-authenticated requests: an Origin check.

A browser sends `Origin` on every cross-origin request and on same-origin requests with
an unsafe method (POST, PUT, PATCH, DELETE). A cookie-authenticated unsafe request must
carry an Origin equal to the server's own (scheme, host and port of the request URL, as
seen through a proxy that forwards Host and X-Forwarded-Proto). The SameSite=Strict
cookie is the second layer. Bearer-authenticated requests need no check: a foreign page
cannot attach the header.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from app.errors import ApiError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _own_origin(connection: HTTPConnection) -> str:
    url = connection.url
    scheme = connection.headers.get("x-forwarded-proto", url.scheme).split(",")[0].strip()
    host = connection.headers.get("host", url.netloc)
    return f"{scheme}://{host}".lower()


def check_origin(connection: HTTPConnection, method: str) -> None:
    """Refuses (403 csrf_failed) an unsafe request whose Origin is missing or foreign."""
    if method.upper() in SAFE_METHODS:
        return
    origin = connection.headers.get("origin")
    if origin is None or origin.lower() != _own_origin(connection):
        raise ApiError(
            403,
            "csrf_failed",
            "A signed-in browser request that changes something must come from this "
            "site (the Origin header did not match).",
        )
