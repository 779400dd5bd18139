"""One-line, key=value logs: greppable at 3 a.m. and parseable by log shippers."""

from __future__ import annotations

import logging
import sys
import time


class LogfmtFormatter(logging.Formatter):
    """`ts=... level=... logger=... msg="..."`; the message itself carries key=value pairs."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        msg = record.getMessage().replace('"', "'")
        line = (
            f"ts={ts}.{int(record.msecs):03d}Z level={record.levelname.lower()} "
            f'logger={record.name} msg="{msg}"'
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(level: str = "info") -> None:
    """Send all logs to stderr in logfmt at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The LiveKit FFI logs every ICE candidate at info; keep the operator's view readable.
    logging.getLogger("livekit").setLevel(max(root.level, logging.WARNING))
    # One line per heartbeat request is noise; failures are logged by the camera runner.
    logging.getLogger("httpx").setLevel(max(root.level, logging.WARNING))
