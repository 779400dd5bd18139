"""Request hardening: body size limit, strict JSON for admin requests, CORS closed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

LIMIT = 1024 * 1024  # LIVECAM_MAX_BODY_KB's default


def _camera_names(client: TestClient, admin: dict[str, str]) -> list[str]:
    return [c["name"] for c in client.get("/api/cameras", headers=admin).json()]


def test_oversized_body_is_refused_before_the_app(
    client: TestClient, admin: dict[str, str]
) -> None:
    body = b'{"name": "' + b"x" * (LIMIT + 10) + b'"}'
    response = client.post(
        "/api/cameras", content=body, headers={**admin, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert _camera_names(client, admin) == []


def test_chunked_body_is_counted_as_it_arrives(client: TestClient, admin: dict[str, str]) -> None:
    def chunks(total: int) -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(total // 65536):
            yield b"y" * 65536
        yield b'"}'

    headers = {**admin, "Content-Type": "application/json"}
    big = client.post("/api/cameras", content=chunks(LIMIT + 65536), headers=headers)
    assert big.status_code == 413
    assert "content-length" not in {k.lower() for k in big.request.headers}
    small = client.post("/api/cameras", content=iter([b'{"name": ', b'"Porch"}']), headers=headers)
    assert small.status_code == 201, small.text
    assert _camera_names(client, admin) == ["Porch"]


def test_bad_content_length_is_refused(client: TestClient, admin: dict[str, str]) -> None:
    response = client.post(
        "/api/cameras",
        content=b'{"name": "A"}',
        headers={**admin, "Content-Type": "application/json", "Content-Length": "-1"},
    )
    assert response.status_code in {400, 413}
    assert _camera_names(client, admin) == []


def test_unknown_fields_are_refused_in_admin_requests(
    client: TestClient, admin: dict[str, str]
) -> None:
    created = client.post("/api/cameras", json={"name": "Door", "admin": True}, headers=admin)
    assert created.status_code == 422
    assert "admin" in created.text
    ok = client.post("/api/cameras", json={"name": "Door"}, headers=admin)
    assert ok.status_code == 201
    cam = ok.json()["camera"]["id"]
    renamed = client.patch(f"/api/cameras/{cam}", json={"name": "X", "nmae": "Y"}, headers=admin)
    assert renamed.status_code == 422
    assert _camera_names(client, admin) == ["Door"]


def test_every_non_edge_json_body_forbids_unknown_fields(app: FastAPI) -> None:
    schema: dict[str, Any] = app.openapi()
    components = schema["components"]["schemas"]
    lenient = []
    for path, operations in schema["paths"].items():
        if path.startswith("/api/edge/"):
            continue  # edges may be newer than the server: their extra keys are ignored
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            ref = content.get("application/json", {}).get("schema", {}).get("$ref")
            if ref is None:
                continue
            model = components[ref.rsplit("/", 1)[1]]
            if model.get("additionalProperties") is not False:
                lenient.append(f"{method.upper()} {path}")
    assert lenient == []


def test_cors_stays_closed(client: TestClient, admin: dict[str, str]) -> None:
    preflight = client.options(
        "/api/cameras",
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert "access-control-allow-origin" not in preflight.headers
    read = client.get("/api/cameras", headers={**admin, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in read.headers
    assert "access-control-allow-credentials" not in read.headers
