"""``python -m app.backup``: make keys, back up, list, verify, restore and prune encrypted
backups.

Exit status: 0 success; 1 the backup is damaged (verify found a bad or missing object,
restore refused a tampered or truncated one, prune met a damaged manifest); 2 usage or
environment error (bad arguments, target unreachable, no such run, destination not
empty, pg_dump missing); 3 key problem (no key given, the key a backup needs is not in
the keyring, wrong passphrase, a key file others can read, prune cannot decrypt a run's
manifest); 130 interrupted.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from dotenv import dotenv_values

from app.backup.errors import (
    BackupError,
    IntegrityError,
    KeyProblem,
    ObjectNotFound,
    TargetError,
    WrongKeyError,
)
from app.backup.format import DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE
from app.backup.keys import PASSPHRASE_ENV, Keyring, generate_key_file, load_keyring
from app.backup.manifest import list_runs, manifest_header, read_manifest, resolve_run, run_time
from app.backup.progress import human_bytes
from app.backup.prune import ORPHAN_GRACE_S, PrunePlan, PrunePolicy, apply_prune, plan_prune
from app.backup.restore import restore_run
from app.backup.run import RunOptions, backup_run
from app.backup.s3media import S3Media, store_from_settings
from app.backup.targets import S3_ENDPOINT_ENV, Target, parse_target
from app.backup.throughput import measure, pin_to_one_core
from app.backup.verify import verify_runs
from app.logs import configure_logging

log = logging.getLogger("app.backup.cli")

EXIT_OK = 0
EXIT_DAMAGED = 1
EXIT_USAGE = 2
EXIT_KEY = 3
EXIT_INTERRUPTED = 130
TARGET_ENV = "LIVECAM_BACKUP_TARGET"

EPILOG = f"""\
examples:
  python -m app.backup keygen --key-file /etc/livecam/backup-2030.key
  python -m app.backup run --target /mnt/usb/livecam --key-file /etc/livecam/backup-2030.key
  AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... {S3_ENDPOINT_ENV}=https://s3.example.net \\
    python -m app.backup run --target s3://backups/livecam --key-file backup.key
  python -m app.backup list --target /mnt/usb/livecam --key-file backup.key
  python -m app.backup verify --all --target /mnt/usb/livecam --key-file backup.key
  python -m app.backup restore latest --to /srv/livecam-data --target /mnt/usb/livecam \\
    --key-file backup.key
  python -m app.backup prune --keep-last 14 --keep-days 90 --dry-run \\
    --target /mnt/usb/livecam --key-file backup.key
  {PASSPHRASE_ENV}=... python -m app.backup run --target /mnt/usb/livecam --passphrase

key rotation: keygen a new key file and give it FIRST (--key-file new.key --key-file
old.key): new runs use it, old runs still restore with the old key.

clips in S3: when the server keeps media in S3 (LIVECAM_S3_BUCKET), run backs up the
clips from the bucket too; restore writes them as files under DIR/media/clips (the local
store's layout), or puts them back into the server's bucket with --to-s3.

exit status: 0 success; 1 the backup is damaged (bad or missing objects, a damaged
manifest); 2 usage or environment error; 3 key problem (missing key, wrong passphrase,
key file others can read, a run prune cannot decrypt); 130 interrupted.

environment: {TARGET_ENV} (default --target), LIVECAM_DATA and DATABASE_URL (what is
backed up; also read from ./.env), LIVECAM_S3_BUCKET, _PREFIX, _ENDPOINT_URL, _REGION,
_ACCESS_KEY_ID, _SECRET_ACCESS_KEY (the server's clips in S3; also from ./.env),
{S3_ENDPOINT_ENV}, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION (S3 targets),
{PASSPHRASE_ENV} (--passphrase). The file format is documented in app/backup/FORMAT.md.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used by the tests)."""
    parser = argparse.ArgumentParser(
        prog="python -m app.backup",
        description="Encrypted backups of the livecam server's data (database, clips, "
        "snapshots): AES-256-GCM, to a local directory or S3-compatible storage.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    keys = argparse.ArgumentParser(add_help=False)
    group = keys.add_argument_group("keys")
    group.add_argument(
        "--key-file",
        action="append",
        type=Path,
        default=[],
        metavar="PATH",
        help="a key file (repeat it: the first encrypts, all decrypt)",
    )
    group.add_argument(
        "--key-dir",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="every *.key file in DIR (the newest encrypts when no --key-file is given)",
    )
    group.add_argument(
        "--passphrase",
        action="store_true",
        help=f"a passphrase key too (from ${PASSPHRASE_ENV}, else a prompt); it encrypts "
        "when no key file is given",
    )

    where = argparse.ArgumentParser(add_help=False)
    group = where.add_argument_group("target")
    group.add_argument(
        "--target",
        default=os.environ.get(TARGET_ENV, ""),
        metavar="T",
        help=f"a local directory or s3://bucket/prefix (default ${TARGET_ENV})",
    )
    group.add_argument(
        "--s3-endpoint",
        default="",
        metavar="URL",
        help=f"S3 endpoint URL (default ${S3_ENDPOINT_ENV}; empty: AWS)",
    )
    group.add_argument("--s3-region", default="", metavar="R", help="S3 region ($AWS_REGION)")
    group.add_argument("-q", "--quiet", action="store_true", help="no progress lines")

    p = sub.add_parser(
        "keygen",
        help="make a new random key file (mode 0600)",
        description="Make a new random 256-bit key in a new file (mode 0600). Refuses to "
        "overwrite a file. Keep a copy off this machine: without it the backups made with "
        "it cannot be restored.",
    )
    p.add_argument("--key-file", type=Path, required=True, metavar="PATH")

    p = sub.add_parser(
        "run",
        parents=[where, keys],
        help="back up the server's data",
        description="Back up the database (a consistent copy), media/, events/, vapid.pem "
        "and server.secret of the data directory, and the clips in S3 when the server "
        "keeps media there (LIVECAM_S3_BUCKET; streamed from the bucket, stored as "
        "media/clips/...). Files unchanged since the last run (clips in S3: same size and "
        "ETag) are not stored again.",
    )
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="DIR",
        help="the server's data directory (default $LIVECAM_DATA, else ./data)",
    )
    p.add_argument(
        "--database-url",
        default=None,
        metavar="URL",
        help="the database (default $DATABASE_URL, else DIR/livecam.db)",
    )
    p.add_argument("--no-database", action="store_true", help="do not back up the database")
    p.add_argument(
        "--no-s3-media",
        action="store_true",
        help="do not back up the clips kept in S3 (LIVECAM_S3_BUCKET)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="files stored at once (default 2; to S3 each big file needs ~70 MiB)",
    )
    p.add_argument(
        "--chunk-size",
        type=int,
        default=DEFAULT_CHUNK_SIZE,
        metavar="BYTES",
        help=f"plaintext bytes per encrypted chunk (default {DEFAULT_CHUNK_SIZE})",
    )

    sub.add_parser(
        "list",
        parents=[where, keys],
        help="list the runs in a target",
        description="List the runs in the target: time, files, bytes, key id. Without the "
        "run's key only the time and key id are shown.",
    )

    p = sub.add_parser(
        "verify",
        parents=[where, keys],
        help="decrypt and check every object of a run",
        description="Decrypt every object of a run (default: the latest) and check every "
        "tag and SHA-256. Reports each bad object by name; exit status 1 if any is bad.",
    )
    p.add_argument("run", nargs="?", default="latest", help="a run name, or latest")
    p.add_argument("--all", action="store_true", help="verify every run")

    p = sub.add_parser(
        "restore",
        parents=[where, keys],
        help="restore a run into a directory",
        description="Restore a run into DIR, all or nothing: a tampered or truncated "
        "object is refused and nothing is left in DIR. DIR becomes a data directory "
        "(LIVECAM_DATA). Stop the server before restoring over its own data directory.",
    )
    p.add_argument("run", help="a run name (see list), or latest")
    p.add_argument("--to", type=Path, required=True, metavar="DIR", help="where to restore")
    p.add_argument("--force", action="store_true", help="restore into a non-empty DIR")
    p.add_argument(
        "--to-s3",
        action="store_true",
        help="put the run's clips (media/...) into the server's S3 media store "
        "(LIVECAM_S3_*) instead of DIR/media, once every file has checked out; the rest "
        "goes to DIR",
    )

    p = sub.add_parser(
        "prune",
        parents=[where, keys],
        help="remove old runs and the objects no kept run needs",
        description="Remove old runs: keep the newest N runs (--keep-last) and the runs "
        "of the last D days (--keep-days); a run either keeps stays, and the newest run "
        "always stays. An object is removed only when no kept run lists it (runs share "
        "unchanged files). Also removes objects no run lists (runs that failed before "
        "their manifest) and interrupted uploads, when older than 1 day, so a run in "
        "progress is never hurt. Reads every run's manifest first: refuses (exit 3) when "
        "one cannot be decrypted with the keys given, and (exit 1) when one is damaged; "
        "nothing is removed then.",
    )
    p.add_argument(
        "--keep-last", type=int, default=None, metavar="N", help="keep the newest N runs"
    )
    p.add_argument(
        "--keep-days", type=float, default=None, metavar="D", help="keep runs of the last D days"
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print what would be removed, remove nothing"
    )

    p = sub.add_parser(
        "bench",
        help="measure encryption and decryption throughput on one core",
        description="Encrypt and decrypt generated data in memory on one CPU core and "
        "print MB/s (1 MB = 10^6 bytes).",
    )
    p.add_argument("--mib", type=int, default=512, help="data size in MiB (default 512)")
    p.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE, metavar="BYTES")
    return parser


def _passphrase(confirm: bool) -> str:
    value = os.environ.get(PASSPHRASE_ENV)
    if value is not None:
        return value
    if not sys.stdin.isatty():
        raise KeyProblem(f"--passphrase: set ${PASSPHRASE_ENV} (no terminal to prompt on)")
    first = getpass.getpass("backup passphrase: ")
    if confirm and getpass.getpass("again: ") != first:
        raise KeyProblem("the passphrases differ")
    return first


def _keyring(args: argparse.Namespace, *, confirm: bool = False) -> Keyring:
    passphrase = _passphrase(confirm) if args.passphrase else None
    return load_keyring(args.key_file, args.key_dir, passphrase)


def _target(args: argparse.Namespace) -> Target:
    if not args.target:
        raise TargetError(f"no target: give --target or set ${TARGET_ENV}")
    return parse_target(args.target, s3_endpoint=args.s3_endpoint, s3_region=args.s3_region)


def _setting(name: str) -> str | None:
    """A server setting from the environment, else ./.env (as the server reads it)."""
    value = os.environ.get(name)
    if value is None:
        value = dotenv_values(".env").get(name) if Path(".env").is_file() else None
    return value or None


def _cmd_keygen(args: argparse.Namespace, out: TextIO) -> int:
    key = generate_key_file(args.key_file)
    print(f"new key {key.key_id_hex} in {args.key_file} (mode 0600)", file=out)
    print("keep a copy OFF this machine: without it these backups cannot be restored", file=out)
    return EXIT_OK


def _cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    if not MIN_CHUNK_SIZE <= args.chunk_size <= MAX_CHUNK_SIZE:
        raise BackupError(f"--chunk-size must be {MIN_CHUNK_SIZE}..{MAX_CHUNK_SIZE}")
    if args.jobs < 1:
        raise BackupError("--jobs must be at least 1")
    target = _target(args)
    keyring = _keyring(args, confirm=True)
    data = args.data or Path(_setting("LIVECAM_DATA") or "data")
    url = "" if args.no_database else (args.database_url or _setting("DATABASE_URL"))
    store = None if args.no_s3_media else store_from_settings(_setting)
    options = RunOptions(
        data_dir=data,
        database_url=url,
        chunk_size=args.chunk_size,
        jobs=args.jobs,
        progress=not args.quiet,
        s3_media=S3Media(store) if store is not None else None,
    )
    result = backup_run(target, keyring, options)
    m = result.manifest
    print(
        f"run {m.run}: {len(m.entries)} files, {human_bytes(m.total_bytes)}; stored "
        f"{result.stored_files} ({human_bytes(result.stored_bytes)}), unchanged "
        f"{result.reused_files}; key {m.key_id}; {result.seconds:.1f} s "
        f"(stored {result.stored_plaintext / max(result.seconds, 1e-9) / 1e6:.1f} MB/s)",
        file=out,
    )
    if options.s3_media is not None:
        print(f"clips from {options.s3_media.describe()}: {result.s3_clips}", file=out)
    if result.vanished:
        print(f"{len(result.vanished)} files vanished while the run read them", file=out)
    return EXIT_OK


def _cmd_list(args: argparse.Namespace, out: TextIO) -> int:
    target = _target(args)
    target.check(create=False)
    keyring: Keyring | None = None
    if args.key_file or args.key_dir or args.passphrase:
        keyring = _keyring(args)
    runs = list_runs(target)
    if not runs:
        print(f"no runs in {target.describe()}", file=out)
        return EXIT_OK
    print(f"{'RUN':<20} {'TIME (UTC)':<20} {'FILES':>7} {'BYTES':>10}  KEY", file=out)
    for run in runs:
        when = run_time(run).strftime("%Y-%m-%d %H:%M:%S")
        files, size = "?", "?"
        try:
            header = manifest_header(target, run)
            key_id = header.key_id_hex + (" (passphrase)" if header.scrypt else "")
        except BackupError as exc:
            key_id = f"unreadable: {exc}"
        else:
            if keyring is not None:
                try:
                    manifest = read_manifest(target, run, keyring)
                    files, size = str(len(manifest.entries)), human_bytes(manifest.total_bytes)
                except WrongKeyError:
                    key_id += " (not in keyring)"
                except BackupError as exc:
                    key_id += f" (manifest damaged: {exc})"
        print(f"{run:<20} {when:<20} {files:>7} {size:>10}  {key_id}", file=out)
    return EXIT_OK


def _cmd_verify(args: argparse.Namespace, out: TextIO) -> int:
    target = _target(args)
    target.check(create=False)
    keyring = _keyring(args)
    runs = list_runs(target) if args.all else [resolve_run(target, args.run)]
    if not runs:
        raise BackupError(f"no runs in {target.describe()}")
    report = verify_runs(target, keyring, runs, progress=not args.quiet)
    for problem in report.problems:
        print(problem.line(), file=out)
    status = "OK" if report.ok else f"{len(report.problems)} PROBLEMS"
    print(
        f"verify {status}: {len(runs)} run(s), {report.objects} objects, "
        f"{human_bytes(report.bytes)} in {report.seconds:.1f} s",
        file=out,
    )
    if any(p.kind != "no-key" for p in report.problems):
        return EXIT_DAMAGED
    return EXIT_KEY if report.problems else EXIT_OK


def _cmd_restore(args: argparse.Namespace, out: TextIO) -> int:
    target = _target(args)
    target.check(create=False)
    keyring = _keyring(args)
    run = resolve_run(target, args.run)
    store = None
    if args.to_s3:
        store = store_from_settings(_setting)
        if store is None:
            raise BackupError("--to-s3: set LIVECAM_S3_BUCKET (and the other LIVECAM_S3_*)")
        S3Media(store).check()
    result = restore_run(
        target, keyring, run, args.to, force=args.force, progress=not args.quiet,
        media_store=store,
    )  # fmt: skip
    print(
        f"restored run {run}: {result.files} files, {human_bytes(result.bytes)} into "
        f"{args.to} in {result.seconds:.1f} s "
        f"({result.bytes / max(result.seconds, 1e-9) / 1e6:.1f} MB/s)",
        file=out,
    )
    if store is not None:
        print(f"{result.media_put} clips put into {store.describe()}", file=out)
    kinds = {e.kind for e in result.manifest.entries}
    if "postgresql-dump" in kinds:
        print("database: pg_restore --clean -d <DATABASE_URL> postgresql.dump", file=out)
    print(f"start the server on it with LIVECAM_DATA={args.to}", file=out)
    return EXIT_OK


def _print_plan(plan: PrunePlan, dry_run: bool, out: TextIO) -> None:
    would = "would remove" if dry_run else "remove"
    for run in sorted([*plan.keep, *plan.remove]):
        if run in plan.keep:
            print(f"keep          {run}  ({plan.keep[run]})", file=out)
        else:
            print(f"{would:<13} {run}", file=out)
    if plan.young_orphans:
        print(
            f"left alone: {plan.young_orphans} unlisted objects younger than "
            f"{ORPHAN_GRACE_S / 3600:g} h (a run may be writing them)",
            file=out,
        )


def _cmd_prune(args: argparse.Namespace, out: TextIO) -> int:
    policy = PrunePolicy(args.keep_last, args.keep_days)
    try:
        policy.check()
    except ValueError as exc:
        raise BackupError(str(exc)) from None
    target = _target(args)
    target.check(create=False)
    keyring = _keyring(args)
    plan = plan_prune(target, keyring, policy)
    _print_plan(plan, args.dry_run, out)
    summary = (
        f"{len(plan.remove)} runs, {len(plan.objects)} objects "
        f"({human_bytes(plan.object_bytes)}), {len(plan.orphans)} orphan objects "
        f"({human_bytes(plan.orphan_bytes)})"
    )
    kept = f"{len(plan.keep)} runs and their {plan.kept_objects} objects"
    if args.dry_run:
        print(f"dry run: would remove {summary}; would keep {kept}", file=out)
        return EXIT_OK
    result = apply_prune(target, plan)
    partial = f", {result.partial} interrupted uploads" if result.partial else ""
    print(f"removed {summary}{partial}; kept {kept}", file=out)
    return EXIT_OK


def _cmd_bench(args: argparse.Namespace, out: TextIO) -> int:
    if not MIN_CHUNK_SIZE <= args.chunk_size <= MAX_CHUNK_SIZE:
        raise BackupError(f"--chunk-size must be {MIN_CHUNK_SIZE}..{MAX_CHUNK_SIZE}")
    cpu = pin_to_one_core()
    result = measure(args.mib * 1024 * 1024, args.chunk_size)
    where = f"pinned to CPU {cpu}" if cpu is not None else "one thread"
    print(
        f"AES-256-GCM + SHA-256, {args.mib} MiB, {args.chunk_size} B chunks, {where}: "
        f"encrypt {result.encrypt_mb_s:.0f} MB/s, decrypt {result.decrypt_mb_s:.0f} MB/s",
        file=out,
    )
    return EXIT_OK


COMMANDS = {
    "keygen": _cmd_keygen,
    "run": _cmd_run,
    "list": _cmd_list,
    "verify": _cmd_verify,
    "restore": _cmd_restore,
    "prune": _cmd_prune,
    "bench": _cmd_bench,
}


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Runs the CLI; returns the exit status (see the module docstring)."""
    args = build_parser().parse_args(argv)
    out = out or sys.stdout
    configure_logging("info" if args.verbose else "warning")
    try:
        return COMMANDS[args.command](args, out)
    except IntegrityError as exc:
        print(f"backup: DAMAGED: {exc}", file=sys.stderr)
        return EXIT_DAMAGED
    except ObjectNotFound as exc:
        print(f"backup: MISSING: {exc}", file=sys.stderr)
        return EXIT_DAMAGED
    except KeyProblem as exc:
        print(f"backup: key: {exc}", file=sys.stderr)
        return EXIT_KEY
    except BackupError as exc:
        print(f"backup: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("backup: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
