"""Verify runs: decrypt every object a run lists, check every tag and checksum.

An object is good when it decrypts with all its tags intact up to its authenticated final
chunk, and its plaintext has the size, SHA-256 and file id the run's manifest records
(so an object replaced by another valid object of the same key is caught too). Each bad
object is reported by name with the reason; verification goes on to the next one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Literal

from app.backup.errors import (
    BackupError,
    FormatError,
    IntegrityError,
    ObjectNotFound,
    TamperedError,
    WrongKeyError,
)
from app.backup.format import DecryptResult, decrypt_stream
from app.backup.keys import Keyring
from app.backup.manifest import Entry, Manifest, manifest_name, read_manifest
from app.backup.progress import CountingWriter, Progress
from app.backup.streams import Writable
from app.backup.targets import Target

log = logging.getLogger("app.backup.verify")

ProblemKind = Literal["damaged", "missing", "no-key"]


@dataclass(frozen=True, slots=True)
class Problem:
    """A bad object: its name, the file it holds (empty for a manifest), the run that
    lists it, the kind of problem and the reason."""

    run: str
    object: str
    path: str
    kind: ProblemKind
    message: str

    def line(self) -> str:
        """One line for the report: ``DAMAGED objects/ab/…lcb (media/x.mp4): reason``."""
        what = f" ({self.path})" if self.path else ""
        return f"{self.kind.upper()} {self.object}{what} in run {self.run}: {self.message}"


@dataclass(slots=True)
class VerifyReport:
    """What verify checked and what it found."""

    runs: list[str] = field(default_factory=list)
    objects: int = 0
    bytes: int = 0
    problems: list[Problem] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every object of every run checked out."""
        return not self.problems


def _prefix(entry: Entry) -> str:
    return f"{entry.object} ({entry.path}): "


def decrypt_entry(
    target: Target,
    keyring: Keyring,
    entry: Entry,
    dst: Writable | None,
    progress: Progress | None = None,
) -> DecryptResult:
    """Decrypts ``entry``'s object into ``dst`` (None: verify only) and checks it against
    the manifest; ``progress`` counts the plaintext bytes as they come. Raises
    ObjectNotFound, WrongKeyError, IntegrityError (TamperedError when a tag fails); every
    message starts with the object's name and file path."""
    prefix = _prefix(entry)
    if progress is not None:
        dst = CountingWriter(dst, progress)
    with target.open(entry.object) as src:
        try:
            result = decrypt_stream(src, dst, keyring)
        except TamperedError as exc:
            raise TamperedError(f"{prefix}{exc}", exc.chunk_index) from None
        except (IntegrityError, FormatError) as exc:
            # In a run's object, even "not a backup file" means the object was damaged.
            raise IntegrityError(f"{prefix}{exc}") from None
    if result.file_id != entry.file_id:
        raise IntegrityError(
            f"{prefix}it is another backup file (file id {result.file_id}, the manifest "
            f"names {entry.file_id}): objects were swapped"
        )
    if result.plaintext_bytes != entry.size or result.sha256 != entry.sha256:
        raise IntegrityError(
            f"{prefix}{result.plaintext_bytes} bytes with SHA-256 {result.sha256}, the "
            f"manifest says {entry.size} bytes with {entry.sha256}"
        )
    return result


def _check_entry(
    target: Target, keyring: Keyring, run: str, entry: Entry, progress: Progress
) -> Problem | None:
    kind: ProblemKind
    try:
        decrypt_entry(target, keyring, entry, None, progress)
    except ObjectNotFound as exc:
        kind, message = "missing", str(exc).removeprefix(f"{entry.object}: ")
    except WrongKeyError as exc:
        kind, message = "no-key", str(exc)
    except BackupError as exc:  # IntegrityError; FormatError was turned into one
        kind, message = "damaged", str(exc).removeprefix(_prefix(entry))
    else:
        return None
    return Problem(run, entry.object, entry.path, kind, message)


def verify_runs(
    target: Target, keyring: Keyring, runs: list[str], *, progress: bool = True
) -> VerifyReport:
    """Verifies ``runs`` (objects shared by several runs are decrypted once)."""
    report = VerifyReport(runs=list(runs))
    manifests: list[Manifest] = []
    for run in runs:
        try:
            manifests.append(read_manifest(target, run, keyring))
        except ObjectNotFound as exc:
            report.problems.append(Problem(run, manifest_name(run), "", "missing", str(exc)))
        except WrongKeyError as exc:
            report.problems.append(Problem(run, manifest_name(run), "", "no-key", str(exc)))
        except BackupError as exc:
            report.problems.append(Problem(run, manifest_name(run), "", "damaged", str(exc)))
    unique: dict[str, Entry] = {}
    for manifest in manifests:
        for entry in manifest.entries:
            unique.setdefault(entry.object, entry)
    bar = Progress("verify", len(unique), sum(e.size for e in unique.values()), enabled=progress)
    checked: dict[str, Problem | None] = {}
    for manifest in manifests:
        for entry in manifest.entries:
            if entry.object not in checked:
                problem = _check_entry(target, keyring, manifest.run, entry, bar)
                checked[entry.object] = problem
                report.objects += 1
                report.bytes += entry.size
                bar.add(files=1)
                if problem is not None:
                    log.info(
                        "bad backup object",
                        extra={"run": manifest.run, "object": entry.object, "kind": problem.kind},
                    )
            else:
                problem = checked[entry.object]
                known = unique[entry.object]
                if problem is None and (known.sha256, known.size) != (entry.sha256, entry.size):
                    # A shared object that checked out: the manifests must agree on it.
                    problem = Problem(
                        manifest.run,
                        entry.object,
                        entry.path,
                        "damaged",
                        "this run's manifest and an earlier one disagree on its checksum",
                    )
            if problem is not None:
                report.problems.append(replace(problem, run=manifest.run, path=entry.path))
    report.seconds = bar.elapsed
    return report
