"""app/logs.py: one logfmt line per record, extras included."""

from __future__ import annotations

import io
import logging
import sys

from app.logs import LogfmtFormatter, configure_logging


def _format(record: logging.LogRecord) -> str:
    return LogfmtFormatter().format(record)


def test_line_shape_and_extras() -> None:
    record = logging.makeLogRecord(
        {
            "name": "app.api.cameras",
            "levelname": "INFO",
            "msg": "camera %s",
            "args": ("created",),
            "created": 1_900_000_000.25,
            "camera": "door",
            "camera_name": "Front door",
            "ttl": 600,
        }
    )
    line = _format(record)
    assert line == (
        "ts=2030-03-17T17:46:40.250Z level=info logger=app.api.cameras "
        'msg="camera created" camera=door camera_name="Front door" ttl=600'
    )


def test_quoting_and_exceptions_stay_on_one_line() -> None:
    try:
        raise ValueError('bad "thing"\nsecond line')
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    record.__dict__["note"] = 'a=b "c"'
    line = _format(record)
    assert "\n" not in line
    assert 'note="a=b \\"c\\""' in line
    assert 'exc="Traceback' in line
    assert 'ValueError: bad \\"thing\\"\\nsecond line' in line


def test_configure_logging_routes_everything() -> None:
    stream = io.StringIO()
    configure_logging("debug", stream)
    logging.getLogger("app.test").debug("hello", extra={"camera": "a"})
    logging.getLogger("uvicorn.error").info("serving")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("level=debug logger=app.test msg=hello camera=a"[-41:])
    assert "logger=uvicorn.error msg=serving" in lines[1]
