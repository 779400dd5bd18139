"""Security headers on every HTTP response.

The Content-Security-Policy allows only this origin's scripts, styles, images and media
(the dashboard has no inline code; tests/browser/test_grid.py checks it under a strict
policy) plus connections to LiveKit's public URL. Framing is refused. HSTS is sent only
when the request came over https (directly, or per X-Forwarded-Proto from the proxy).
No CORS headers are ever added: cross-origin reads stay closed.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HSTS = "max-age=31536000; includeSubDomains"


def dashboard_csp(livekit_public_url: str) -> str:
    """The policy for this server, allowing connections to LiveKit's origin."""
    connect = ["'self'"]
    parts = urlsplit(livekit_public_url)
    if parts.scheme and parts.netloc:
        connect.append(f"{parts.scheme}://{parts.netloc}")
        # The LiveKit client also makes plain HTTP requests to the same host (validation).
        http = {"ws": "http", "wss": "https"}.get(parts.scheme)
        if http is not None:
            connect.append(f"{http}://{parts.netloc}")
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
        f"media-src 'self' blob:; connect-src {' '.join(connect)}; manifest-src 'self'; "
        "worker-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; "
        "object-src 'none'"
    )


class SecurityHeadersMiddleware:
    """Adds the security headers to each response that does not set them itself."""

    def __init__(self, app: ASGIApp, csp: str) -> None:
        self.app = app
        self.static = {
            "Content-Security-Policy": csp,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY",
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        forwarded = Headers(scope=scope).get("x-forwarded-proto", "")
        https = scope.get("scheme") == "https" or forwarded.split(",")[0].strip() == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.static.items():
                    if name not in headers:
                        headers[name] = value
                if https and "Strict-Transport-Security" not in headers:
                    headers["Strict-Transport-Security"] = HSTS
            await send(message)

        await self.app(scope, receive, send_with_headers)
