"""Clips kept in S3-compatible storage (``LIVECAM_S3_BUCKET``), as a backup run reads them.

When the server keeps media in S3 (``app/media_store.py``), its clips are not under
``$LIVECAM_DATA/media``. A run then lists the objects under the store's ``clips/`` folder
(under ``LIVECAM_S3_PREFIX``) and streams each one: a GET whose body the encryptor reads
chunk by chunk, so a clip never sits whole in memory or on local disk. Each becomes the
entry ``media/<key>``, the path the local store gives the same clip, so a restored data
directory works with the local store as it is (``restore --to-s3`` puts them back into
a bucket instead).

A clip is unchanged since the previous run when its key, size and ETag match (or, for
an S3 server that sends no ETag, its last-modified time): nothing is downloaded then.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from app.backup.errors import BackupError, TargetError

if TYPE_CHECKING:
    from app.media_store import S3MediaStore

log = logging.getLogger("app.backup.s3media")

#: The media store's clip folder (``app.clips.CLIPS_FOLDER``; not imported from there, as
#: that module pulls in the whole server; a test checks that they agree).
CLIPS_FOLDER = "clips"
#: Where the local media store keeps its objects, relative to the data directory.
MEDIA_DIR = "media"
#: Mode of a restored clip file (what the local store's files get under umask 022).
CLIP_MODE = 0o644
_SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NOT_FOUND = ("404", "NoSuchKey", "NotFound")


@dataclass(frozen=True, slots=True)
class MediaObject:
    """A clip in the bucket: its media store key (``clips/door/…/e1.ab.mp4``), size,
    ETag (without quotes; may be empty) and last-modified time."""

    key: str
    size: int
    etag: str
    modified_ns: int

    @property
    def path(self) -> str:
        """Its path in a backup (and in a restored data directory)."""
        return f"{MEDIA_DIR}/{self.key}"


def _ns(when: datetime) -> int:
    # Exact integer arithmetic: a float timestamp would round the nanoseconds.
    return ((when - _EPOCH) // timedelta(microseconds=1)) * 1000


def _etag(value: Any) -> str:
    return str(value or "").strip('"')


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def store_from_settings(setting: Callable[[str], str | None]) -> S3MediaStore | None:
    """The server's S3 media store from its ``LIVECAM_S3_*`` settings (``setting`` reads
    one from the environment or ``.env``), or None when media is stored locally."""
    bucket = setting("LIVECAM_S3_BUCKET")
    if not bucket:
        return None
    from app.media_store import MediaStoreError, S3MediaStore

    access_key = setting("LIVECAM_S3_ACCESS_KEY_ID") or ""
    secret_key = setting("LIVECAM_S3_SECRET_ACCESS_KEY") or ""
    if bool(access_key) != bool(secret_key):
        raise BackupError(
            "LIVECAM_S3_ACCESS_KEY_ID and LIVECAM_S3_SECRET_ACCESS_KEY go together: set "
            "both, or neither to use boto3's usual credential chain"
        )
    try:
        return S3MediaStore(
            bucket,
            prefix=setting("LIVECAM_S3_PREFIX") or "",
            endpoint_url=setting("LIVECAM_S3_ENDPOINT_URL") or "",
            region=setting("LIVECAM_S3_REGION") or "",
            access_key_id=access_key,
            secret_access_key=secret_key,
        )
    except MediaStoreError as exc:
        raise BackupError(str(exc)) from None


class MediaDownload:
    """One clip's GET, read as a stream; S3 errors become TargetError naming the clip.
    ``info`` is the object as the GET saw it (it may have changed since the listing)."""

    def __init__(self, body: Any, info: MediaObject) -> None:
        self._body = body
        self.info = info

    def readinto(self, buffer: memoryview) -> int:
        """Fills ``buffer`` with the next bytes of the clip; 0 at its end."""
        from botocore.exceptions import BotoCoreError

        try:
            n: int = self._body.readinto(buffer)
        except BotoCoreError as exc:
            raise TargetError(f"S3 download of {self.info.key} failed: {exc}") from None
        return n

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes of the clip; b"" at its end."""
        from botocore.exceptions import BotoCoreError

        try:
            return bytes(self._body.read(None if size < 0 else size))
        except BotoCoreError as exc:
            raise TargetError(f"S3 download of {self.info.key} failed: {exc}") from None

    def close(self) -> None:
        """Releases the connection."""
        self._body.close()

    def __enter__(self) -> MediaDownload:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class S3Media:
    """The clips of an S3 media store, listed and streamed for a backup run."""

    def __init__(self, store: S3MediaStore, folder: str = CLIPS_FOLDER) -> None:
        self.store = store
        self.folder = folder.strip("/")

    def describe(self) -> str:
        """Where the clips are (no secrets)."""
        return f"s3://{self.store.bucket}/{self.store.prefix}{self.folder}/ at " + (
            self.store.endpoint_url or "AWS"
        )

    def check(self) -> None:
        """Raises TargetError (saying it is the media bucket) when it cannot be read."""
        from app.media_store import MediaStoreError

        try:
            self.store.check()
        except MediaStoreError as exc:
            raise TargetError(
                f"clips in S3 (LIVECAM_S3_*): {exc} (run --no-s3-media backs up the rest)"
            ) from None

    def list(self) -> list[MediaObject]:
        """Every clip under the folder, sorted by key. Keys the local store could not
        hold (unsafe parts, folder markers) are skipped with a warning."""
        from botocore.exceptions import BotoCoreError, ClientError

        prefix = f"{self.store.prefix}{self.folder}/"
        found: list[MediaObject] = []
        try:
            paginator = self.store.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.store.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    key = str(item["Key"])[len(self.store.prefix) :]
                    if not all(_SAFE_PART.match(part) for part in key.split("/")):
                        log.warning("S3 object not backed up (not a clip key)", extra={"key": key})
                        continue
                    modified = _ns(item["LastModified"])
                    etag = _etag(item.get("ETag"))
                    found.append(MediaObject(key, int(item["Size"]), etag, modified))
        except (BotoCoreError, ClientError) as exc:
            raise TargetError(f"S3 listing of {self.describe()} failed: {exc}") from None
        return sorted(found, key=lambda o: o.key)

    def get(self, obj: MediaObject) -> MediaDownload | None:
        """Starts streaming ``obj``; None when it is gone (retention deleted it since the
        listing)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            reply = self.store.client.get_object(
                Bucket=self.store.bucket, Key=self.store.prefix + obj.key
            )
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                return None
            raise TargetError(f"S3 GET of {obj.key} failed: {exc}") from None
        except BotoCoreError as exc:
            raise TargetError(f"S3 GET of {obj.key} failed: {exc}") from None
        info = replace(
            obj,
            size=int(reply.get("ContentLength", obj.size)),
            etag=_etag(reply.get("ETag")) or obj.etag,
            modified_ns=_ns(reply["LastModified"]) if "LastModified" in reply else obj.modified_ns,
        )
        return MediaDownload(reply["Body"], info)
