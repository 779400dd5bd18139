"""A loopback TCP proxy that can break connections on purpose.

Tests put it between an edge and the API to cut an upload mid-chunk, the way a flaky
uplink does, without mocking the HTTP client or the server: both sides see a real reset.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


@dataclass
class TcpProxy:
    """Forwards 127.0.0.1:``port`` → ``target_port``; ``cut_after(n)`` breaks the connection
    that carries the n-th byte from now (client → server), once."""

    target_port: int
    port: int = 0
    bytes_up: int = 0
    cuts: int = 0
    _cut_at: int | None = None
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self) -> None:
        """Listen on a free loopback port (``self.port``)."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        """http:// URL of the proxy."""
        return f"http://127.0.0.1:{self.port}"

    def cut_after(self, n: int) -> None:
        """Break the connection carrying client byte ``bytes_up + n``."""
        self._cut_at = self.bytes_up + n

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        cut = asyncio.Event()

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, up: bool) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    if up:
                        if self._cut_at is not None and self.bytes_up + len(data) >= self._cut_at:
                            keep = max(0, self._cut_at - self.bytes_up)
                            dst.write(data[:keep])
                            self.bytes_up += keep
                            self._cut_at = None
                            self.cuts += 1
                            cut.set()
                            return
                        self.bytes_up += len(data)
                    dst.write(data)
                    await dst.drain()

        tasks = [
            asyncio.create_task(pump(reader, up_writer, True)),
            asyncio.create_task(pump(up_reader, writer, False)),
            asyncio.create_task(cut.wait()),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for w in (writer, up_writer):
            # An abort, not a polite close: the peer sees a reset, like a dropped link.
            with contextlib.suppress(OSError):
                w.transport.abort()
            self._writers.discard(w)
