"""Media benchmark: what recording, encryption, upload and restore cost here.

1. Recorder CPU per 1080p30 stream: the edge's Recorder (fMP4 segments, codec copy) fed a
   pre-encoded 1080p30 H.264 stream at its real rate for ``--seconds``, beside
   ``ffmpeg -re -c copy`` of the same input into the same fragmented MP4 (the floor).
   Both are CPU seconds per second of video, as % of one core. Target: ≤ 2× the floor.
2. Backup encryption and decryption throughput (app/backup's AES-256-GCM stream format)
   on one core, in memory. Target: encryption ≥ 200 MB/s.
3. Upload throughput to a real S3 server on loopback (versitygw): a clip put by the
   server's media store, and an encrypted backup object streamed to a backup target.
4. Time to restore 1 GB: `python -m app.backup run` of a data directory holding a 1 GiB
   clip to S3, then `python -m app.backup restore` of it (download, decrypt, verify).

    ./run bench media [--seconds 30] [--mb 512] [--restore-gb 1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from edge.h264 import AccessUnit, AccessUnitReader
from edge.record.recorder import Recorder
from edge.record.settings import RecordSettings
from edge.sources.base import CapturedFrame
from scripts.media import make_h264_file
from scripts.s3server import S3Server, running_s3

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "livecam" / "bench"
FPS = 30
MB = 1_000_000


def input_1080p30() -> Path:
    """A minute of 1080p30 H.264 (High, 4 Mbit/s, 1-s GOP), made once and cached."""
    path = CACHE / "media-1080p30-60s.h264"
    if not path.exists():
        print("making a 60 s 1080p30 H.264 input (once)...", file=sys.stderr)
        tmp = path.with_name(".tmp-" + path.name)
        make_h264_file(
            tmp, width=1920, height=1080, fps=FPS, seconds=60, gop=FPS, bitrate_kbps=4000,
            profile="high",
        )  # fmt: skip
        tmp.rename(path)
    return path


def access_units(path: Path) -> list[AccessUnit]:
    """Every access unit of a raw H.264 file."""
    reader = AccessUnitReader(name="bench")
    units: list[AccessUnit] = []
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            units.extend(reader.feed(chunk))
    units.extend(reader.flush())
    return units


def _cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


def recorder_cpu(units: list[AccessUnit], seconds: float, workdir: Path) -> tuple[float, int]:
    """CPU % of one core of this process while a Recorder records ``seconds`` of
    ``units`` fed at 30 fps (the feeding loop included), and the frames written."""
    settings = RecordSettings(segment_s=60.0, min_free_gb=0.1)
    recorder = Recorder("bench", workdir / "rec", settings)
    recorder.start()
    proc = psutil.Process()
    frames = int(seconds * FPS)
    start_us = int(time.time() * 1e6)
    cpu0, t0 = _cpu_s(proc), time.monotonic()
    for i in range(frames):
        due = t0 + i / FPS
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        au = units[i % len(units)]
        recorder.on_frame(CapturedFrame(au, start_us + i * 1_000_000 // FPS, i))
    recorder.close()
    cpu = _cpu_s(proc) - cpu0
    elapsed = time.monotonic() - t0
    return 100.0 * cpu / elapsed, recorder.stats.frames


def idle_feed_cpu(seconds: float) -> float:
    """CPU % of the same 30 fps pacing loop with nothing to feed (what the loop costs)."""
    proc = psutil.Process()
    cpu0, t0 = _cpu_s(proc), time.monotonic()
    for i in range(int(seconds * FPS)):
        delay = t0 + i / FPS - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return 100.0 * (_cpu_s(proc) - cpu0) / (time.monotonic() - t0)


def ffmpeg_floor(path: Path, seconds: float, workdir: Path) -> float:
    """CPU % of one core of ``ffmpeg -re -c copy`` into fragmented MP4 for ``seconds``."""
    out = workdir / "floor.mp4"
    argv = [
        "ffmpeg", "-v", "error", "-y", "-re", "-f", "h264", "-framerate", str(FPS),
        "-i", str(path), "-t", str(seconds), "-c", "copy", "-f", "mp4",
        "-movflags", "frag_keyframe+empty_moov+default_base_moof", str(out),
    ]  # fmt: skip
    t0 = time.monotonic()
    proc = subprocess.Popen(argv)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"ffmpeg failed with {proc.returncode}")
    return 100.0 * (usage.ru_utime + usage.ru_stime) / elapsed


class _Sink:
    """A writer that keeps nothing (throughput of the cipher, not of a disk)."""

    def __init__(self) -> None:
        self.bytes = 0
        self.buffer = io.BytesIO()

    def write(self, data: bytes | memoryview, /) -> int:
        self.bytes += len(data)
        return len(data)


def crypto_throughput(mb: int) -> tuple[float, float]:
    """(encrypt MB/s, decrypt MB/s) of ``mb`` MB on one thread, CPU-time based."""
    from app.backup.format import decrypt_stream, encrypt_stream
    from app.backup.keys import BackupKey, Keyring

    key = BackupKey(key_id=os.urandom(16), secret=os.urandom(32), origin="bench")
    plain = os.urandom(mb * MB)
    enc = io.BytesIO()
    t0 = time.thread_time()
    encrypt_stream(io.BytesIO(plain), enc, key)
    enc_s = time.thread_time() - t0
    enc.seek(0)
    sink = _Sink()
    t0 = time.thread_time()
    result = decrypt_stream(enc, sink, Keyring([key]))
    dec_s = time.thread_time() - t0
    assert result.plaintext_bytes == len(plain)
    return mb / enc_s, mb / dec_s


def _data_file(path: Path, size: int) -> None:
    """``size`` incompressible bytes, written in 8 MiB blocks."""
    block = os.urandom(8 << 20)
    with path.open("wb") as f:
        left = size
        while left > 0:
            f.write(block[: min(left, len(block))])
            left -= len(block)


def s3_media_upload(s3: S3Server, workdir: Path, mb: int) -> float:
    """MB/s of the server's S3 media store putting a ``mb`` MB clip."""
    from app.media_store import S3MediaStore

    clip = workdir / "clip.mp4"
    _data_file(clip, mb * MB)
    store = S3MediaStore(
        "livecam-media",
        endpoint_url=s3.endpoint_url,
        region=s3.region,
        access_key_id=s3.access_key,
        secret_access_key=s3.secret_key,
    )
    t0 = time.monotonic()
    store.put_file("clips/bench/clip.mp4", clip, "video/mp4")
    elapsed = time.monotonic() - t0
    assert store.size("clips/bench/clip.mp4") == mb * MB
    clip.unlink()
    return mb / elapsed


def _backup_env(s3: S3Server) -> dict[str, str]:
    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "AWS_REGION": s3.region,
        "LIVECAM_BACKUP_S3_ENDPOINT": s3.endpoint_url,
    }


def backup_restore(s3: S3Server, workdir: Path, gb: float) -> tuple[float, float, int]:
    """(backup seconds, restore seconds, bytes) of a data directory with one ``gb`` GB
    clip, backed up to S3 and restored with the CLI (separate processes, as an operator
    runs them)."""
    data = workdir / "data"
    clip_dir = data / "media" / "clips" / "bench"
    clip_dir.mkdir(parents=True)
    size = int(gb * 1e9)
    _data_file(clip_dir / "big.mp4", size)
    key = workdir / "backup.key"
    env = _backup_env(s3)
    py = [sys.executable, "-m", "app.backup"]
    subprocess.run([*py, "keygen", "--key-file", str(key)], check=True, env=env)
    target = "s3://livecam-backup/site"
    t0 = time.monotonic()
    subprocess.run(
        [
            *py,
            "run",
            "--target",
            target,
            "--key-file",
            str(key),
            "--data",
            str(data),
            "--no-database",
        ],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    backup_s = time.monotonic() - t0
    restored = workdir / "restored"
    t0 = time.monotonic()
    subprocess.run(
        [*py, "restore", "latest", "--to", str(restored), "--target", target,
         "--key-file", str(key)],
        check=True, env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    restore_s = time.monotonic() - t0
    got = next(restored.rglob("big.mp4"))
    assert got.stat().st_size == size
    assert _sha(got) == _sha(clip_dir / "big.mp4")
    return backup_s, restore_s, size


def _sha(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> None:
    """Print the figures."""
    ap = argparse.ArgumentParser(prog="./run bench media", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--seconds", type=float, default=30.0, help="recording time (s)")
    ap.add_argument("--mb", type=int, default=512, help="MB for throughput figures")
    ap.add_argument("--restore-gb", type=float, default=1.0, help="GB to back up and restore")
    args = ap.parse_args(argv)
    now = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    print(f"livecam media benchmark, {psutil.cpu_count()} cores, {now}")
    src = input_1080p30()
    units = access_units(src)
    with tempfile.TemporaryDirectory(prefix="bench-media-") as tmp:
        work = Path(tmp)
        floor = ffmpeg_floor(src, args.seconds, work)
        idle = idle_feed_cpu(min(args.seconds, 10.0))
        rec, frames = recorder_cpu(units, args.seconds, work)
        ratio = rec / floor if floor else float("inf")
        print(f"recorder, 1080p30 H.264 at 4 Mbit/s, {args.seconds:.0f} s live-paced:")
        print(f"  ffmpeg -re -c copy (fMP4)  {floor:5.2f} % of one core")
        print(
            f"  livecam Recorder           {rec:5.2f} % of one core "
            f"(feeding loop alone {idle:.2f} %), {frames} frames written"
        )
        verdict = "met" if ratio <= 2.0 else "NOT met"
        print(f"  ratio {ratio:.2f}× the floor; target ≤ 2×: {verdict}")
        enc, dec = crypto_throughput(args.mb)
        verdict = "met" if enc >= 200 else "NOT met"
        print(f"backup cipher (AES-256-GCM, 1 MiB chunks, one core), {args.mb} MB:")
        print(f"  encrypt {enc:7.0f} MB/s   decrypt+verify {dec:7.0f} MB/s")
        print(f"  target encryption ≥ 200 MB/s: {verdict}")
        with running_s3(work / "s3", "livecam-media", "livecam-backup") as s3:
            up = s3_media_upload(s3, work, args.mb)
            print(f"S3 (versitygw on loopback), {args.mb} MB clip put by the media store:")
            print(f"  upload {up:6.0f} MB/s")
            backup_s, restore_s, size = backup_restore(s3, work / "restore", args.restore_gb)
            gb = size / 1e9
            print(f"backup of a data directory with one {gb:.1f} GB clip, to S3, CLI:")
            print(f"  backup  {backup_s:6.1f} s ({size / MB / backup_s:4.0f} MB/s)")
            print(f"  restore {restore_s:6.1f} s ({size / MB / restore_s:4.0f} MB/s)")


if __name__ == "__main__":
    main()
