"""``python -m app.backup prune``: old runs go, objects a kept run shares stay, orphans go
once they are a day old, a dry run changes nothing; a local directory and a real S3
server (versitygw on loopback) as targets."""

from __future__ import annotations

import io
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.backup.errors import BackupError
from app.backup.format import EncryptingReader
from app.backup.keys import Keyring, load_keyring
from app.backup.manifest import Manifest, list_runs, object_name, read_manifest
from app.backup.prune import PrunePolicy, plan_prune
from app.backup.run import RunOptions, backup_run
from app.backup.streams import Readable
from app.backup.targets import LocalTarget, S3Target, Target
from scripts.s3server import S3Server, running_s3
from tests.app.backup.conftest import BACKED_UP_FILES
from tests.app.backup.helpers import run_cli, tree

BUCKET = "livecam-prune"
DAY = 86400.0
CHANGING = "media/door/2030-01-02/e2.def.mp4"
ADDED = "media/yard/2030-01-04/e4.456.mp4"
SHARED = "media/door/2030-01-02/e1.abc.mp4"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with running_s3(tmp_path_factory.mktemp("s3"), BUCKET) as server:
        yield server


@dataclass
class Site:
    """A backup target seen three ways: the library's Target, the CLI's --target and
    environment, and a way to age an object (as if written ``days`` ago)."""

    target: Target
    arg: str
    env: dict[str, str]
    age: Callable[[str, float], None]

    def names(self) -> dict[str, int]:
        """Every object and manifest in the target: name → size."""
        found = {o.name: o.size for o in self.target.list("objects")}
        found.update({o.name: o.size for o in self.target.list("manifests")})
        return found


def local_site(tmp_path: Path) -> Site:
    root = tmp_path / "backups"
    target = LocalTarget(root)
    target.check(create=True)

    def age(name: str, days: float) -> None:
        when = time.time() - days * DAY
        os.utime(root / name, (when, when))

    return Site(target, str(root), {}, age)


def s3_site(s3: S3Server) -> Site:
    prefix = f"site-{uuid.uuid4().hex[:8]}"
    target = S3Target(BUCKET, prefix, endpoint_url=s3.endpoint_url, region=s3.region)
    target.client = s3.client()
    env = {
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "AWS_REGION": s3.region,
        "LIVECAM_BACKUP_S3_ENDPOINT": s3.endpoint_url,
    }

    def age(name: str, days: float) -> None:
        # versitygw's posix backend reports a file's mtime as the object's LastModified.
        when = time.time() - days * DAY
        os.utime(s3.root / BUCKET / prefix / name, (when, when))

    return Site(target, f"s3://{BUCKET}/{prefix}", env, age)


@pytest.fixture(params=["local", "s3"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Site:
    if request.param == "local":
        return local_site(tmp_path)
    return s3_site(request.getfixturevalue("s3"))


def backup_at(site: Site, keyring: Keyring, data_dir: Path, days_ago: float) -> Manifest:
    """A run named as if it started ``days_ago`` days ago."""
    when = datetime.now(UTC) - timedelta(days=days_ago)
    options = RunOptions(data_dir, progress=False)
    return backup_run(site.target, keyring, options, now=when).manifest


def put_orphan(site: Site, keyring: Keyring) -> str:
    """An object no manifest lists, as a run that failed before its manifest leaves."""
    reader = EncryptingReader(io.BytesIO(os.urandom(5000)), keyring.current)
    name = object_name(reader.file_id)
    site.target.put(name, reader)
    return name


def objects_of(*manifests: Manifest) -> set[str]:
    return {e.object for m in manifests for e in m.entries}


def prune(site: Site, key_file: Path, *args: str) -> str:
    result = run_cli("prune", "--target", site.arg, "--key-file", key_file, *args, env=site.env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_prune_keeps_shared_objects_and_removes_orphans(
    site: Site, tmp_path: Path, data_dir: Path, key_file: Path
) -> None:
    keyring = load_keyring([key_file])
    # Four runs, 40, 30, 20 and 10 days ago; one clip changes before each later run and
    # one is added, so each run stores one new object and shares every other one.
    changing = data_dir / CHANGING
    a = backup_at(site, keyring, data_dir, 40)
    changing.write_bytes(changing.read_bytes() + b"b")
    b = backup_at(site, keyring, data_dir, 30)
    (data_dir / ADDED).parent.mkdir(parents=True)
    (data_dir / ADDED).write_bytes(b"added before run c")
    c = backup_at(site, keyring, data_dir, 20)
    snapshot_c = tree(data_dir)
    changing.write_bytes(changing.read_bytes() + b"d")
    d = backup_at(site, keyring, data_dir, 10)
    assert [m.new_objects for m in (b, c, d)] == [1, 1, 1]
    old_orphan = put_orphan(site, keyring)
    site.age(old_orphan, 2)
    young_orphan = put_orphan(site, keyring)
    foreign = "objects/notes.txt"  # not an object name: never touched
    site.target.put(foreign, io.BytesIO(b"the operator's note"))
    site.age(foreign, 30)
    before = site.names()

    # A dry run says what would go and changes nothing.
    out = prune(site, key_file, "--keep-last", "1", "--keep-days", "35", "--dry-run")
    assert f"would remove  {a.run}" in out
    for kept in (b, c, d):
        assert f"keep          {kept.run}" in out
    assert f"{d.run}  (newest)" in out
    assert f"{b.run}  (within 35 days)" in out
    assert "dry run: would remove 1 runs, 1 objects" in out
    assert "1 orphan objects" in out
    assert "left alone: 1 unlisted objects younger than 24 h" in out
    assert site.names() == before

    # Keep the last run and those of 35 days: run a goes with the one object only it had.
    out = prune(site, key_file, "--keep-last", "1", "--keep-days", "35")
    assert f"remove        {a.run}" in out
    assert "removed 1 runs, 1 objects" in out
    assert list_runs(site.target) == [b.run, c.run, d.run]
    left = set(site.names())
    only_a = objects_of(a) - objects_of(b, c, d)
    assert len(only_a) == 1
    assert not only_a & left
    assert objects_of(b, c, d) <= left
    shared = next(e.object for e in a.entries if e.path == SHARED)
    assert shared in left  # stored by run a, listed by every run since
    assert old_orphan not in left
    assert young_orphan in left  # a run in progress may be writing it
    assert foreign in left

    # Keep the last two: run b goes, and its version of the changing clip.
    out = prune(site, key_file, "--keep-last", "2")
    assert list_runs(site.target) == [c.run, d.run]
    assert set(site.names()) == objects_of(c, d) | {
        f"manifests/{c.run}.lcb",
        f"manifests/{d.run}.lcb",
        young_orphan,
        foreign,
    }
    assert shared in site.names()

    # The kept runs still verify and restore, byte for byte.
    keys = ("--target", site.arg, "--key-file", key_file)
    verify = run_cli("verify", "--all", *keys, env=site.env)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    restored = tmp_path / "restored-c"
    result = run_cli("restore", c.run, "--to", restored, *keys, env=site.env)
    assert result.returncode == 0, result.stderr
    got = tree(restored)
    for name in BACKED_UP_FILES | {ADDED}:
        assert got[name] == snapshot_c[name], name
    # Nothing left to remove: a second prune is a no-op.
    assert "removed 0 runs, 0 objects" in prune(site, key_file, "--keep-last", "2")


def test_prune_refuses_a_run_it_cannot_decrypt(
    tmp_path: Path, data_dir: Path, key_file: Path
) -> None:
    site = local_site(tmp_path)
    old = backup_at(site, load_keyring([key_file]), data_dir, 30)
    new_key = tmp_path / "keys" / "2031.key"
    assert run_cli("keygen", "--key-file", new_key).returncode == 0
    new = backup_at(site, load_keyring([new_key, key_file]), data_dir, 1)
    before = {n: (Path(site.arg) / n).read_bytes() for n in site.names()}

    refused = run_cli("prune", "--target", site.arg, "--key-file", new_key, "--keep-last", "1")
    assert refused.returncode == 3
    assert old.run in refused.stderr
    assert old.key_id in refused.stderr  # names the key it needs
    assert "nothing was removed" in refused.stderr
    assert {n: (Path(site.arg) / n).read_bytes() for n in site.names()} == before

    # With both keys it goes ahead; the new run (no object shared across keys) is whole.
    both = ("--key-file", new_key, "--key-file", key_file)
    result = run_cli("prune", "--target", site.arg, *both, "--keep-last", "1")
    assert result.returncode == 0, result.stderr
    assert list_runs(site.target) == [new.run]
    assert set(site.names()) == objects_of(new) | {f"manifests/{new.run}.lcb"}
    assert run_cli("verify", "--target", site.arg, "--key-file", new_key).returncode == 0


def test_prune_refuses_a_damaged_manifest(tmp_path: Path, data_dir: Path, key_file: Path) -> None:
    site = local_site(tmp_path)
    keyring = load_keyring([key_file])
    first = backup_at(site, keyring, data_dir, 30)
    backup_at(site, keyring, data_dir, 1)
    path = Path(site.arg) / f"manifests/{first.run}.lcb"
    path.write_bytes(path.read_bytes()[:-1])
    before = site.names()
    result = run_cli("prune", "--target", site.arg, "--key-file", key_file, "--keep-last", "1")
    assert result.returncode == 1
    assert f"manifest of run {first.run} is damaged" in result.stderr
    assert site.names() == before


def test_prune_usage(tmp_path: Path, key_file: Path) -> None:
    target = tmp_path / "backups"
    target.mkdir()
    base = ("prune", "--target", target, "--key-file", key_file)
    nothing = run_cli(*base)
    assert nothing.returncode == 2
    assert "--keep-last" in nothing.stderr
    assert run_cli(*base, "--keep-last", "0").returncode == 2
    assert run_cli(*base, "--keep-days", "0").returncode == 2
    no_key = run_cli("prune", "--target", target, "--keep-last", "3")
    assert no_key.returncode == 3
    empty = run_cli(*base, "--keep-last", "3")
    assert empty.returncode == 0, empty.stderr
    assert "removed 0 runs" in empty.stdout
    help_text = run_cli("prune", "--help").stdout
    assert "--dry-run" in help_text
    assert "1 day" in help_text


def test_plan_keeps_the_newest_run_whatever_the_policy(
    tmp_path: Path, data_dir: Path, key_file: Path
) -> None:
    site = local_site(tmp_path)
    keyring = load_keyring([key_file])
    runs = [backup_at(site, keyring, data_dir, days).run for days in (300, 200, 100)]
    plan = plan_prune(site.target, keyring, PrunePolicy(keep_days=1))
    assert plan.keep == {runs[-1]: "newest"}
    assert plan.remove == runs[:-1]
    assert plan.objects == []  # nothing changed between the runs: all objects shared


def test_local_and_s3_leftovers_of_interrupted_writes(tmp_path: Path, s3: S3Server) -> None:
    local = local_site(tmp_path)
    old = Path(local.arg) / "objects/ab/.abcd.lcb.1234.tmp"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"half")
    local.age("objects/ab/.abcd.lcb.1234.tmp", 2)
    young = Path(local.arg) / "objects/ab/.abce.lcb.5678.tmp"
    young.write_bytes(b"half")
    assert local.target.sweep_partial(DAY) == 1
    assert not old.exists()
    assert young.exists()

    remote = s3_site(s3)
    assert isinstance(remote.target, S3Target)
    client = remote.target.client
    key = f"{remote.target.prefix}objects/ab/abcd.lcb"
    client.create_multipart_upload(Bucket=BUCKET, Key=key)
    assert remote.target.sweep_partial(DAY) == 0  # young: may be a run's upload
    assert remote.target.sweep_partial(-60) == 1
    uploads = client.list_multipart_uploads(Bucket=BUCKET, Prefix=remote.target.prefix)
    assert uploads.get("Uploads", []) == []


class RacingTarget(LocalTarget):
    """A local target where, as the run stores its first object, a prune removes
    ``victim`` (an object the run reuses)."""

    def __init__(self, root: Path, victim: str) -> None:
        super().__init__(root)
        self.victim: str | None = victim

    def put(self, name: str, src: Readable) -> int:
        if self.victim is not None and name.startswith("objects/"):
            self.delete([self.victim])
            self.victim = None
        return super().put(name, src)


def test_run_never_lists_an_object_pruned_while_it_ran(
    tmp_path: Path, data_dir: Path, key_file: Path
) -> None:
    keyring = load_keyring([key_file])
    site = local_site(tmp_path)
    first = backup_at(site, keyring, data_dir, 1)
    reused = next(e.object for e in first.entries if e.path == "vapid.pem")
    changing = data_dir / CHANGING
    changing.write_bytes(changing.read_bytes() + b"x")  # so the run stores something
    racing = RacingTarget(Path(site.arg), reused)
    with pytest.raises(BackupError, match="removed while it ran"):
        backup_run(racing, keyring, RunOptions(data_dir, progress=False))
    assert list_runs(site.target) == [first.run]
    # The next run stores the missing file again and is whole.
    second = backup_run(site.target, keyring, RunOptions(data_dir, progress=False)).manifest
    entry = next(e for e in second.entries if e.path == "vapid.pem")
    assert entry.object != reused
    assert read_manifest(site.target, second.run, keyring).run == second.run
