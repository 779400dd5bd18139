"""GET /install-edge.sh and GET /edge-bundle.tar.gz: what a Pi downloads to install."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

from fastapi.testclient import TestClient

from app.api.install import INSTALL_SCRIPT, build_bundle


def test_install_script_is_served_with_an_etag(client: TestClient) -> None:
    response = client.get("/install-edge.sh")
    assert response.status_code == 200
    assert response.content == INSTALL_SCRIPT.read_bytes()
    assert response.headers["content-type"].startswith("text/x-shellscript")
    again = client.get("/install-edge.sh", headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304


def test_bundle_holds_the_edge_and_nothing_else(client: TestClient) -> None:
    response = client.get("/edge-bundle.tar.gz")
    assert response.status_code == 200
    assert response.headers["x-bundle-sha256"] == hashlib.sha256(response.content).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as tar:
        names = tar.getnames()
        members = tar.getmembers()
    assert {"edge/__main__.py", "edge/cli.py", "requirements.txt"} <= set(names)
    assert "systemd/livecam-edge.service" in names
    assert not [n for n in names if "__pycache__" in n or n.startswith(("app/", "tests/"))]
    assert all(m.isfile() and m.mtime == 0 and m.mode == 0o644 for m in members)


def test_bundle_is_reproducible() -> None:
    assert build_bundle() == build_bundle()


def test_bundle_carries_the_pis_pionpub_programs_executable(tmp_path: Path) -> None:
    (tmp_path / "edge").mkdir()
    (tmp_path / "edge" / "cli.py").write_text("")
    (tmp_path / "requirements.txt").write_text("")
    (tmp_path / "systemd").mkdir()
    (tmp_path / "systemd" / "livecam-edge.service").write_text("")
    (tmp_path / "bin").mkdir()
    for name in ("pionpub-linux-arm64", "pionpub-linux-armv6", "something-else"):
        (tmp_path / "bin" / name).write_bytes(b"\x7fELF")
    with tarfile.open(fileobj=io.BytesIO(build_bundle(tmp_path)), mode="r:gz") as tar:
        modes = {m.name: m.mode for m in tar.getmembers()}
    assert modes["bin/pionpub-linux-arm64"] == modes["bin/pionpub-linux-armv6"] == 0o755
    assert modes["edge/cli.py"] == 0o644
    assert "bin/something-else" not in modes
