"""Clips kept in S3 (LIVECAM_S3_*) backed up, restored and verified, against a real S3
server (versitygw on loopback): the media store in one bucket, the backup in a local
directory or another bucket."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.backup.keys import load_keyring
from app.backup.manifest import Manifest, list_runs, read_manifest
from app.backup.run import RunOptions, backup_run
from app.backup.s3media import CLIPS_FOLDER, MediaObject, S3Media
from app.backup.targets import LocalTarget
from app.media_store import LocalMediaStore, S3MediaStore
from scripts.s3server import S3Server, running_s3
from tests.app.backup.helpers import Generated, flip, peak_rss_growth, run_cli, tree

MEDIA_BUCKET = "livecam-media"
BACKUP_BUCKET = "livecam-backups"
MiB = 1024 * 1024
#: Clip keys as the server makes them (app/clips.py storage_key), with their sizes.
CLIPS = {
    "clips/door/2030-01-02/e1.0123456789abcdef.mp4": 20 * 1000 * 1000,  # multipart
    "clips/door/2030-01-02/e2.fedcba9876543210.mp4": 70_000,
    "clips/yard/2030-01-03/e3.00112233aabbccdd.mp4": 1234,
}


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with running_s3(tmp_path_factory.mktemp("s3"), MEDIA_BUCKET, BACKUP_BUCKET) as server:
        yield server


def media_store(s3: S3Server, prefix: str) -> S3MediaStore:
    """The server's media store; 8 MiB parts so the big clip is a multipart object."""
    return S3MediaStore(
        MEDIA_BUCKET,
        prefix=prefix,
        endpoint_url=s3.endpoint_url,
        region=s3.region,
        access_key_id=s3.access_key,
        secret_access_key=s3.secret_key,
        multipart_threshold=8 * MiB,
        part_size=8 * MiB,
    )


def put_clips(s3: S3Server, prefix: str, workdir: Path) -> dict[str, bytes]:
    """Stores CLIPS through the media store, as the server does; key → bytes."""
    store = media_store(s3, prefix)
    staging = workdir / "staging"
    staging.mkdir(exist_ok=True)
    clips: dict[str, bytes] = {}
    for key, size in CLIPS.items():
        data = os.urandom(size)
        part = staging / "clip.part"
        part.write_bytes(data)
        store.put_file(key, part, "video/mp4")
        clips[key] = data
    # Something else in the bucket, outside clips/: not the backup's business.
    s3.client().put_object(Bucket=MEDIA_BUCKET, Key=f"{prefix}/other/notes.txt", Body=b"x")
    return clips


def s3_env(s3: S3Server, prefix: str) -> dict[str, str]:
    """The server's settings for clips in S3, and credentials for an S3 backup target."""
    return {
        "LIVECAM_S3_BUCKET": MEDIA_BUCKET,
        "LIVECAM_S3_PREFIX": prefix,
        "LIVECAM_S3_ENDPOINT_URL": s3.endpoint_url,
        "LIVECAM_S3_REGION": s3.region,
        "LIVECAM_S3_ACCESS_KEY_ID": s3.access_key,
        "LIVECAM_S3_SECRET_ACCESS_KEY": s3.secret_key,
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "AWS_REGION": s3.region,
        "LIVECAM_BACKUP_S3_ENDPOINT": s3.endpoint_url,
    }


def new_prefix() -> str:
    return f"site-{uuid.uuid4().hex[:8]}"


def small_data_dir(tmp_path: Path) -> Path:
    """A data directory whose clips are all in S3 (no local media/)."""
    data = tmp_path / "data"
    (data / "events/door/2030-01-02").mkdir(parents=True)
    (data / "events/door/2030-01-02/e1.jpg").write_bytes(os.urandom(3000))
    (data / "vapid.pem").write_bytes(b"vapid key")
    (data / "server.secret").write_bytes(b"secret")
    return data


def s3_objects(s3: S3Server, prefix: str) -> dict[str, bytes]:
    """Every object under ``prefix``/clips/ in the media bucket: key → bytes."""
    client = s3.client()
    listed = client.list_objects_v2(Bucket=MEDIA_BUCKET, Prefix=f"{prefix}/clips/")
    return {
        o["Key"][len(prefix) + 1 :]: client.get_object(Bucket=MEDIA_BUCKET, Key=o["Key"])[
            "Body"
        ].read()
        for o in listed.get("Contents", [])
    }


def manifests(target: Path, key_file: Path) -> list[Manifest]:
    local = LocalTarget(target)
    ring = load_keyring([key_file])
    return [read_manifest(local, run, ring) for run in list_runs(local)]


def test_clips_folder_is_the_servers() -> None:
    from app.clips import CLIPS_FOLDER as SERVER_CLIPS_FOLDER

    assert CLIPS_FOLDER == SERVER_CLIPS_FOLDER


def test_s3_clips_backed_up_incrementally_restored_and_verified(
    s3: S3Server, tmp_path: Path, data_dir: Path, key_file: Path
) -> None:
    prefix = new_prefix()
    clips = put_clips(s3, prefix, tmp_path)
    env = s3_env(s3, prefix)
    target = tmp_path / "backups"
    keys = ("--key-file", key_file)
    run = ("run", "--target", target, *keys, "--data", data_dir)

    first = run_cli(*run, env=env)
    assert first.returncode == 0, first.stderr
    assert f"clips from s3://{MEDIA_BUCKET}/{prefix}/clips/" in first.stdout
    assert ": 3\n" in first.stdout
    (m1,) = manifests(target, key_file)
    by_path = {e.path: e for e in m1.entries}
    listed = s3.client().list_objects_v2(Bucket=MEDIA_BUCKET, Prefix=f"{prefix}/")["Contents"]
    etags = {o["Key"][len(prefix) + 1 :]: o["ETag"].strip('"') for o in listed}
    for key, data in clips.items():
        entry = by_path[f"media/{key}"]
        assert entry.size == len(data)
        assert entry.etag == etags[key]
        assert entry.mode == 0o644
    assert "-" in by_path[f"media/{next(iter(CLIPS))}"].etag  # a multipart upload
    assert not any("other/notes.txt" in p for p in by_path)
    # The local files of the data directory are still in it.
    assert "media/door/2030-01-02/e1.abc.mp4" in by_path

    # Nothing changed: the second run stores nothing new and reuses every object.
    second = run_cli(*run, env=env)
    assert second.returncode == 0, second.stderr
    assert "stored 0 " in second.stdout
    m2 = manifests(target, key_file)[-1]
    assert {(e.path, e.object) for e in m2.entries} == {(e.path, e.object) for e in m1.entries}

    # One clip replaced by another of the same size (a new ETag), one deleted.
    changed, deleted = list(CLIPS)[1], list(CLIPS)[2]
    client = s3.client()
    new_bytes = os.urandom(CLIPS[changed])
    client.put_object(Bucket=MEDIA_BUCKET, Key=f"{prefix}/{changed}", Body=new_bytes)
    client.delete_object(Bucket=MEDIA_BUCKET, Key=f"{prefix}/{deleted}")
    third = run_cli(*run, env=env)
    assert third.returncode == 0, third.stderr
    m3 = manifests(target, key_file)[-1]
    assert m3.new_objects == 1
    new_paths = {e.path: e for e in m3.entries}
    assert f"media/{deleted}" not in new_paths
    assert new_paths[f"media/{changed}"].object != by_path[f"media/{changed}"].object

    # The latest run restores the bucket's clips as files, byte for byte, with their
    # last-modified times, where the local media store finds them.
    restored = tmp_path / "restored"
    result = run_cli("restore", "latest", "--to", restored, "--target", target, *keys, env=env)
    assert result.returncode == 0, result.stderr
    got = tree(restored)
    now_in_s3 = s3_objects(s3, prefix)
    assert set(now_in_s3) == {k for k in CLIPS if k != deleted}
    for key, data in now_in_s3.items():
        assert got[f"media/{key}"] == data, key
        entry = new_paths[f"media/{key}"]
        assert (restored / "media" / key).stat().st_mtime_ns == entry.mtime_ns
    assert got[f"media/{changed}"] == new_bytes
    local = LocalMediaStore(restored / "media")
    assert {o.key for o in local.list_objects(CLIPS_FOLDER)} == set(now_in_s3)
    big = next(iter(CLIPS))
    assert b"".join(local.open_range(big, 1000, 1999)) == clips[big][1000:2000]
    assert (
        got["media/door/2030-01-02/e1.abc.mp4"]
        == (data_dir / "media/door/2030-01-02/e1.abc.mp4").read_bytes()
    )

    # The first run still has the deleted clip and the replaced one as it was.
    first_dir = tmp_path / "restored-first"
    result = run_cli("restore", m1.run, "--to", first_dir, "--target", target, *keys, env=env)
    assert result.returncode == 0, result.stderr
    for key, data in clips.items():
        assert (first_dir / "media" / key).read_bytes() == data, key

    verify = run_cli("verify", "--all", "--target", target, *keys, env=env)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # Verify checks the clips' objects too: a flipped bit in the big clip is found.
    obj = target / by_path[f"media/{big}"].object
    obj.write_bytes(flip(obj.read_bytes(), 5_000_000))
    verify = run_cli("verify", m1.run, "--target", target, *keys, env=env)
    assert verify.returncode == 1
    assert f"DAMAGED {by_path[f'media/{big}'].object} (media/{big})" in verify.stdout


def test_s3_clips_to_s3_target_and_back_into_a_bucket(
    s3: S3Server, tmp_path: Path, key_file: Path
) -> None:
    prefix = new_prefix()
    clips = put_clips(s3, prefix, tmp_path)
    data = small_data_dir(tmp_path)
    env = s3_env(s3, prefix)
    keys = ("--key-file", key_file)
    target = f"s3://{BACKUP_BUCKET}/{prefix}"
    result = run_cli("run", "--target", target, *keys, "--data", data, "--no-database", env=env)
    assert result.returncode == 0, result.stderr
    again = run_cli("run", "--target", target, *keys, "--data", data, "--no-database", env=env)
    assert again.returncode == 0, again.stderr
    assert "stored 0 " in again.stdout
    verify = run_cli("verify", "--all", "--target", target, *keys, env=env)
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # Into a new site's bucket prefix: the clips go into S3, the rest into the directory.
    new_site = new_prefix()
    dest = tmp_path / "new-site"
    restore = run_cli(
        "restore", "latest", "--to", dest, "--to-s3", "--target", target, *keys,
        env={**env, "LIVECAM_S3_PREFIX": new_site},
    )  # fmt: skip
    assert restore.returncode == 0, restore.stderr
    assert f"3 clips put into s3://{MEDIA_BUCKET}/{new_site}/" in restore.stdout
    assert s3_objects(s3, new_site) == clips
    assert not (dest / "media").exists()
    assert tree(dest) == tree(data)
    # Without the S3 settings, --to-s3 is refused before anything is written.
    refused = run_cli(
        "restore", "latest", "--to", tmp_path / "x", "--to-s3", "--target", target, *keys,
        env={**env, "LIVECAM_S3_BUCKET": ""},
    )  # fmt: skip
    assert refused.returncode == 2
    assert "LIVECAM_S3_BUCKET" in refused.stderr
    assert not (tmp_path / "x").exists()


def test_unreachable_media_bucket_fails_the_run(
    s3: S3Server, tmp_path: Path, key_file: Path
) -> None:
    data = small_data_dir(tmp_path)
    target = tmp_path / "backups"
    env = {**s3_env(s3, "x"), "LIVECAM_S3_BUCKET": "no-such-media-bucket"}
    result = run_cli("run", "--target", target, "--key-file", key_file, "--data", data, env=env)
    assert result.returncode == 2
    assert "clips in S3" in result.stderr
    assert "does not exist" in result.stderr
    assert list_runs(LocalTarget(target)) == []
    # --no-s3-media: a backup of the rest is still possible.
    result = run_cli(
        "run", "--target", target, "--key-file", key_file, "--data", data, "--no-database",
        "--no-s3-media", env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(list_runs(LocalTarget(target))) == 1


def test_vanished_clip_is_skipped(s3: S3Server, tmp_path: Path) -> None:
    media = S3Media(media_store(s3, new_prefix()))
    gone = MediaObject("clips/door/2030-01-02/gone.mp4", 10, "etag", 0)
    assert media.get(gone) is None


def test_big_clip_streams_from_s3_in_bounded_memory(
    s3: S3Server, tmp_path: Path, key_file: Path
) -> None:
    """A 200 MB clip from the media bucket into a backup, never whole in memory."""
    prefix = new_prefix()
    size = 200 * 1000 * 1000
    clip = tmp_path / "big.part"
    source = Generated(size)
    with open(clip, "wb") as f:
        buffer = bytearray(MiB)
        while n := source.readinto(memoryview(buffer)):
            f.write(buffer[:n])
    store = media_store(s3, prefix)
    store.put_file("clips/door/2030-01-02/big.0011223344556677.mp4", clip, "video/mp4")
    clip.unlink()
    data = small_data_dir(tmp_path)
    target = LocalTarget(tmp_path / "backups")
    options = RunOptions(data, database_url="", progress=False, jobs=1, s3_media=S3Media(store))
    with peak_rss_growth() as growth:
        result = backup_run(target, load_keyring([key_file]), options)
    # Two 1 MiB cipher buffers and the HTTP reads; the clip is 200 MB.
    assert growth[0] < 48 * MiB, f"backup grew RSS by {growth[0] / MiB:.0f} MiB"
    assert result.s3_clips == 1
    entry = next(e for e in result.manifest.entries if e.path.startswith("media/clips/"))
    assert entry.size == size
    assert entry.sha256 == source.sha.hexdigest()
