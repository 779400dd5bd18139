"""Backup retention: remove old runs, and the objects no remaining run needs.

Which runs stay: the newest ``keep_last`` runs, and every run that started less than
``keep_days`` days ago (a run either rule keeps is kept). The newest run is always kept:
a backup run in progress reuses its objects.

Objects are shared between runs (an unchanged file is listed by every run with the object
the first one stored), so an object goes only when no kept run lists it. That needs every
run's manifest, so prune reads them all first and refuses (``KeyProblem``, nothing
removed) when one cannot be decrypted with the keys given, and (``IntegrityError``) when
one is damaged, rather than guess which objects it needs.

Also removed: *orphans*, objects under ``objects/`` that no run lists at all (left by runs
that failed before writing their manifest), and what interrupted writes left (temp files,
unfinished S3 multipart uploads), but only when older than ``orphan_grace_s`` (1 day):
a run in progress has stored objects that its manifest, written last, does not list yet.

Order: the removed runs' manifests first, then the objects. Stopped in between, a prune
leaves objects no run lists (orphans, removed by the next prune), never a listed run
whose objects are gone.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath

from app.backup.errors import IntegrityError, KeyProblem, ObjectNotFound, WrongKeyError
from app.backup.keys import Keyring
from app.backup.manifest import (
    OBJECTS,
    SUFFIX,
    Manifest,
    list_runs,
    manifest_name,
    read_manifest,
    run_time,
)
from app.backup.targets import ObjectInfo, Target

log = logging.getLogger("app.backup.prune")

#: Unlisted objects younger than this may belong to a run in progress.
ORPHAN_GRACE_S = 86400.0
_OBJECT = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True, slots=True)
class PrunePolicy:
    """What to keep: the newest ``keep_last`` runs and the runs of the last
    ``keep_days`` days (None: that rule is off; at least one must be on)."""

    keep_last: int | None = None
    keep_days: float | None = None

    def check(self) -> None:
        """ValueError with a message for the command line when the policy is unusable."""
        if self.keep_last is None and self.keep_days is None:
            raise ValueError("say what to keep: --keep-last N and/or --keep-days D")
        if self.keep_last is not None and self.keep_last < 1:
            raise ValueError("--keep-last must be at least 1")
        if self.keep_days is not None and not self.keep_days > 0:
            raise ValueError("--keep-days must be more than 0")


@dataclass(slots=True)
class PrunePlan:
    """What a prune keeps and removes. ``keep``: run → why it stays."""

    keep: dict[str, str] = field(default_factory=dict)
    remove: list[str] = field(default_factory=list)
    #: Objects only removed runs list.
    objects: list[ObjectInfo] = field(default_factory=list)
    #: Objects no run lists, older than the grace period.
    orphans: list[ObjectInfo] = field(default_factory=list)
    #: Objects no run lists, too young to remove (a run may be writing them).
    young_orphans: int = 0
    #: Objects the kept runs list.
    kept_objects: int = 0

    @property
    def object_bytes(self) -> int:
        """Bytes of the removed runs' objects."""
        return sum(o.size for o in self.objects)

    @property
    def orphan_bytes(self) -> int:
        """Bytes of the orphans removed."""
        return sum(o.size for o in self.orphans)


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What a prune did (``plan``), and the interrupted writes it cleaned up."""

    plan: PrunePlan
    partial: int
    seconds: float


def _is_object(name: str) -> bool:
    """Whether ``name`` is ``objects/<ab>/<file id>.lcb`` (other files are left alone)."""
    parts = PurePosixPath(name).parts
    if len(parts) != 3 or parts[0] != OBJECTS or not parts[2].endswith(SUFFIX):
        return False
    file_id = parts[2][: -len(SUFFIX)]
    return bool(_OBJECT.match(file_id)) and parts[1] == file_id[:2]


def _read_all(target: Target, keyring: Keyring, runs: list[str]) -> dict[str, Manifest]:
    manifests: dict[str, Manifest] = {}
    for run in runs:
        try:
            manifests[run] = read_manifest(target, run, keyring)
        except ObjectNotFound:
            continue  # removed since the listing (another prune): nothing to keep for it
        except WrongKeyError as exc:
            raise KeyProblem(
                f"cannot decrypt the manifest of run {run}: {exc}. prune needs every run's "
                "manifest to know which objects the kept runs share; nothing was removed"
            ) from None
        except IntegrityError as exc:
            raise IntegrityError(
                f"the manifest of run {run} is damaged ({exc}); prune cannot tell which "
                "objects it lists, nothing was removed (see verify)"
            ) from None
    return manifests


def _runs_to_keep(runs: list[str], policy: PrunePolicy, now: datetime) -> dict[str, str]:
    keep: dict[str, str] = {}
    if policy.keep_days is not None:
        since = now - timedelta(days=policy.keep_days)
        for run in runs:
            if run_time(run) >= since:
                keep[run] = f"within {policy.keep_days:g} days"
    if policy.keep_last is not None:
        for run in runs[-policy.keep_last :]:
            keep[run] = f"one of the last {policy.keep_last}"
    if runs:
        keep[runs[-1]] = "newest"
    return keep


def plan_prune(
    target: Target,
    keyring: Keyring,
    policy: PrunePolicy,
    *,
    now: datetime | None = None,
    orphan_grace_s: float = ORPHAN_GRACE_S,
) -> PrunePlan:
    """What a prune of ``target`` would remove (nothing is changed). Raises KeyProblem or
    IntegrityError when a manifest cannot be read (see the module docstring)."""
    policy.check()
    now = now or datetime.now(UTC)
    # Runs first, objects second: an object stored after the runs were read is young
    # and spared as an orphan would be.
    runs = list_runs(target)
    manifests = _read_all(target, keyring, runs)
    runs = [run for run in runs if run in manifests]
    plan = PrunePlan(keep=_runs_to_keep(runs, policy, now))
    plan.remove = [run for run in runs if run not in plan.keep]
    kept: set[str] = set()
    listed: set[str] = set()
    for run, manifest in manifests.items():
        names = {entry.object for entry in manifest.entries}
        listed |= names
        if run in plan.keep:
            kept |= names
    plan.kept_objects = len(kept)
    limit = time.time() - orphan_grace_s
    for info in target.list(OBJECTS):
        if info.name in kept or not _is_object(info.name):
            continue
        if info.name in listed:
            plan.objects.append(info)
        elif info.modified < limit:
            plan.orphans.append(info)
        else:
            plan.young_orphans += 1
    return plan


def apply_prune(
    target: Target, plan: PrunePlan, *, orphan_grace_s: float = ORPHAN_GRACE_S
) -> PruneResult:
    """Removes what ``plan`` says: the runs' manifests first, then the objects, then
    interrupted writes older than the grace period."""
    started = time.monotonic()
    target.delete([manifest_name(run) for run in plan.remove])
    for run in plan.remove:
        log.info("backup run removed", extra={"run": run})
    target.delete([o.name for o in plan.objects] + [o.name for o in plan.orphans])
    partial = target.sweep_partial(orphan_grace_s)
    seconds = time.monotonic() - started
    log.info(
        "backup pruned",
        extra={
            "target": target.describe(),
            "runs_removed": len(plan.remove),
            "runs_kept": len(plan.keep),
            "objects": len(plan.objects),
            "bytes": plan.object_bytes,
            "orphans": len(plan.orphans),
            "orphan_bytes": plan.orphan_bytes,
            "partial": partial,
        },
    )
    return PruneResult(plan, partial, seconds)
