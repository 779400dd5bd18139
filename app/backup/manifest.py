"""A backup run's manifest: which files a run holds and in which objects, encrypted.

Layout of a target (local directory or S3 prefix)::

    manifests/<run>.lcb            one per finished run, <run> = UTC time, 20301231T235959Z
    objects/<ab>/<file id>.lcb     one per stored file version (ab = first 2 hex digits)

Objects are named by the random file id of their encrypted file, not by their content:
names reveal nothing about what is inside. A run stores only files that changed since
the previous run (size, mtime, then SHA-256) and lists the unchanged ones with the object
an earlier run stored; the manifest is written last, so a run that did not finish has no
manifest and is not listed (its objects are orphans: ``prune`` removes them once they
are a day old, see ``app/backup/prune.py``). Each manifest is an encrypted JSON document
(the same file format as objects), so file names, sizes and checksums are as private as
the contents.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from app.backup.errors import FormatError, RunNotFound, TamperedError
from app.backup.format import EncryptingReader, Header, decrypt_stream, read_header
from app.backup.keys import BackupKey, Keyring
from app.backup.targets import Target

MANIFESTS = "manifests"
OBJECTS = "objects"
SUFFIX = ".lcb"
MANIFEST_FORMAT = "livecam-backup-manifest"
MANIFEST_VERSION = 1
_RUN = re.compile(r"^\d{8}T\d{6}Z(-\d+)?$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
KINDS = ("file", "sqlite", "postgresql-dump")


@dataclass(frozen=True, slots=True)
class Entry:
    """One restored file: its path in the data directory, what it held when backed up,
    and the object (with its file id and key id) that holds it encrypted. ``etag``: the
    S3 ETag of the clip it was read from when media is kept in S3 (empty for a file of
    the data directory, and for an S3 server that sends none)."""

    path: str
    kind: str
    size: int
    sha256: str
    mtime_ns: int
    mode: int
    object: str
    file_id: str
    key_id: str
    stored: int
    etag: str = ""


@dataclass(slots=True)
class Manifest:
    """A finished run. ``new_objects``/``new_bytes``: what this run stored itself."""

    run: str
    created: str
    key_id: str
    data_dir: str
    entries: list[Entry] = field(default_factory=list)
    new_objects: int = 0
    new_bytes: int = 0

    @property
    def total_bytes(self) -> int:
        """Plaintext bytes of every file in the run."""
        return sum(e.size for e in self.entries)

    def to_json(self) -> bytes:
        """The manifest as the JSON document that gets encrypted."""
        doc = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, **asdict(self)}
        return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        """Parses and checks a decrypted manifest; FormatError when it is not a valid one."""
        try:
            doc = json.loads(data)
            if doc.get("format") != MANIFEST_FORMAT or doc.get("version") != MANIFEST_VERSION:
                raise FormatError(
                    f"not a livecam backup manifest version {MANIFEST_VERSION}: "
                    f"{doc.get('format')!r} {doc.get('version')!r}"
                )
            entries = [_entry(item) for item in doc["entries"]]
            return cls(
                run=str(doc["run"]),
                created=str(doc["created"]),
                key_id=str(doc["key_id"]),
                data_dir=str(doc["data_dir"]),
                entries=entries,
                new_objects=int(doc["new_objects"]),
                new_bytes=int(doc["new_bytes"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise FormatError(f"malformed backup manifest: {exc}") from None


def _entry(item: dict[str, Any]) -> Entry:
    entry = Entry(
        path=check_path(str(item["path"])),
        kind=str(item["kind"]),
        size=int(item["size"]),
        sha256=str(item["sha256"]),
        mtime_ns=int(item["mtime_ns"]),
        mode=int(item["mode"]),
        object=str(item["object"]),
        file_id=str(item["file_id"]),
        key_id=str(item["key_id"]),
        stored=int(item["stored"]),
        etag=str(item.get("etag", "")),
    )
    if entry.kind not in KINDS:
        raise ValueError(f"unknown entry kind {entry.kind!r}")
    if not (_HEX64.match(entry.sha256) and _HEX32.match(entry.file_id)):
        raise ValueError(f"bad checksum or file id for {entry.path}")
    if entry.object != object_name(entry.file_id):
        raise ValueError(f"object name {entry.object!r} does not match its file id")
    if entry.size < 0 or not 0 <= entry.mode <= 0o7777:
        raise ValueError(f"bad size or mode for {entry.path}")
    return entry


def check_path(path: str) -> str:
    """``path`` if it is a safe relative path (restore writes it under the target dir)."""
    parts = PurePosixPath(path).parts
    if (
        not parts
        or path.startswith("/")
        or "\x00" in path
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise ValueError(f"unsafe path {path!r} in manifest")
    return path


def object_name(file_id: str) -> str:
    """Where the object with ``file_id`` (hex) lives in a target."""
    return f"{OBJECTS}/{file_id[:2]}/{file_id}{SUFFIX}"


def manifest_name(run: str) -> str:
    """Where run ``run``'s manifest lives in a target."""
    return f"{MANIFESTS}/{run}{SUFFIX}"


def new_run_name(now: datetime, taken: set[str]) -> str:
    """The run name for a run started at ``now`` (UTC), unique among ``taken``."""
    base = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    name, n = base, 1
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


def run_time(run: str) -> datetime:
    """The UTC start time a run name encodes."""
    return datetime.strptime(run.split("-")[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def list_runs(target: Target) -> list[str]:
    """Names of the finished runs in ``target``, oldest first."""
    runs = []
    for info in target.list(MANIFESTS):
        name = PurePosixPath(info.name).name
        if name.endswith(SUFFIX) and _RUN.match(name[: -len(SUFFIX)]):
            runs.append(name[: -len(SUFFIX)])
    return sorted(runs, key=lambda r: (r.split("-")[0], int(r.split("-")[1]) if "-" in r else 0))


def resolve_run(target: Target, run: str) -> str:
    """``run`` itself if it exists, the newest run for "latest"; RunNotFound otherwise."""
    runs = list_runs(target)
    if run == "latest":
        if not runs:
            raise RunNotFound(f"no backup runs in {target.describe()}")
        return runs[-1]
    if run not in runs:
        raise RunNotFound(
            f"no run {run!r} in {target.describe()} (python -m app.backup list shows the runs)"
        )
    return run


def write_manifest(target: Target, manifest: Manifest, key: BackupKey) -> int:
    """Encrypts and stores ``manifest``; the bytes stored."""
    return target.put(
        manifest_name(manifest.run), EncryptingReader(io.BytesIO(manifest.to_json()), key)
    )


def manifest_header(target: Target, run: str) -> Header:
    """The header of a run's manifest (its key id), readable without the key."""
    with target.open(manifest_name(run)) as src:
        return read_header(src)


def read_manifest(target: Target, run: str, keyring: Keyring) -> Manifest:
    """Decrypts, authenticates and parses run ``run``'s manifest. A manifest renamed to
    another run's name is refused (TamperedError)."""
    buffer = io.BytesIO()
    with target.open(manifest_name(run)) as src:
        decrypt_stream(src, buffer, keyring)
    manifest = Manifest.from_json(buffer.getvalue())
    if manifest.run != run:
        raise TamperedError(
            f"{manifest_name(run)} holds the manifest of run {manifest.run}: it was renamed"
        )
    return manifest
