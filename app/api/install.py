"""What a Raspberry Pi needs to install the edge, served by the server it will talk to.

`GET /install-edge.sh` is scripts/install-edge.sh; `GET /edge-bundle.tar.gz` is the edge
code of this very server version (edge/, requirements.txt, the systemd unit, and the
pionpub programs built for the Pis in bin/ when the server has them: see Dockerfile), so
a Pi always runs an edge that matches its server and needs nothing but this host. Public and
read-only: the code is the open-source edge; no secret is in it (the enrollment code,
passed on the command line, is what authorizes a camera).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Request, Response

ROOT = Path(__file__).resolve().parent.parent.parent
INSTALL_SCRIPT = ROOT / "scripts" / "install-edge.sh"
#: Paths (relative to the repository) that make up the edge bundle.
BUNDLE_PATHS = ("edge", "requirements.txt", "systemd/livecam-edge.service", "bin")
#: Programs in the bundle (mode 0755): the edge's pion publisher per architecture.
_PROGRAM_PREFIX = "bin/pionpub-linux-"
_SKIP_PARTS = {"__pycache__", ".mypy_cache", ".pytest_cache"}

router = APIRouter(tags=["install"], include_in_schema=False)


def _bundle_files(root: Path) -> list[Path]:
    files: list[Path] = []
    for name in BUNDLE_PATHS:
        path = root / name
        candidates = sorted(path.rglob("*")) if path.is_dir() else [path]
        files.extend(
            p
            for p in candidates
            if p.is_file()
            and not _SKIP_PARTS & set(p.relative_to(root).parts)
            and (name != "bin" or p.relative_to(root).as_posix().startswith(_PROGRAM_PREFIX))
        )
    return files


def build_bundle(root: Path = ROOT) -> bytes:
    """A reproducible .tar.gz of the edge (sorted, mtime 0, root-owned entries)."""
    buffer = io.BytesIO()
    # mtime=0 in the gzip header and the entries: the same code gives the same bytes.
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in _bundle_files(root):
            name = path.relative_to(root).as_posix()
            info = tarfile.TarInfo(name)
            data = path.read_bytes()
            info.size = len(data)
            info.mode = 0o755 if name.startswith(_PROGRAM_PREFIX) else 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@lru_cache(maxsize=1)
def _cached_bundle() -> tuple[bytes, str]:
    data = build_bundle()
    return data, hashlib.sha256(data).hexdigest()


def _send(request: Request, data: bytes, etag: str, media_type: str) -> Response:
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=media_type, headers=headers)


@router.get("/install-edge.sh")
def install_script(request: Request) -> Response:
    """The Pi install script (`curl -fsSL https://<server>/install-edge.sh | sudo bash -s -- …`)."""
    data = INSTALL_SCRIPT.read_bytes()
    etag = f'"{hashlib.sha256(data).hexdigest()[:32]}"'
    return _send(request, data, etag, "text/x-shellscript; charset=utf-8")


@router.get("/edge-bundle.tar.gz")
def edge_bundle(request: Request) -> Response:
    """The edge code matching this server, as the install script downloads it."""
    data, digest = _cached_bundle()
    response = _send(request, data, f'"{digest[:32]}"', "application/gzip")
    response.headers["X-Bundle-SHA256"] = digest
    return response
