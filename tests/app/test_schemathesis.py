"""Property-based requests generated from the OpenAPI schema (schemathesis), against the
app in process, authenticated as an admin: whatever they send, no 500.

Derandomized (the same cases every run) and bounded in examples, so it is repeatable and
quick; the two endless streams (MJPEG, SSE) are left out, their parameters are covered by
their own tests. (Operations are driven with Hypothesis directly: schemathesis's pytest
fixture loader does not work with this pytest.)
"""

from __future__ import annotations

from typing import Any

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok

STREAMS = r"^/api/(cameras/\{camera_id\}/mjpeg|events/stream)$"


def test_no_server_errors(app: FastAPI, admin: dict[str, str]) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path_regex=STREAMS)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            failures.append(f"the schema has an invalid operation: {result.err()}")
            continue
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=8,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case[Any]) -> None:
            headers = dict(case.headers or {})
            headers.setdefault("Authorization", admin["Authorization"])
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report all
            failures.append(f"{operation.label}: {str(exc)[:800]}")
    every = sum(len(ops) for ops in app.openapi()["paths"].values())
    assert operations == every - 2  # all but the two streams
    assert failures == [], "\n\n".join(failures)
