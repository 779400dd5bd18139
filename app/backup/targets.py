"""Where backup files go: a local directory, or a bucket of S3-compatible object storage.

Objects are named by relative POSIX paths of safe parts (``manifests/<run>.lcb``,
``objects/ab/<file id>.lcb``). Both targets stream in both directions: ``put`` reads
its source as it goes (an ``EncryptingReader`` encrypts while the upload reads), ``open``
returns a stream the decryptor reads chunk by chunk; nothing is held whole in memory.
``list`` gives each object's size and modification time, ``delete`` and
``sweep_partial`` (leftovers of interrupted writes) serve ``prune``.

* ``LocalTarget``: a write goes to a hidden temp file in the object's directory, is
  fsynced and renamed into place (and the directory fsynced), so a crash or a full disk
  never leaves a half-written object under a real name.
* ``S3Target`` (``s3://bucket/prefix``): boto3's ``upload_fileobj`` with multipart parts of
  8 MiB above 8 MiB, at most 4 parts in memory per upload (with boto3's own copies, about
  70 MiB measured for a 1 GiB object, whatever its size); an object appears only when its
  upload completes. Endpoint from ``--s3-endpoint`` or
  ``$LIVECAM_BACKUP_S3_ENDPOINT`` (empty: AWS), region from ``--s3-region`` or
  ``$AWS_REGION``; credentials from ``$AWS_ACCESS_KEY_ID`` / ``$AWS_SECRET_ACCESS_KEY`` or
  boto3's usual chain (never from the command line, where other users could read them).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from app.backup.errors import ObjectNotFound, TargetError
from app.backup.streams import Readable, read_into

S3_ENDPOINT_ENV = "LIVECAM_BACKUP_S3_ENDPOINT"
COPY_BUFFER = 1024 * 1024
S3_PART_SIZE = 8 * 1024 * 1024
UPLOAD_PARTS_IN_MEMORY = 4
#: Keys per DeleteObjects request (S3's limit).
S3_DELETE_BATCH = 1000
_SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_TMP_SUFFIX = ".tmp"


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """An object in a target: its name (relative to the target), size in bytes, and when
    it was last written (Unix seconds; prune spares young unlisted objects by it)."""

    name: str
    size: int
    modified: float = 0.0


def check_name(name: str) -> str:
    """``name`` if it is a relative path of safe parts; TargetError otherwise."""
    path = PurePosixPath(name)
    if not path.parts or path.is_absolute() or not all(_SAFE_PART.match(p) for p in path.parts):
        raise TargetError(f"invalid object name {name!r}")
    return path.as_posix()


class Target(Protocol):
    """A place holding backup objects. Every method blocks."""

    def describe(self) -> str:
        """Where the objects are, for messages (no secrets)."""
        ...

    def check(self, *, create: bool) -> None:
        """Raises TargetError when the target cannot be used (``create``: make a missing
        local directory instead of refusing it)."""
        ...

    def put(self, name: str, src: Readable) -> int:
        """Stores everything ``src`` yields as ``name`` (replacing it); the bytes stored."""
        ...

    def open(self, name: str) -> contextlib.AbstractContextManager[Readable]:
        """The object's bytes as a stream; ObjectNotFound when there is none."""
        ...

    def exists(self, name: str) -> bool:
        """Whether an object ``name`` exists."""
        ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """The objects whose names start with ``prefix`` + "/" (any depth)."""
        ...

    def delete(self, names: Sequence[str]) -> None:
        """Deletes the objects ``names`` (one already gone is no error); TargetError
        when one cannot be deleted."""
        ...

    def sweep_partial(self, older_than_s: float) -> int:
        """Removes what interrupted writes left behind (hidden temp files of a local
        target, unfinished S3 multipart uploads) older than ``older_than_s`` seconds;
        how many."""
        ...


class LocalTarget:
    """Backup objects as files under a local directory."""

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()

    def describe(self) -> str:
        return str(self.root)

    def check(self, *, create: bool) -> None:
        if create:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise TargetError(f"cannot create {self.root}: {exc.strerror}") from None
        if not self.root.is_dir():
            raise TargetError(f"backup directory {self.root} does not exist")

    def _path(self, name: str) -> Path:
        return self.root.joinpath(*PurePosixPath(check_name(name)).parts)

    def put(self, name: str, src: Readable) -> int:
        target = self._path(name)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TargetError(f"cannot create {target.parent}: {exc.strerror}") from None
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}{_TMP_SUFFIX}")
        written = 0
        try:
            with open(tmp, "wb", buffering=0) as dst:
                buffer = bytearray(COPY_BUFFER)
                view = memoryview(buffer)
                while n := read_into(src, view):
                    dst.write(view[:n])
                    written += n
                os.fsync(dst.fileno())
            os.replace(tmp, target)
            _fsync_dir(target.parent)
        except OSError as exc:
            raise TargetError(f"cannot write {target}: {exc.strerror or exc}") from None
        finally:
            tmp.unlink(missing_ok=True)
        return written

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[Readable]:
        path = self._path(name)
        try:
            f = open(path, "rb")  # noqa: SIM115 (closed below, after the caller is done)
        except FileNotFoundError:
            raise ObjectNotFound(f"{name}: no such object in {self.root}") from None
        except OSError as exc:
            raise TargetError(f"cannot read {path}: {exc.strerror}") from None
        with f:
            yield f

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        top = self._path(prefix)
        if not top.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            for filename in sorted(filenames):
                if filename.startswith(".") and filename.endswith(_TMP_SUFFIX):
                    continue  # an interrupted write
                path = Path(dirpath, filename)
                with contextlib.suppress(FileNotFoundError):
                    info = path.stat()
                    name = path.relative_to(self.root).as_posix()
                    yield ObjectInfo(name, info.st_size, info.st_mtime)

    def delete(self, names: Sequence[str]) -> None:
        # Empty objects/<ab> directories stay: removing one could race with a run that
        # just made it to write an object there.
        for name in names:
            path = self._path(name)
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise TargetError(f"cannot delete {path}: {exc.strerror or exc}") from None

    def sweep_partial(self, older_than_s: float) -> int:
        limit = time.time() - older_than_s
        removed = 0
        for dirpath, _dirnames, filenames in os.walk(self.root):
            for filename in filenames:
                if not (filename.startswith(".") and filename.endswith(_TMP_SUFFIX)):
                    continue
                path = Path(dirpath, filename)
                with contextlib.suppress(FileNotFoundError):
                    if path.stat().st_mtime < limit:
                        path.unlink()
                        removed += 1
        return removed


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


_NOT_FOUND = ("404", "NoSuchKey", "NotFound")


class S3Target:
    """Backup objects in one bucket of S3-compatible storage, under a prefix."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str = "",
        region: str = "",
        part_size: int = S3_PART_SIZE,
    ) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        if not 3 <= len(bucket) <= 63:
            raise TargetError(f"S3 bucket name {bucket!r} must be 3–63 characters")
        self.bucket = bucket
        prefix = prefix.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self.endpoint_url = endpoint_url
        kwargs: dict[str, Any] = {
            "config": Config(
                connect_timeout=10,
                read_timeout=120,
                retries={"max_attempts": 5, "mode": "standard"},
                # Self-hosted S3 (MinIO, versitygw, Ceph...) is addressed by path.
                s3={"addressing_style": "path"} if endpoint_url else {},
            )
        }
        if endpoint_url:
            kwargs["endpoint_url"] = endpoint_url
        if region:
            kwargs["region_name"] = region
        self.client: Any = boto3.client("s3", **kwargs)
        # A stream of unknown length is uploaded part by part, each part read into memory
        # first: s3transfer keeps up to max_in_memory_upload_chunks of them (10 by default),
        # and botocore copies a part while checksumming and sending it. 4 parts of 8 MiB
        # keep one upload near 70 MiB (measured) with four parts in flight.
        self.transfer = TransferConfig(
            multipart_threshold=part_size,
            multipart_chunksize=part_size,
            max_concurrency=UPLOAD_PARTS_IN_MEMORY,
            use_threads=True,
        )
        self.transfer.max_in_memory_upload_chunks = UPLOAD_PARTS_IN_MEMORY

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix} at {self.endpoint_url or 'AWS'}"

    def _key(self, name: str) -> str:
        return self.prefix + check_name(name)

    def check(self, *, create: bool) -> None:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        del create  # a bucket is never created implicitly: that is the operator's choice
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except NoCredentialsError:
            raise TargetError(
                f"no S3 credentials for {self.describe()}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or configure boto3's credential chain)"
            ) from None
        except ClientError as exc:
            code = _error_code(exc)
            if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise TargetError(
                    f"S3 refused access to {self.describe()} ({code}): check "
                    "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket policy"
                ) from None
            if code in (*_NOT_FOUND, "NoSuchBucket"):
                raise TargetError(
                    f"S3 bucket {self.bucket!r} does not exist at {self.endpoint_url or 'AWS'}"
                ) from None
            raise TargetError(f"S3 check of {self.describe()} failed: {exc}") from None
        except BotoCoreError as exc:
            raise TargetError(
                f"S3 at {self.endpoint_url or 'AWS'} is not reachable ({exc}): check "
                f"--s3-endpoint / ${S3_ENDPOINT_ENV} and the network"
            ) from None

    def put(self, name: str, src: Readable) -> int:
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        counter = _CountingReader(src)
        try:
            self.client.upload_fileobj(counter, self.bucket, self._key(name), Config=self.transfer)
        except (BotoCoreError, ClientError, S3UploadFailedError) as exc:
            raise TargetError(f"S3 upload of {name} failed: {exc}") from None
        return counter.count

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[Readable]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=self._key(name))
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND:
                raise ObjectNotFound(f"{name}: no such object in {self.describe()}") from None
            raise TargetError(f"S3 GET of {name} failed: {exc}") from None
        except BotoCoreError as exc:
            raise TargetError(f"S3 GET of {name} failed: {exc}") from None
        body = reply["Body"]
        try:
            yield _S3Body(body, name)
        finally:
            body.close()

    def exists(self, name: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(name))
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND:
                return False
            raise TargetError(f"S3 HEAD of {name} failed: {exc}") from None
        except BotoCoreError as exc:
            raise TargetError(f"S3 HEAD of {name} failed: {exc}") from None
        return True

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        from botocore.exceptions import BotoCoreError, ClientError

        paginator = self.client.get_paginator("list_objects_v2")
        full = self._key(prefix) + "/"
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        str(item["Key"])[len(self.prefix) :],
                        int(item["Size"]),
                        item["LastModified"].timestamp(),
                    )
        except (BotoCoreError, ClientError) as exc:
            raise TargetError(f"S3 listing of {self.describe()} failed: {exc}") from None

    def delete(self, names: Sequence[str]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        keys = [self._key(name) for name in names]
        for start in range(0, len(keys), S3_DELETE_BATCH):
            batch = [{"Key": key} for key in keys[start : start + S3_DELETE_BATCH]]
            try:
                reply = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            except (BotoCoreError, ClientError) as exc:
                raise TargetError(f"S3 delete in {self.describe()} failed: {exc}") from None
            errors = [e for e in reply.get("Errors", []) if e.get("Code") not in _NOT_FOUND]
            if errors:
                first = errors[0]
                raise TargetError(
                    f"S3 refused to delete {len(errors)} object(s) in {self.describe()}, "
                    f"first {first.get('Key')}: {first.get('Code')} {first.get('Message', '')}"
                )

    def sweep_partial(self, older_than_s: float) -> int:
        from botocore.exceptions import BotoCoreError, ClientError

        limit = time.time() - older_than_s
        removed = 0
        try:
            paginator = self.client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for upload in page.get("Uploads", []):
                    if upload["Initiated"].timestamp() < limit:
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        removed += 1
        except (BotoCoreError, ClientError) as exc:
            raise TargetError(
                f"S3 cleanup of unfinished uploads in {self.describe()} failed: {exc}"
            ) from None
        return removed


class _CountingReader:
    """Counts what the uploader reads (the bytes stored)."""

    def __init__(self, src: Readable) -> None:
        self._src = src
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._src.read(size)
        self.count += len(data)
        return data


class _S3Body:
    """A botocore StreamingBody as a plain stream: network errors become TargetError."""

    def __init__(self, body: Any, name: str) -> None:
        self._body = body
        self._name = name

    def read(self, size: int = -1) -> bytes:
        from botocore.exceptions import BotoCoreError

        try:
            return bytes(self._body.read(None if size < 0 else size))
        except BotoCoreError as exc:
            raise TargetError(f"S3 download of {self._name} failed: {exc}") from None


def parse_target(text: str, *, s3_endpoint: str = "", s3_region: str = "") -> Target:
    """A target from ``s3://bucket/prefix`` or a local path (``file://`` optional)."""
    if text.startswith("s3://"):
        bucket, _, prefix = text[len("s3://") :].partition("/")
        if not bucket:
            raise TargetError(f"{text!r}: name the bucket, as in s3://bucket/prefix")
        return S3Target(
            bucket,
            prefix,
            endpoint_url=s3_endpoint or os.environ.get(S3_ENDPOINT_ENV, ""),
            region=s3_region or os.environ.get("AWS_REGION", ""),
        )
    if "://" in text and not text.startswith("file://"):
        raise TargetError(f"{text!r}: a target is a local directory or s3://bucket/prefix")
    return LocalTarget(Path(text.removeprefix("file://")))
