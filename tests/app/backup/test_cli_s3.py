"""``python -m app.backup`` end to end against a real S3 server (versitygw on loopback)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.backup.format import EncryptingReader, decrypt_stream, encrypted_size
from app.backup.keys import Keyring, load_keyring
from app.backup.manifest import Manifest, list_runs, read_manifest
from app.backup.targets import S3Target
from scripts.devstack import free_tcp_port
from scripts.s3server import S3Server, running_s3
from tests.app.backup.conftest import BACKED_UP_FILES
from tests.app.backup.helpers import (
    Generated,
    HashingSink,
    flip,
    peak_rss_growth,
    random_key,
    run_cli,
    tree,
)

BUCKET = "livecam-backups"
BIG = "media/door/2030-01-05/long.mp4"
BIG_SIZE = 40 * 1000 * 1000  # above the 8 MiB multipart threshold: 5 parts


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with running_s3(tmp_path_factory.mktemp("s3"), BUCKET) as server:
        yield server


def s3_env(s3: S3Server) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "AWS_REGION": s3.region,
        "LIVECAM_BACKUP_S3_ENDPOINT": s3.endpoint_url,
    }


def s3_target(s3: S3Server, prefix: str) -> S3Target:
    target = S3Target(BUCKET, prefix, endpoint_url=s3.endpoint_url, region=s3.region)
    target.client = s3.client()
    return target


def only_run(s3: S3Server, prefix: str) -> str:
    (run,) = list_runs(s3_target(s3, prefix))
    return run


def read(s3: S3Server, prefix: str, run: str, key_file: Path) -> Manifest:
    return read_manifest(s3_target(s3, prefix), run, load_keyring([key_file]))


def tamper(client: Any, key: str, offset: int) -> None:
    body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    client.put_object(Bucket=BUCKET, Key=key, Body=flip(body, offset))


def test_s3_run_list_verify_restore_and_tamper(
    s3: S3Server, tmp_path: Path, data_dir: Path, key_file: Path
) -> None:
    env = s3_env(s3)
    (data_dir / BIG).parent.mkdir(parents=True)
    (data_dir / BIG).write_bytes(os.urandom(BIG_SIZE))
    target = f"s3://{BUCKET}/site-a"
    keys = ("--key-file", key_file)

    result = run_cli("run", "--target", target, *keys, "--data", data_dir, env=env)
    assert result.returncode == 0, result.stderr
    run = only_run(s3, "site-a")
    m = read(s3, "site-a", run, key_file)
    assert {e.path for e in m.entries} == BACKED_UP_FILES | {"livecam.db", BIG}
    listed = s3.client().list_objects_v2(Bucket=BUCKET, Prefix="site-a/objects/")
    assert {o["Key"] for o in listed["Contents"]} == {f"site-a/{e.object}" for e in m.entries}
    big = next(e for e in m.entries if e.path == BIG)
    head = s3.client().head_object(Bucket=BUCKET, Key=f"site-a/{big.object}")
    assert head["ContentLength"] == big.stored
    assert "-" in head["ETag"]  # a multipart upload

    listing = run_cli("list", "--target", target, *keys, env=env)
    assert listing.returncode == 0, listing.stderr
    assert run in listing.stdout
    assert f" {len(m.entries)} " in listing.stdout

    verify = run_cli("verify", "--target", target, *keys, env=env)
    assert verify.returncode == 0, verify.stdout + verify.stderr

    restored = tmp_path / "restored"
    started = time.monotonic()
    result = run_cli("restore", run, "--to", restored, "--target", target, *keys, env=env)
    assert result.returncode == 0, result.stderr
    print(f"restore of {BIG_SIZE / 1e6:.0f} MB from S3: {time.monotonic() - started:.1f} s")
    got, want = tree(restored), tree(data_dir)
    for name in BACKED_UP_FILES | {BIG}:
        assert got[name] == want[name], name

    # Tamper with the big clip in S3 (a flipped bit in its second part).
    tamper(s3.client(), f"site-a/{big.object}", 20_000_000)
    verify = run_cli("verify", "--target", target, *keys, env=env)
    assert verify.returncode == 1
    assert f"DAMAGED {big.object} ({BIG})" in verify.stdout
    assert "1 PROBLEMS" in verify.stdout
    dest = tmp_path / "restored-again"
    result = run_cli("restore", run, "--to", dest, "--target", target, *keys, env=env)
    assert result.returncode == 1
    assert big.object in result.stderr
    assert "fails authentication" in result.stderr
    assert not dest.exists()


def test_s3_incremental_and_truncated_object(
    s3: S3Server, tmp_path: Path, data_dir: Path, key_file: Path
) -> None:
    env = s3_env(s3)
    target = f"s3://{BUCKET}/site-b/nightly"
    keys = ("--key-file", key_file)
    assert run_cli("run", "--target", target, *keys, "--data", data_dir, env=env).returncode == 0
    second = run_cli("run", "--target", target, *keys, "--data", data_dir, env=env)
    assert second.returncode == 0, second.stderr
    assert "stored 0 " in second.stdout

    runs = list_runs(s3_target(s3, "site-b/nightly"))
    assert len(runs) == 2
    m = read(s3, "site-b/nightly", runs[-1], key_file)
    entry = next(e for e in m.entries if e.path == "vapid.pem")
    key = f"site-b/nightly/{entry.object}"
    client = s3.client()
    body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    client.put_object(Bucket=BUCKET, Key=key, Body=body[: len(body) - 60])
    verify = run_cli("verify", "--all", "--target", target, *keys, env=env)
    assert verify.returncode == 1
    # Both runs list the object: each run reports it.
    assert verify.stdout.count(f"DAMAGED {entry.object} (vapid.pem)") == 2
    assert "cut short" in verify.stdout


def test_s3_errors_are_clear(s3: S3Server, tmp_path: Path, data_dir: Path, key_file: Path) -> None:
    env = s3_env(s3)
    keys = ("--key-file", key_file)
    missing = run_cli(
        "run", "--target", "s3://no-such-bucket/x", *keys, "--data", data_dir, env=env
    )
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr

    denied = run_cli(
        "run", "--target", f"s3://{BUCKET}/x", *keys, "--data", data_dir,
        env={**env, "AWS_SECRET_ACCESS_KEY": "wrong-secret"},
    )  # fmt: skip
    assert denied.returncode == 2
    assert "refused access" in denied.stderr

    closed = f"http://127.0.0.1:{free_tcp_port()}"
    down = run_cli("list", "--target", f"s3://{BUCKET}/x", "--s3-endpoint", closed, env=env)
    assert down.returncode == 2
    assert "not reachable" in down.stderr


def test_s3_upload_and_download_stream_in_bounded_memory(s3: S3Server) -> None:
    """300 MB through S3: multipart upload of the encrypted stream and a streamed
    download, without the object ever sitting in memory."""
    target = s3_target(s3, "streaming")
    key = random_key()
    source = Generated(300 * 1000 * 1000)
    reader = EncryptingReader(source, key)
    with peak_rss_growth() as growth:
        stored = target.put("objects/big.lcb", reader)
    # Four 8 MiB parts in memory plus boto3's copies: ~70 MiB measured; 300 MB if whole.
    assert growth[0] < 120 * 1024 * 1024, f"upload grew RSS by {growth[0] / 2**20:.0f} MiB"
    assert stored == encrypted_size(300 * 1000 * 1000)
    sink = HashingSink()
    with peak_rss_growth() as growth, target.open("objects/big.lcb") as src:
        decrypt_stream(src, sink, Keyring([key]))
    assert growth[0] < 48 * 1024 * 1024, f"download grew RSS by {growth[0] / 2**20:.0f} MiB"
    assert sink.sha.hexdigest() == source.sha.hexdigest()
