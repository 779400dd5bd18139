"""app/api/dashboard.py serves index.html and assets/; the dashboard's own rules (no CDN,
nothing a strict CSP would block, API text never parsed as HTML) checked on the sources."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import app.api.dashboard as dashboard

ROOT = Path(__file__).resolve().parent.parent.parent
APP_FILES = sorted((ROOT / "assets").glob("*.js")) + sorted((ROOT / "assets").glob("*.css"))


@pytest.fixture
def assets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in assets/ tree (the real vendor file exists only after setup)."""
    root = tmp_path / "assets"
    (root / "vendor").mkdir(parents=True)
    (root / "app.js").write_text("export {};\n")
    (root / "dashboard.css").write_text("body {}\n")
    (root / "icon.svg").write_text("<svg/>")
    (root / "vendor" / "livekit-client.esm.mjs").write_text("export const version = 'x';\n")
    (root / "notes.txt").write_text("not served")
    (root / ".hidden.js").write_text("secret")
    (tmp_path / "secret.js").write_text("outside")
    monkeypatch.setattr(dashboard, "ASSETS", root)
    return root


def test_index(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert '<script type="module" src="assets/app.js"></script>' in response.text
    assert client.head("/").status_code == 200


@pytest.mark.parametrize(
    ("path", "content_type", "cache"),
    [
        ("app.js", "text/javascript; charset=utf-8", "no-cache"),
        ("dashboard.css", "text/css; charset=utf-8", "no-cache"),
        ("icon.svg", "image/svg+xml", "no-cache"),
        (
            "vendor/livekit-client.esm.mjs",
            "text/javascript; charset=utf-8",
            "public, max-age=86400",
        ),
    ],
)
def test_assets_have_types_and_cache_rules(
    client: TestClient, assets: Path, path: str, content_type: str, cache: str
) -> None:
    response = client.get(f"/assets/{path}")
    assert response.status_code == 200
    assert response.content == (assets / path).read_bytes()
    assert response.headers["content-type"] == content_type
    assert response.headers["cache-control"] == cache
    etag = response.headers["etag"]
    again = client.get(f"/assets/{path}", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["cache-control"] == cache


@pytest.mark.parametrize(
    "path",
    ["notes.txt", ".hidden.js", "missing.js", "../secret.js", "..%2Fsecret.js", "vendor"],
)
def test_only_dashboard_files_are_served(client: TestClient, assets: Path, path: str) -> None:
    response = client.get(f"/assets/{path}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] in {"not_found", "not_found_error"}


def test_api_routes_are_untouched(client: TestClient) -> None:
    assert client.get("/api/health").headers["content-type"] == "application/json"
    assert client.get("/api/nothing").status_code == 404
    assert client.post("/").status_code == 405


def test_real_assets_are_served(client: TestClient) -> None:
    for path in APP_FILES:
        response = client.get(f"/assets/{path.name}")
        assert response.status_code == 200, path.name
        assert response.headers["cache-control"] == "no-cache"


# --- rules for the dashboard's sources ------------------------------------------------

FORBIDDEN = {
    r"\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write": "HTML from strings",
    r"\beval\(|new Function\b|setTimeout\(\s*['\"`]": "eval (CSP)",
    r"localStorage": "the admin key stays in sessionStorage",
    # (The SVG namespace is a name the DOM needs, not an address anything is fetched from.)
    r"https?://(?!www\.w3\.org/2000/svg')": "no CDN or other origin",
    r"setAttribute\(\s*['\"]style|\.cssText": "inline style attributes (CSP)",
}


@pytest.mark.parametrize("path", APP_FILES, ids=lambda p: p.name)
def test_sources_avoid_what_a_strict_csp_blocks(path: Path) -> None:
    text = path.read_text()
    for pattern, why in FORBIDDEN.items():
        for line in text.splitlines():
            if line.strip().startswith(("//", "*", "/*")):
                continue
            assert not re.search(pattern, line), f"{path.name}: {why}: {line.strip()}"


def test_index_has_no_inline_code() -> None:
    html = (ROOT / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", html), "inline <script>"
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler"
    assert not re.search(r"\sstyle\s*=", html), "inline style"
    assert "<style" not in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "another origin"
