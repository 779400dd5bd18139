"""The media stores (app/media_store.py): a local directory and a real S3 server
(versitygw on loopback): put, size, ranges in chunks, delete, list, clear errors."""

from __future__ import annotations

import errno
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.media_store import (
    LocalMediaStore,
    MediaNotFound,
    MediaStore,
    MediaStoreError,
    S3MediaStore,
    StorageFull,
    make_media_store,
)
from app.settings import ConfigError, Settings, load_settings
from scripts.s3server import S3Server, running_s3
from tests.app.clip_helpers import BUCKET
from tests.app.helpers import API_KEY, API_SECRET, closed_port, make_settings

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with running_s3(tmp_path_factory.mktemp("s3"), BUCKET) as server:
        yield server


def s3_store(s3: S3Server, **kwargs: object) -> S3MediaStore:
    return S3MediaStore(
        BUCKET,
        prefix=f"t-{uuid.uuid4().hex[:8]}/",
        endpoint_url=s3.endpoint_url,
        region=s3.region,
        access_key_id=s3.access_key,
        secret_access_key=s3.secret_key,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> MediaStore:
    if request.param == "local":
        return LocalMediaStore(tmp_path / "media")
    return s3_store(request.getfixturevalue("s3"))


def staged(tmp_path: Path, data: bytes, name: str = "clip.part") -> Path:
    path = tmp_path / "uploads" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --- both stores -----------------------------------------------------------------------


def test_put_size_read_delete(store: MediaStore, tmp_path: Path) -> None:
    store.check()
    data = os.urandom(700_001)
    key = "clips/door/2030-01-02/e1.0123456789abcdef.mp4"
    assert store.size(key) is None
    store.put_file(key, staged(tmp_path, data), "video/mp4")
    assert store.size(key) == len(data)
    assert b"".join(store.open_range(key, 0, len(data) - 1)) == data
    assert b"".join(store.open_range(key, 123, 456)) == data[123:457]
    assert [o.key for o in store.list_objects("clips")] == [key]
    assert store.delete(key)
    assert store.size(key) is None
    with pytest.raises(MediaNotFound):
        store.open_range(key, 0, 10)


def test_a_range_streams_in_chunks_never_the_whole_object(
    store: MediaStore, tmp_path: Path
) -> None:
    data = os.urandom(300_000)
    key = "clips/door/2030-01-02/e2.0123456789abcdef.mp4"
    store.put_file(key, staged(tmp_path, data), "video/mp4")
    chunks = list(store.open_range(key, 1000, 250_999, chunk_size=64 * 1024))
    assert b"".join(chunks) == data[1000:251_000]
    assert len(chunks) >= 4
    assert max(len(c) for c in chunks) <= 64 * 1024


def test_a_put_replaces_and_listing_sees_only_the_folder(store: MediaStore, tmp_path: Path) -> None:
    key = "clips/door/2030-01-02/e3.0123456789abcdef.mp4"
    store.put_file(key, staged(tmp_path, b"old"), "video/mp4")
    store.put_file(key, staged(tmp_path, b"newer"), "video/mp4")
    assert b"".join(store.open_range(key, 0, 4)) == b"newer"
    store.put_file("backups/other.bin", staged(tmp_path, b"not a clip"), "application/x")
    listed = list(store.list_objects("clips"))
    assert [(o.key, o.size) for o in listed] == [(key, 5)]
    assert abs(listed[0].modified - time.time()) < 120


def test_unsafe_keys_are_refused(store: MediaStore, tmp_path: Path) -> None:
    for key in ("../escape.mp4", "/abs.mp4", "clips/../../x", "clips//x", ""):
        with pytest.raises(ValueError, match="unsafe"):
            store.put_file(key, staged(tmp_path, b"x"), "video/mp4")


# --- local -------------------------------------------------------------------------------


def test_local_put_moves_the_staged_file_atomically(tmp_path: Path) -> None:
    store = LocalMediaStore(tmp_path / "media")
    source = staged(tmp_path, b"abc")
    store.put_file("clips/a/b.mp4", source, "video/mp4")
    assert not source.exists()
    assert (tmp_path / "media" / "clips" / "a" / "b.mp4").read_bytes() == b"abc"
    assert store.delete("clips/a/b.mp4")
    assert not (tmp_path / "media" / "clips").exists()  # empty folders go too
    assert not store.delete("clips/a/b.mp4")


def test_local_put_across_file_systems_copies_through_a_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalMediaStore(tmp_path / "media")
    source = staged(tmp_path, b"x" * 5000)
    real_replace = os.replace
    calls: list[str] = []

    def cross_device(src: str | Path, dst: str | Path) -> None:
        calls.append(Path(src).name)
        if Path(src) == source:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", cross_device)
    store.put_file("clips/a/c.mp4", source, "video/mp4")
    assert (tmp_path / "media" / "clips" / "a" / "c.mp4").read_bytes() == b"x" * 5000
    assert calls[0] == "clip.part"
    assert calls[1].startswith(".c.mp4.")  # the temp file renamed into place
    assert [p.name for p in (tmp_path / "media" / "clips" / "a").iterdir()] == ["c.mp4"]


def test_local_disk_full_is_storage_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalMediaStore(tmp_path / "media")

    def full(src: str | Path, dst: str | Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(StorageFull):
        store.put_file("clips/a/d.mp4", staged(tmp_path, b"x"), "video/mp4")


def test_local_sweep_removes_old_temp_files_only(tmp_path: Path) -> None:
    store = LocalMediaStore(tmp_path / "media")
    folder = tmp_path / "media" / "clips" / "a"
    folder.mkdir(parents=True)
    old, young = folder / ".x.mp4.1.tmp", folder / ".y.mp4.2.tmp"
    old.write_bytes(b"1")
    young.write_bytes(b"2")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert store.sweep_partial("clips", 3600) == 1
    assert not old.exists()
    assert young.exists()
    assert list(store.list_objects("clips")) == []  # temp files are not objects


def test_local_check_refuses_an_unwritable_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(MediaStoreError, match="not writable"):
        LocalMediaStore(blocker / "media").check()


# --- S3 ----------------------------------------------------------------------------------


def test_s3_big_files_go_up_in_parts(s3: S3Server, tmp_path: Path) -> None:
    store = s3_store(s3, multipart_threshold=5 * MiB, part_size=5 * MiB)
    data = os.urandom(12 * MiB + 7)
    key = "clips/door/2030-01-02/big.0123456789abcdef.mp4"
    source = staged(tmp_path, data)
    store.put_file(key, source, "video/mp4")
    head = s3.client().head_object(Bucket=BUCKET, Key=store.prefix + key)
    assert head["ETag"].strip('"').endswith("-3")  # a multipart object of three parts
    assert head["ContentLength"] == len(data)
    assert (
        b"".join(store.open_range(key, 5 * MiB - 10, 5 * MiB + 9))
        == data[5 * MiB - 10 : 5 * MiB + 10]
    )
    assert source.exists()  # S3 copies; the caller removes the staging file


def test_s3_prefix_keeps_keys_apart(s3: S3Server, tmp_path: Path) -> None:
    store = s3_store(s3)
    store.put_file("clips/a/x.mp4", staged(tmp_path, b"1"), "video/mp4")
    keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert f"{store.prefix}clips/a/x.mp4" in keys
    assert store.describe() == f"s3://{BUCKET}/{store.prefix} at {s3.endpoint_url}"


def test_s3_wrong_credentials_are_a_clear_error(s3: S3Server) -> None:
    store = S3MediaStore(
        BUCKET,
        endpoint_url=s3.endpoint_url,
        region=s3.region,
        access_key_id=s3.access_key,
        secret_access_key="wrong-secret-0123456789",
    )
    with pytest.raises(MediaStoreError, match=r"S3 refused access.*LIVECAM_S3_ACCESS_KEY_ID"):
        store.check()


def test_s3_missing_bucket_is_a_clear_error(s3: S3Server) -> None:
    store = S3MediaStore(
        "no-such-bucket",
        endpoint_url=s3.endpoint_url,
        region=s3.region,
        access_key_id=s3.access_key,
        secret_access_key=s3.secret_key,
    )
    with pytest.raises(MediaStoreError, match="'no-such-bucket' does not exist"):
        store.check()


def test_s3_unreachable_is_a_clear_error() -> None:
    store = S3MediaStore(
        BUCKET,
        endpoint_url=f"http://127.0.0.1:{closed_port()}",
        access_key_id="k",
        secret_access_key="s",
    )
    with pytest.raises(MediaStoreError, match=r"not reachable.*LIVECAM_S3_ENDPOINT_URL"):
        store.check()


def test_the_app_does_not_start_on_an_unusable_bucket(
    s3: S3Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(
        tmp_path / "data",
        s3_bucket=BUCKET,
        s3_endpoint_url=s3.endpoint_url,
        s3_access_key_id=s3.access_key,
        s3_secret_access_key="wrong-secret-0123456789",
    )
    app = create_app(settings)
    with pytest.raises(MediaStoreError, match="S3 refused access"), TestClient(app):
        pass
    assert "media storage is not usable: S3 refused access" in caplog.text


def test_s3_restart_is_survived(s3: S3Server, tmp_path: Path) -> None:
    """The S3 server goes away and comes back: a clear error meanwhile, then it works."""
    store = s3_store(s3)
    store.put_file("clips/a/r.mp4", staged(tmp_path, b"before"), "video/mp4")
    s3.stop()
    try:
        with pytest.raises(MediaStoreError):
            store.open_range("clips/a/r.mp4", 0, 5)
    finally:
        s3.start()
    assert b"".join(store.open_range("clips/a/r.mp4", 0, 5)) == b"before"


# --- settings ----------------------------------------------------------------------------


def test_the_store_follows_the_settings(tmp_path: Path) -> None:
    local = make_media_store(make_settings(tmp_path / "data"))
    assert isinstance(local, LocalMediaStore)
    assert local.root == (tmp_path / "data" / "media").resolve()
    remote = make_media_store(
        make_settings(tmp_path / "data", s3_bucket=BUCKET, s3_endpoint_url="http://127.0.0.1:9")
    )
    assert isinstance(remote, S3MediaStore)


def test_half_an_s3_key_pair_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    for name, value in {
        "LIVEKIT_API_KEY": API_KEY,
        "LIVEKIT_API_SECRET": API_SECRET,
        "LIVECAM_DATA": str(tmp_path / "data"),
        "LIVECAM_S3_BUCKET": BUCKET,
        "LIVECAM_S3_ACCESS_KEY_ID": "only-the-id",
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match="LIVECAM_S3_SECRET_ACCESS_KEY go together"):
        load_settings()
    monkeypatch.setenv("LIVECAM_S3_SECRET_ACCESS_KEY", "the-secret")
    settings: Settings = load_settings()
    assert settings.s3_bucket == BUCKET
    assert settings.clip_max_bytes == 4 * 1024**3
    assert settings.clip_retention_days == 30
    assert settings.upload_stale_hours == 48
    assert settings.media_max_gb == 0
