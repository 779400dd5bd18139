"""``python -m app.backup`` end to end against a local directory target."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from app.backup.keys import load_keyring
from app.backup.manifest import Manifest, list_runs, read_manifest
from app.backup.targets import LocalTarget
from tests.app.backup.conftest import BACKED_UP_FILES, NOT_BACKED_UP
from tests.app.backup.helpers import flip, run_cli, tree

PASSPHRASE = "correct horse battery staple"


def backup(target: Path, key_file: Path, data_dir: Path, *extra: str | Path) -> str:
    """Runs a backup; returns the run name."""
    before = set(list_runs(LocalTarget(target))) if target.exists() else set()
    result = run_cli("run", "--target", target, "--key-file", key_file, "--data", data_dir, *extra)
    assert result.returncode == 0, result.stderr
    (run,) = set(list_runs(LocalTarget(target))) - before
    assert f"run {run}:" in result.stdout
    return run


def manifest(target: Path, run: str, *key_files: Path) -> Manifest:
    return read_manifest(LocalTarget(target), run, load_keyring(list(key_files)))


def object_path(target: Path, m: Manifest, path: str) -> Path:
    entry = next(e for e in m.entries if e.path == path)
    return target / entry.object


def assert_restored(restored: Path, data_dir: Path) -> None:
    got = tree(restored)
    want = tree(data_dir)
    assert set(got) == BACKED_UP_FILES | {"livecam.db"}
    for name in BACKED_UP_FILES:
        assert got[name] == want[name], name
        assert (restored / name).stat().st_mtime_ns == (data_dir / name).stat().st_mtime_ns
    assert stat.S_IMODE((restored / "vapid.pem").stat().st_mode) == 0o600
    with sqlite3.connect(restored / "livecam.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT count(*) FROM backup_probe").fetchone() == (100,)
        assert db.execute("SELECT count(*) FROM cameras").fetchone() is not None
    assert not any(p.name.startswith(".livecam-restore-") for p in restored.iterdir())


def test_keygen(tmp_path: Path) -> None:
    path = tmp_path / "new.key"
    result = run_cli("keygen", "--key-file", path)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_bytes()
    again = run_cli("keygen", "--key-file", path)
    assert again.returncode == 3
    assert "refusing to overwrite" in again.stderr
    assert path.read_bytes() == before


def test_help_documents_commands_examples_and_exit_codes() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for word in ("keygen", "run", "list", "verify", "restore", "examples:", "exit status"):
        assert word in result.stdout
    assert run_cli("restore", "--help").returncode == 0
    assert run_cli("frobnicate").returncode == 2


def test_run_list_verify_restore(tmp_path: Path, data_dir: Path, key_file: Path) -> None:
    target = tmp_path / "backups"
    run = backup(target, key_file, data_dir)
    m = manifest(target, run, key_file)
    assert {e.path for e in m.entries} == BACKED_UP_FILES | {"livecam.db"}
    assert not {e.path for e in m.entries} & NOT_BACKED_UP
    assert len(list((target / "objects").rglob("*.lcb"))) == len(m.entries)
    # Nothing of the plaintext is visible in the target.
    clip = (data_dir / "media/door/2030-01-02/e1.abc.mp4").read_bytes()
    stored = object_path(target, m, "media/door/2030-01-02/e1.abc.mp4").read_bytes()
    assert clip[1000:1100] not in stored

    listing = run_cli("list", "--target", target, "--key-file", key_file)
    assert listing.returncode == 0, listing.stderr
    line = next(li for li in listing.stdout.splitlines() if li.startswith(run))
    assert f" {len(m.entries)} " in line
    assert load_keyring([key_file]).current.key_id_hex in line
    # Without a key, list still shows the run and its key id.
    assert run in run_cli("list", "--target", target).stdout

    verify = run_cli("verify", "--target", target, "--key-file", key_file)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "verify OK" in verify.stdout

    restored = tmp_path / "restored"
    result = run_cli("restore", run, "--to", restored, "--target", target, "--key-file", key_file)
    assert result.returncode == 0, result.stderr
    assert_restored(restored, data_dir)


def test_second_run_stores_only_what_changed(
    tmp_path: Path, data_dir: Path, key_file: Path
) -> None:
    target = tmp_path / "backups"
    first = backup(target, key_file, data_dir)
    m1 = manifest(target, first, key_file)

    changed = data_dir / "media/door/2030-01-02/e2.def.mp4"
    changed.write_bytes(changed.read_bytes() + b"more")
    touched = data_dir / "events/door/2030-01-02/e1.jpg"
    os.utime(touched, ns=(1, 1_900_000_000_000_000_000))  # new mtime, same bytes
    (data_dir / "media/yard/2030-01-03/e3.123.mp4").unlink()
    added = data_dir / "media/yard/2030-01-04/e4.456.mp4"
    added.parent.mkdir()
    added.write_bytes(b"new clip")

    second = backup(target, key_file, data_dir)
    m2 = manifest(target, second, key_file)
    old = {e.path: e for e in m1.entries}
    new = {e.path: e for e in m2.entries}
    assert "media/yard/2030-01-03/e3.123.mp4" not in new
    assert new["media/yard/2030-01-04/e4.456.mp4"].object not in {e.object for e in m1.entries}
    assert (
        new["media/door/2030-01-02/e2.def.mp4"].object
        != old["media/door/2030-01-02/e2.def.mp4"].object
    )
    for same in ("media/door/2030-01-02/e1.abc.mp4", "vapid.pem", "livecam.db"):
        assert new[same].object == old[same].object, same
    assert (
        new["events/door/2030-01-02/e1.jpg"].object == old["events/door/2030-01-02/e1.jpg"].object
    )
    assert new["events/door/2030-01-02/e1.jpg"].mtime_ns == 1_900_000_000_000_000_000
    assert m2.new_objects == 2
    assert len(list((target / "objects").rglob("*.lcb"))) == len(m1.entries) + 2

    # The first run still restores the file the second one no longer has.
    restored = tmp_path / "restored-first"
    result = run_cli("restore", first, "--to", restored, "--target", target, "--key-file", key_file)
    assert result.returncode == 0, result.stderr
    assert (restored / "media/yard/2030-01-03/e3.123.mp4").is_file()
    latest = tmp_path / "restored-latest"
    result = run_cli(
        "restore", "latest", "--to", latest, "--target", target, "--key-file", key_file
    )
    assert result.returncode == 0, result.stderr
    assert (latest / "media/yard/2030-01-04/e4.456.mp4").read_bytes() == b"new clip"
    assert run_cli("verify", "--all", "--target", target, "--key-file", key_file).returncode == 0


def test_damaged_objects_reported_and_restore_refused(
    tmp_path: Path, data_dir: Path, key_file: Path
) -> None:
    target = tmp_path / "backups"
    run = backup(target, key_file, data_dir)
    m = manifest(target, run, key_file)
    flipped = object_path(target, m, "media/door/2030-01-02/e1.abc.mp4")
    flipped.write_bytes(flip(flipped.read_bytes(), 2_000_000))
    truncated = object_path(target, m, "events/yard/2030-01-03/e3.jpg")
    truncated.write_bytes(truncated.read_bytes()[:-40])
    missing = object_path(target, m, "server.secret")
    missing.unlink()

    verify = run_cli("verify", run, "--target", target, "--key-file", key_file)
    assert verify.returncode == 1
    report = verify.stdout

    def rel(path: Path) -> str:
        return path.relative_to(target).as_posix()

    assert f"DAMAGED {rel(flipped)} (media/door/2030-01-02/e1.abc.mp4)" in report
    assert "fails authentication" in report
    assert f"DAMAGED {rel(truncated)} (events/yard/2030-01-03/e3.jpg)" in report
    assert "cut short" in report
    assert f"MISSING {rel(missing)} (server.secret)" in report
    assert "3 PROBLEMS" in report

    restored = tmp_path / "restored"
    result = run_cli("restore", run, "--to", restored, "--target", target, "--key-file", key_file)
    assert result.returncode == 1
    assert "DAMAGED" in result.stderr or "MISSING" in result.stderr
    assert not restored.exists()
    # Into an existing empty directory: it stays empty (no partial or staging files).
    restored.mkdir()
    result = run_cli("restore", run, "--to", restored, "--target", target, "--key-file", key_file)
    assert result.returncode == 1
    assert list(restored.iterdir()) == []


def test_restore_names_the_tampered_object(tmp_path: Path, data_dir: Path, key_file: Path) -> None:
    target = tmp_path / "backups"
    run = backup(target, key_file, data_dir)
    m = manifest(target, run, key_file)
    bad = object_path(target, m, "vapid.pem")
    bad.write_bytes(flip(bad.read_bytes(), 150))
    restored = tmp_path / "restored"
    result = run_cli("restore", run, "--to", restored, "--target", target, "--key-file", key_file)
    assert result.returncode == 1
    assert bad.relative_to(target).as_posix() in result.stderr
    assert "(vapid.pem)" in result.stderr
    assert not restored.exists()


def test_swapped_objects_detected(tmp_path: Path, data_dir: Path, key_file: Path) -> None:
    target = tmp_path / "backups"
    run = backup(target, key_file, data_dir)
    m = manifest(target, run, key_file)
    a = object_path(target, m, "events/door/2030-01-02/e1.jpg")
    b = object_path(target, m, "events/yard/2030-01-03/e3.jpg")
    a_bytes, b_bytes = a.read_bytes(), b.read_bytes()
    a.write_bytes(b_bytes)
    b.write_bytes(a_bytes)
    verify = run_cli("verify", "--target", target, "--key-file", key_file)
    assert verify.returncode == 1
    assert verify.stdout.count("objects were swapped") == 2


def test_restore_refuses_non_empty_dir_without_force(
    tmp_path: Path, data_dir: Path, key_file: Path
) -> None:
    target = tmp_path / "backups"
    run = backup(target, key_file, data_dir)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "vapid.pem").write_text("old")
    (dest / "livecam.db-wal").write_bytes(b"stale wal")
    (dest / "keep.txt").write_text("mine")
    result = run_cli("restore", run, "--to", dest, "--target", target, "--key-file", key_file)
    assert result.returncode == 2
    assert "not empty" in result.stderr
    assert "--force" in result.stderr
    assert (dest / "vapid.pem").read_text() == "old"

    forced = run_cli(
        "restore", run, "--to", dest, "--force", "--target", target, "--key-file", key_file
    )
    assert forced.returncode == 0, forced.stderr
    assert (dest / "vapid.pem").read_bytes() == (data_dir / "vapid.pem").read_bytes()
    assert (dest / "keep.txt").read_text() == "mine"
    assert not (dest / "livecam.db-wal").exists()  # would be replayed into the restored DB


def test_key_rotation(tmp_path: Path, data_dir: Path, key_file: Path) -> None:
    target = tmp_path / "backups"
    old_run = backup(target, key_file, data_dir)
    new_key = tmp_path / "keys" / "2031.key"
    assert run_cli("keygen", "--key-file", new_key).returncode == 0
    new_run = backup(target, new_key, data_dir, "--key-file", key_file)

    old_id = load_keyring([key_file]).current.key_id_hex
    new_id = load_keyring([new_key]).current.key_id_hex
    m_new = manifest(target, new_run, new_key)
    assert m_new.key_id == new_id
    assert {e.key_id for e in m_new.entries} == {new_id}  # nothing reused across keys
    assert manifest(target, old_run, key_file).key_id == old_id

    listing = run_cli("list", "--target", target, "--key-file", new_key, "--key-file", key_file)
    assert old_id in listing.stdout
    assert new_id in listing.stdout

    ring = ("--key-file", new_key, "--key-file", key_file)
    assert run_cli("verify", "--all", "--target", target, *ring).returncode == 0
    restored = tmp_path / "restored-old"
    result = run_cli("restore", old_run, "--to", restored, "--target", target, *ring)
    assert result.returncode == 0, result.stderr
    assert_restored(restored, data_dir)

    # Only the new key: the new run restores, the old one names the key it needs.
    only_new = run_cli(
        "restore", old_run, "--to", tmp_path / "x", "--target", target, "--key-file", new_key
    )
    assert only_new.returncode == 3
    assert old_id in only_new.stderr
    assert not (tmp_path / "x").exists()
    result = run_cli(
        "restore", new_run, "--to", tmp_path / "y", "--target", target, "--key-file", new_key
    )
    assert result.returncode == 0, result.stderr
    verify = run_cli("verify", old_run, "--target", target, "--key-file", new_key)
    assert verify.returncode == 3
    assert f"NO-KEY manifests/{old_run}.lcb" in verify.stdout
    listing = run_cli("list", "--target", target, "--key-file", new_key)
    old_line = next(li for li in listing.stdout.splitlines() if li.startswith(old_run + " "))
    assert "(not in keyring)" in old_line


def test_passphrase_backups(tmp_path: Path, data_dir: Path) -> None:
    target = tmp_path / "backups"
    env = {"LIVECAM_BACKUP_PASSPHRASE": PASSPHRASE}
    args = ("--target", target, "--passphrase")
    first = run_cli("run", *args, "--data", data_dir, env=env)
    assert first.returncode == 0, first.stderr
    second = run_cli("run", *args, "--data", data_dir, env=env)
    assert second.returncode == 0, second.stderr
    assert "stored 0 " in second.stdout  # same passphrase: the first run's salt and objects

    restored = tmp_path / "restored"
    result = run_cli("restore", "latest", "--to", restored, *args, env=env)
    assert result.returncode == 0, result.stderr
    assert_restored(restored, data_dir)

    wrong = run_cli(
        "restore", "latest", "--to", tmp_path / "w", *args,
        env={"LIVECAM_BACKUP_PASSPHRASE": "not the passphrase"},
    )  # fmt: skip
    assert wrong.returncode == 3
    assert "wrong passphrase" in wrong.stderr
    assert not (tmp_path / "w").exists()
    no_pass = run_cli("verify", "--target", target, "--passphrase", env={})
    assert no_pass.returncode == 3
    assert "LIVECAM_BACKUP_PASSPHRASE" in no_pass.stderr


def test_key_file_readable_by_others_refused(
    tmp_path: Path, data_dir: Path, key_file: Path
) -> None:
    key_file.chmod(0o644)
    target = tmp_path / "backups"
    result = run_cli("run", "--target", target, "--key-file", key_file, "--data", data_dir)
    assert result.returncode == 3
    assert "chmod 600" in result.stderr
    assert not (target / "manifests").exists()


def test_usage_errors(tmp_path: Path, data_dir: Path, key_file: Path) -> None:
    target = tmp_path / "backups"
    backup(target, key_file, data_dir)
    no_run = run_cli(
        "restore", "20000101T000000Z", "--to", tmp_path / "r", "--target", target,
        "--key-file", key_file,
    )  # fmt: skip
    assert no_run.returncode == 2
    assert "no run" in no_run.stderr
    no_target = run_cli("verify", "--target", tmp_path / "nowhere", "--key-file", key_file)
    assert no_target.returncode == 2
    assert "does not exist" in no_target.stderr
    no_key = run_cli("run", "--target", target, "--data", data_dir)
    assert no_key.returncode == 3
    no_data = run_cli(
        "run", "--target", target, "--key-file", key_file, "--data", tmp_path / "nodata"
    )
    assert no_data.returncode == 2
    assert "data directory" in no_data.stderr


def test_damaged_manifest_reported(tmp_path: Path, data_dir: Path, key_file: Path) -> None:
    target = tmp_path / "backups"
    run = backup(target, key_file, data_dir)
    path = target / "manifests" / f"{run}.lcb"
    path.write_bytes(path.read_bytes()[:-1])
    verify = run_cli("verify", run, "--target", target, "--key-file", key_file)
    assert verify.returncode == 1
    assert f"DAMAGED manifests/{run}.lcb" in verify.stdout
    listing = run_cli("list", "--target", target, "--key-file", key_file)
    assert "manifest damaged" in listing.stdout
    # A new run does not trust it: it stores everything again and still succeeds.
    second = backup(target, key_file, data_dir)
    assert manifest(target, second, key_file).new_objects == len(BACKED_UP_FILES) + 1


@pytest.mark.parametrize("jobs", ["1", "8"])
def test_jobs(tmp_path: Path, data_dir: Path, key_file: Path, jobs: str) -> None:
    target = tmp_path / "backups"
    run = backup(target, key_file, data_dir, "--jobs", jobs)
    assert {e.path for e in manifest(target, run, key_file).entries} == BACKED_UP_FILES | {
        "livecam.db"
    }
