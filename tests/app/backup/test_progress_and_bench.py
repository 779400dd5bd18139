"""Progress lines on long work, and the throughput command."""

from __future__ import annotations

import io
import re

from app.backup.progress import CountingWriter, Progress, human_bytes
from app.backup.throughput import measure
from tests.app.backup.helpers import run_cli


def test_progress_lines_count_files_bytes_and_rate() -> None:
    stream = io.StringIO()
    progress = Progress("backup", 3, 3_000_000, stream=stream, interval=0.0)
    sink = io.BytesIO()
    writer = CountingWriter(sink, progress)
    writer.write(b"x" * 1_500_000)
    progress.add(files=1)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("backup: 0/3 files, 1.5 MB/3.0 MB, ")
    assert lines[-1].startswith("backup: 1/3 files, 1.5 MB/3.0 MB, ")
    assert re.search(r"\d+\.\d MB/s$", lines[-1])
    assert sink.getvalue() == b"x" * 1_500_000


def test_progress_is_quiet_when_disabled_or_recent() -> None:
    stream = io.StringIO()
    Progress("verify", 1, 10, stream=stream, enabled=False, interval=0.0).add(files=1)
    quiet = Progress("verify", 1, 10, stream=stream, interval=3600.0)
    quiet.add(files=1, nbytes=10)
    assert stream.getvalue() == ""
    assert quiet.files == 1
    assert quiet.bytes == 10


def test_human_bytes() -> None:
    assert human_bytes(512) == "512 B"
    assert human_bytes(1_500_000) == "1.5 MB"
    assert human_bytes(2_000_000_000) == "2.0 GB"


def test_measure_round_trips() -> None:
    result = measure(8 * 1024 * 1024)
    assert result.encrypt_mb_s > 0
    assert result.decrypt_mb_s > 0


def test_bench_command_prints_both_rates() -> None:
    result = run_cli("bench", "--mib", "16")
    assert result.returncode == 0, result.stderr
    assert re.search(r"encrypt \d+ MB/s, decrypt \d+ MB/s", result.stdout)
