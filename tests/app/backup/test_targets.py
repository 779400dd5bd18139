"""Backup targets: atomic local writes, object names, target URLs."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from app.backup.errors import BackupError, ObjectNotFound, TargetError
from app.backup.targets import LocalTarget, S3Target, parse_target


class FailingSource:
    """Yields ``good`` bytes, then fails like a disk read error."""

    def __init__(self, good: int) -> None:
        self.left = good

    def read(self, size: int = -1, /) -> bytes:
        if self.left <= 0:
            raise BackupError("cannot read media/x.mp4: Input/output error")
        n = min(size, self.left)
        self.left -= n
        return b"x" * n


def test_interrupted_local_write_leaves_nothing(tmp_path: Path) -> None:
    target = LocalTarget(tmp_path / "t")
    target.check(create=True)
    with pytest.raises(BackupError, match="Input/output error"):
        target.put("objects/ab/abc.lcb", FailingSource(3_000_000))
    assert list(target.list("objects")) == []
    assert [p for p in (tmp_path / "t").rglob("*") if p.is_file()] == []
    assert not target.exists("objects/ab/abc.lcb")


def test_local_put_replaces_atomically_and_lists(tmp_path: Path) -> None:
    target = LocalTarget(tmp_path / "t")
    target.check(create=True)
    assert target.put("objects/ab/one.lcb", io.BytesIO(b"first")) == 5
    assert target.put("objects/ab/one.lcb", io.BytesIO(b"second!")) == 7
    with target.open("objects/ab/one.lcb") as f:
        assert f.read() == b"second!"
    (tmp_path / "t/objects/ab/.one.lcb.1234.tmp").write_bytes(b"half")  # a crashed write
    assert [(o.name, o.size) for o in target.list("objects")] == [("objects/ab/one.lcb", 7)]
    with pytest.raises(ObjectNotFound), target.open("objects/ab/two.lcb"):
        pass


@pytest.mark.parametrize("name", ["../x.lcb", "/abs.lcb", "objects/../../x", "a/.hidden", ""])
def test_unsafe_object_names_refused(tmp_path: Path, name: str) -> None:
    target = LocalTarget(tmp_path / "t")
    with pytest.raises(TargetError, match="invalid object name"):
        target.put(name, io.BytesIO(b"x"))
    assert not (tmp_path / "x.lcb").exists()


def test_parse_target() -> None:
    local = parse_target("/srv/backups")
    assert isinstance(local, LocalTarget)
    assert local.root == Path("/srv/backups")
    assert isinstance(parse_target("file:///srv/b"), LocalTarget)
    s3 = parse_target("s3://my-bucket/site/a/", s3_endpoint="http://127.0.0.1:9")
    assert isinstance(s3, S3Target)
    assert (s3.bucket, s3.prefix, s3.endpoint_url) == ("my-bucket", "site/a/", "http://127.0.0.1:9")
    with pytest.raises(TargetError, match="3–63"):
        parse_target("s3://ab/x")
    with pytest.raises(TargetError, match="name the bucket"):
        parse_target("s3:///x")
    with pytest.raises(TargetError, match="local directory or s3://"):
        parse_target("ftp://host/x")


def test_missing_local_target_refused_unless_created(tmp_path: Path) -> None:
    target = LocalTarget(tmp_path / "nope")
    with pytest.raises(TargetError, match="does not exist"):
        target.check(create=False)
    assert not (tmp_path / "nope").exists()
    target.check(create=True)
    assert (tmp_path / "nope").is_dir()
