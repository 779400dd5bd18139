"""Where finished media (event clips) lives: a local directory, or S3-compatible storage.

Both stores take a finished local file (``put_file``), tell an object's size, stream a
byte range as an iterator of chunks (never the whole object in memory), delete, and list
what they hold (for the retention sweep). Every method blocks: call them from a thread
(``asyncio.to_thread``), or hand the range iterator to a ``StreamingResponse``, which
iterates a plain iterator in Starlette's thread pool.

Keys are relative paths of safe parts (``door/2030-01-02/<event id>.<sha>.mp4``).

* ``LocalMediaStore``: ``$LIVECAM_DATA/media/<key>``. A put is atomic: the staging file is
  renamed into place (same file system) or copied to a temp file, fsynced and renamed, so
  a reader or a crash never sees half a clip.
* ``S3MediaStore``: one bucket, keys under ``LIVECAM_S3_PREFIX``; boto3 does multipart
  uploads for big files; ranges are ``GET`` with a ``Range`` header, streamed.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from app.settings import Settings

log = logging.getLogger(__name__)

#: Chunks a range is streamed in.
READ_CHUNK = 256 * 1024
_SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_TMP_SUFFIX = ".tmp"


class MediaStoreError(RuntimeError):
    """The store cannot do what was asked (unreachable, refused, misconfigured)."""


class StorageFull(MediaStoreError):
    """No space left on the device (ENOSPC)."""


class MediaNotFound(MediaStoreError):
    """No object under that key."""


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One object as ``list_objects`` sees it; ``modified`` in Unix seconds."""

    key: str
    size: int
    modified: float


class MediaStore(Protocol):
    """Finished media by key. All methods block (call them off the event loop)."""

    #: "local" or "s3" (for logs).
    kind: str

    def describe(self) -> str:
        """Where the media goes, for the startup log (no secrets)."""
        ...

    def check(self) -> None:
        """Raises MediaStoreError with a clear message when the store cannot be used."""
        ...

    def put_file(self, key: str, source: Path, content_type: str) -> None:
        """Stores the finished file ``source`` under ``key`` (replacing any object there).
        ``source`` may be moved away in the process; the caller removes it if still there.
        Raises StorageFull on ENOSPC, MediaStoreError otherwise."""
        ...

    def size(self, key: str) -> int | None:
        """The object's size in bytes, or None when there is none."""
        ...

    def open_range(
        self, key: str, start: int, end: int, chunk_size: int = READ_CHUNK
    ) -> Iterator[bytes]:
        """Bytes ``start..end`` (inclusive) of the object, in chunks of at most
        ``chunk_size``. Opening happens here (MediaNotFound at once when the object is
        gone); the chunks are read as the iterator is consumed."""
        ...

    def delete(self, key: str) -> bool:
        """Deletes the object; False when there was none (or it could not be deleted)."""
        ...

    def list_objects(self, under: str) -> Iterator[StoredObject]:
        """Every object whose key starts with ``under`` (a folder such as ``clips/``), in
        no particular order. Only that folder: a bucket may hold other things too."""
        ...

    def sweep_partial(self, under: str, older_than_s: float) -> int:
        """Removes what interrupted puts under ``under`` left behind (temp files, S3
        multipart uploads) older than ``older_than_s`` seconds; how many."""
        ...


def check_key(key: str) -> PurePosixPath:
    """``key`` as a path of safe parts; ValueError otherwise (it could leave the store)."""
    parts = key.split("/")
    if not all(_SAFE_PART.match(p) for p in parts):
        raise ValueError(f"unsafe media key {key!r}")
    return PurePosixPath(*parts)


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _read_file(path: Path, start: int, end: int, chunk_size: int) -> Iterator[bytes]:
    f = open(path, "rb")  # noqa: SIM115 (closed by the generator below)

    def chunks() -> Iterator[bytes]:
        try:
            f.seek(start)
            left = end - start + 1
            while left > 0:
                data = f.read(min(chunk_size, left))
                if not data:
                    raise MediaStoreError(f"{path.name} is shorter than expected")
                left -= len(data)
                yield data
        finally:
            f.close()

    return chunks()


class LocalMediaStore:
    """Media files under one directory (``$LIVECAM_DATA/media``)."""

    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def describe(self) -> str:
        return str(self.root)

    def path(self, key: str) -> Path:
        """The file of ``key``; ValueError if it would leave the store."""
        return self.root.joinpath(*check_key(key).parts)

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".probe.{secrets.token_hex(4)}{_TMP_SUFFIX}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise MediaStoreError(
                f"the media directory {self.root} is not writable: {exc.strerror or exc}"
            ) from None

    def put_file(self, key: str, source: Path, content_type: str) -> None:
        target = self.path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                # Same file system (the usual case: staging is under $LIVECAM_DATA too):
                # a rename, atomic and free. The staging file was fsynced chunk by chunk.
                os.replace(source, target)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                self._copy_in(source, target)
            _fsync_dir(target.parent)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise StorageFull(f"no space left for {key} in {self.root}") from exc
            raise MediaStoreError(f"cannot store {key} in {self.root}: {exc}") from exc

    @staticmethod
    def _copy_in(source: Path, target: Path) -> None:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}{_TMP_SUFFIX}")
        try:
            with open(source, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)
                dst.flush()
                os.fsync(dst.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def size(self, key: str) -> int | None:
        try:
            return self.path(key).stat().st_size
        except (OSError, ValueError):
            return None

    def open_range(
        self, key: str, start: int, end: int, chunk_size: int = READ_CHUNK
    ) -> Iterator[bytes]:
        try:
            return _read_file(self.path(key), start, end, chunk_size)
        except FileNotFoundError:
            raise MediaNotFound(f"no media {key!r}") from None
        except OSError as exc:
            raise MediaStoreError(f"cannot read {key}: {exc}") from exc

    def delete(self, key: str) -> bool:
        try:
            target = self.path(key)
            target.unlink()
        except FileNotFoundError:
            return False
        except (OSError, ValueError) as exc:
            log.warning("could not delete media", extra={"key": key, "error": str(exc)})
            return False
        self._remove_empty(target.parent)
        return True

    def _remove_empty(self, directory: Path) -> None:
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return  # not empty, or gone
            directory = directory.parent

    def list_objects(self, under: str) -> Iterator[StoredObject]:
        top = self.path(under.strip("/"))
        if not top.is_dir():
            return
        for dirpath, _dirs, files in os.walk(top):
            for name in files:
                if name.startswith("."):
                    continue
                path = Path(dirpath) / name
                with contextlib.suppress(OSError):
                    st = path.stat()
                    key = path.relative_to(self.root).as_posix()
                    yield StoredObject(key, st.st_size, st.st_mtime)

    def sweep_partial(self, under: str, older_than_s: float) -> int:
        top = self.path(under.strip("/"))
        if not top.is_dir():
            return 0
        removed = 0
        limit = time.time() - older_than_s
        for path in top.rglob(f".*{_TMP_SUFFIX}"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < limit:
                    path.unlink()
                    removed += 1
        return removed


def _error_code(exc: BaseException) -> str:
    response: Any = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


class S3MediaStore:
    """Media in one S3-compatible bucket, keys under a prefix."""

    kind = "s3"

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str = "",
        region: str = "",
        access_key_id: str = "",
        secret_access_key: str = "",
        multipart_threshold: int = 64 * 1024 * 1024,
        part_size: int = 16 * 1024 * 1024,
    ) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        if not 3 <= len(bucket) <= 63:
            raise MediaStoreError(f"LIVECAM_S3_BUCKET {bucket!r} must be 3–63 characters")
        self.bucket = bucket
        prefix = prefix.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self.endpoint_url = endpoint_url
        kwargs: dict[str, Any] = {
            "config": Config(
                connect_timeout=5,
                read_timeout=60,
                retries={"max_attempts": 3, "mode": "standard"},
                # Self-hosted S3 (MinIO, versitygw, Ceph...) is addressed by path.
                s3={"addressing_style": "path"} if endpoint_url else {},
            )
        }
        if endpoint_url:
            kwargs["endpoint_url"] = endpoint_url
        if region:
            kwargs["region_name"] = region
        if access_key_id:
            kwargs["aws_access_key_id"] = access_key_id
            kwargs["aws_secret_access_key"] = secret_access_key
        # Without keys, boto3's own chain applies (environment, ~/.aws, instance role).
        self.client: Any = boto3.client("s3", **kwargs)
        self.transfer = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=part_size,
            max_concurrency=4,
            use_threads=True,
        )

    def describe(self) -> str:
        where = self.endpoint_url or "AWS"
        return f"s3://{self.bucket}/{self.prefix} at {where}"

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key).as_posix()

    def check(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except NoCredentialsError:
            raise MediaStoreError(
                f"no S3 credentials for {self.describe()}: set LIVECAM_S3_ACCESS_KEY_ID and "
                "LIVECAM_S3_SECRET_ACCESS_KEY (or configure boto3's credential chain)"
            ) from None
        except ClientError as exc:
            code = _error_code(exc)
            if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise MediaStoreError(
                    f"S3 refused access to {self.describe()} ({code}): check "
                    "LIVECAM_S3_ACCESS_KEY_ID / LIVECAM_S3_SECRET_ACCESS_KEY and the bucket policy"
                ) from None
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise MediaStoreError(
                    f"S3 bucket {self.bucket!r} does not exist at "
                    f"{self.endpoint_url or 'AWS'}: create it or fix LIVECAM_S3_BUCKET"
                ) from None
            raise MediaStoreError(f"S3 check of {self.describe()} failed: {exc}") from None
        except BotoCoreError as exc:
            raise MediaStoreError(
                f"S3 at {self.endpoint_url or 'AWS'} is not reachable ({exc}): check "
                "LIVECAM_S3_ENDPOINT_URL and the network"
            ) from None

    def put_file(self, key: str, source: Path, content_type: str) -> None:
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        full = self._key(key)
        expected = source.stat().st_size
        try:
            # Multipart above the threshold, parts uploaded by a few threads.
            self.client.upload_file(
                str(source),
                self.bucket,
                full,
                ExtraArgs={"ContentType": content_type},
                Config=self.transfer,
            )
            stored = self.size(key)
        except (BotoCoreError, ClientError, S3UploadFailedError) as exc:
            raise MediaStoreError(f"S3 upload of {key} failed: {exc}") from exc
        if stored != expected:
            raise MediaStoreError(f"S3 holds {stored} bytes of {key}, not {expected}")

    def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise MediaStoreError(f"S3 HEAD of {key} failed: {exc}") from exc
        return int(head["ContentLength"])

    def open_range(
        self, key: str, start: int, end: int, chunk_size: int = READ_CHUNK
    ) -> Iterator[bytes]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            reply = self.client.get_object(
                Bucket=self.bucket, Key=self._key(key), Range=f"bytes={start}-{end}"
            )
        except ClientError as exc:
            if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                raise MediaNotFound(f"no media {key!r}") from None
            raise MediaStoreError(f"S3 GET of {key} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise MediaStoreError(f"S3 GET of {key} failed: {exc}") from exc
        body = reply["Body"]
        if int(reply.get("ContentLength", -1)) != end - start + 1:
            body.close()
            raise MediaStoreError(
                f"S3 sent {reply.get('ContentLength')} bytes of {key} for {start}-{end}"
            )

        def chunks() -> Iterator[bytes]:
            try:
                yield from body.iter_chunks(chunk_size)
            finally:
                body.close()

        return chunks()

    def delete(self, key: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (BotoCoreError, ClientError) as exc:
            log.warning("could not delete media", extra={"key": key, "error": str(exc)})
            return False
        return True

    def list_objects(self, under: str) -> Iterator[StoredObject]:
        paginator = self.client.get_paginator("list_objects_v2")
        prefix = self._key(under.strip("/")) + "/"
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                name = str(item["Key"])[len(self.prefix) :]
                yield StoredObject(name, int(item["Size"]), item["LastModified"].timestamp())

    def sweep_partial(self, under: str, older_than_s: float) -> int:
        from botocore.exceptions import BotoCoreError, ClientError

        removed = 0
        limit = time.time() - older_than_s
        prefix = self._key(under.strip("/")) + "/"
        try:
            reply = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix)
            for upload in reply.get("Uploads", []):
                if upload["Initiated"].timestamp() < limit:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    removed += 1
        except (BotoCoreError, ClientError) as exc:
            log.warning("could not list S3 multipart uploads", extra={"error": str(exc)})
        return removed


def make_media_store(settings: Settings) -> MediaStore:
    """S3 when LIVECAM_S3_BUCKET is set, else ``$LIVECAM_DATA/media``."""
    if settings.s3_bucket:
        return S3MediaStore(
            settings.s3_bucket,
            prefix=settings.s3_prefix,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key.get_secret_value(),
        )
    return LocalMediaStore(settings.data_dir / "media")
