"""An MJPEG client for tests, benchmarks and a quick look: reads the API's
``multipart/x-mixed-replace`` stream part by part, as a browser's <img> does.

    python -m scripts.mjpeg http://127.0.0.1:8080 CAMERA --admin-key lca_… [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)


class MultipartError(ValueError):
    """The stream is not well-formed multipart."""


@dataclass(frozen=True, slots=True)
class Part:
    """One part: its headers (lower-case names) and its body."""

    headers: dict[str, str]
    body: bytes
    arrived: float  # time.monotonic() when its last byte was read

    @property
    def seq(self) -> int | None:
        """The relay's frame number (X-Frame-Seq), if sent."""
        value = self.headers.get("x-frame-seq")
        return int(value) if value is not None else None


def boundary_of(content_type: str) -> str:
    """The boundary parameter of a multipart Content-Type."""
    match = _BOUNDARY.search(content_type)
    if not content_type.lower().startswith("multipart/") or match is None:
        raise MultipartError(f"not a multipart content type: {content_type!r}")
    return match.group(1)


class MultipartParser:
    """Incremental parser; every part must carry Content-Length (the API's always do)."""

    def __init__(self, boundary: str) -> None:
        self.delimiter = b"--" + boundary.encode()
        self._buf = bytearray()
        self._headers: dict[str, str] | None = None
        self._length = 0

    def feed(self, data: bytes) -> list[Part]:
        """Parts completed by ``data``."""
        self._buf += data
        parts: list[Part] = []
        while True:
            if self._headers is None:
                end = self._buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(self._buf) > 64 * 1024:
                        raise MultipartError("part headers longer than 64 KiB")
                    return parts
                head = bytes(self._buf[:end]).decode("latin-1").split("\r\n")
                del self._buf[: end + 4]
                while head and not head[0]:
                    head.pop(0)  # the CRLF that ended the previous part
                if not head or head[0].strip() != self.delimiter.decode():
                    raise MultipartError(f"expected the boundary, got {head[:1]!r}")
                headers: dict[str, str] = {}
                for line in head[1:]:
                    name, sep, value = line.partition(":")
                    if not sep:
                        raise MultipartError(f"bad header line {line!r}")
                    headers[name.strip().lower()] = value.strip()
                if "content-length" not in headers:
                    raise MultipartError("part without Content-Length")
                self._headers = headers
                self._length = int(headers["content-length"])
            if len(self._buf) < self._length + 2:
                return parts
            body = bytes(self._buf[: self._length])
            if self._buf[self._length : self._length + 2] != b"\r\n":
                raise MultipartError("part body not followed by CRLF")
            del self._buf[: self._length + 2]
            parts.append(Part(self._headers, body, time.monotonic()))
            self._headers = None


async def mjpeg_parts(
    client: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None
) -> AsyncIterator[Part]:
    """Stream ``url`` and yield each JPEG part as it arrives (forever, until closed)."""
    async with client.stream("GET", url, headers=headers) as response:
        if response.status_code != 200:
            await response.aread()
            raise httpx.HTTPStatusError(
                f"MJPEG stream: HTTP {response.status_code}: {response.text[:200]}",
                request=response.request,
                response=response,
            )
        parser = MultipartParser(boundary_of(response.headers["content-type"]))
        async for chunk in response.aiter_raw():
            for part in parser.feed(chunk):
                yield part


@dataclass(frozen=True, slots=True)
class WindowResult:
    """What one viewer got during a measurement window."""

    parts: list[Part]

    @property
    def sent(self) -> int:
        """JPEGs the relay published during the window (from the X-Frame-Seq numbers)."""
        seqs = [p.seq or 0 for p in self.parts]
        return seqs[-1] - seqs[0] + 1 if seqs else 0

    @property
    def delivered(self) -> float:
        """Share of those this viewer received."""
        return len(self.parts) / max(1, self.sent)

    @property
    def fps(self) -> float:
        span = self.parts[-1].arrived - self.parts[0].arrived if self.parts else 0.0
        return (len(self.parts) - 1) / span if span > 0 else 0.0


async def watch_window(
    base_url: str, url: str, seconds: float, ready: asyncio.Event, go: asyncio.Event
) -> WindowResult:
    """One viewer: streams ``url``, sets ``ready`` at its first JPEG, and keeps the parts
    that arrive from ``go`` on, for ``seconds``. Starting every viewer's window on one
    ``go`` makes sure they were all connected at the same time."""
    window: list[Part] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
        stream = mjpeg_parts(client, url)
        try:
            async for part in stream:
                ready.set()
                if not go.is_set():
                    continue
                window.append(part)
                if part.arrived - window[0].arrived >= seconds:
                    break
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
    return WindowResult(window)


async def slow_reader(
    host: str, port: int, path: str, stop: asyncio.Event, chunk: int = 1024, every_s: float = 0.1
) -> int:
    """A viewer on a slow link: reads ``chunk`` bytes every ``every_s`` seconds through a
    tiny receive buffer, so the server sees it fall behind at once; returns bytes read."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=chunk)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    await writer.drain()
    total = 0
    try:
        while not stop.is_set():
            total += len(await reader.read(chunk))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)
    finally:
        writer.close()
    return total


async def _main(args: argparse.Namespace) -> int:
    async with httpx.AsyncClient(base_url=args.server, timeout=10.0) as client:
        ticket = await client.post(
            f"/api/cameras/{args.camera}/mjpeg-ticket",
            headers={"Authorization": f"Bearer {args.admin_key}"},
        )
        ticket.raise_for_status()
        started = time.monotonic()
        count = 0
        stream = mjpeg_parts(client, ticket.json()["url"])
        async for part in stream:
            count += 1
            print(f"{part.arrived - started:7.2f}s  seq={part.seq}  {len(part.body)} bytes")
            if part.arrived - started >= args.seconds:
                break
        await stream.aclose()  # type: ignore[attr-defined]
        print(f"{count} JPEGs in {time.monotonic() - started:.1f} s")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.mjpeg", description=__doc__)
    parser.add_argument("server")
    parser.add_argument("camera")
    parser.add_argument(
        "--admin-key",
        default=os.environ.get("LIVECAM_ADMIN_KEY"),
        help="default: $LIVECAM_ADMIN_KEY (keeps the key out of the process list)",
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    if not args.admin_key:
        parser.error("set LIVECAM_ADMIN_KEY or pass --admin-key")
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
