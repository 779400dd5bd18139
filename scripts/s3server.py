"""A real S3-compatible server on loopback: versitygw over a plain directory.

Used by the tests (S3 media storage, backups to S3) and by bench/media.py, so S3 code is
exercised against a real implementation of the protocol (signatures, multipart upload,
ranges, errors), never a mock. `scripts/setup-s3.sh` builds the pinned binary once.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from scripts.devstack import ROOT, ManagedProcess, built_binary, free_tcp_port


def versitygw_binary() -> str:
    """Path of versitygw: $VERSITYGW_BIN, else built (once) by scripts/setup-s3.sh."""
    return built_binary("VERSITYGW_BIN", ROOT / "scripts" / "setup-s3.sh")


@dataclass
class S3Server:
    """A running S3 endpoint: what a client needs to reach it."""

    endpoint_url: str
    access_key: str
    secret_key: str
    root: Path
    region: str = "us-east-1"
    proc: ManagedProcess | None = None

    def client(self) -> Any:
        """A boto3 S3 client for this server."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
        )

    def make_bucket(self, name: str) -> None:
        """Create bucket ``name`` through the S3 API (3–63 characters, S3's rule)."""
        self.client().create_bucket(Bucket=name)

    def stop(self) -> None:
        """Stop the server (idempotent)."""
        if self.proc is not None:
            self.proc.stop()

    def start(self) -> None:
        """Start (or restart) the server; returns once it answers HTTP."""
        assert self.proc is not None
        self.proc.start()

        def answers() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                # Unsigned request: any S3 error answer (403) means it is up.
                return httpx.get(self.endpoint_url, timeout=1.0).status_code < 500
            return False

        self.proc.wait_until(answers, "S3 endpoint")


@contextlib.contextmanager
def running_s3(workdir: Path, *buckets: str) -> Iterator[S3Server]:
    """Start versitygw on a free loopback port with fresh credentials and ``buckets``."""
    root = workdir / "s3-root"
    root.mkdir(parents=True, exist_ok=True)
    # Object metadata (multipart part ETags among it) in a side directory, not in xattrs:
    # works on any file system, and unlike --nometa, multipart uploads can complete.
    meta = workdir / "s3-meta"
    meta.mkdir(parents=True, exist_ok=True)
    port = free_tcp_port()
    access, secret = "livecam" + secrets.token_hex(4), secrets.token_urlsafe(24)
    env = {
        **os.environ,
        "ROOT_ACCESS_KEY": access,
        "ROOT_SECRET_KEY": secret,
    }
    binary = versitygw_binary()
    proc = ManagedProcess(
        "versitygw",
        [binary, "--port", f"127.0.0.1:{port}", "posix", "--sidecar", str(meta), str(root)],
        workdir / "versitygw.log",
        env,
    )
    server = S3Server(f"http://127.0.0.1:{port}", access, secret, root, proc=proc)
    try:
        server.start()
        for bucket in buckets:
            server.make_bucket(bucket)
    except Exception:
        server.stop()
        raise
    try:
        yield server
    finally:
        server.stop()
