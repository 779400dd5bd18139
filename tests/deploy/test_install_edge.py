"""scripts/install-edge.sh: shellcheck-clean, a dry run that changes nothing, a real run
into a scratch root (LIVECAM_ROOT) with stub system commands, and an idempotent re-run.

The edge code comes from a real HTTP server serving the bundle the API builds
(app/api/install.py), fetched by the real curl; only commands that would change the host
(apt-get, useradd, systemctl, chown, the venv's python) are stubs that log their calls.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from app.api.install import build_bundle

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "install-edge.sh"
CODE = "ABCD-EFGH-JKLM"

# Each stub appends its argv to $STUB_LOG; state lives in marker files under $STUB_STATE.
STUBS = {
    "dpkg": '[ -e "$STUB_STATE/pkg-$2" ]',
    "apt-get": (
        'echo "apt-get $*" >>"$STUB_LOG"\n'
        'if [ "$1" = install ] || [ "$2" = install ] || [ "$3" = install ]; then\n'
        '  for a in "$@"; do\n'
        '    case "$a" in -*|install) ;; *) touch "$STUB_STATE/pkg-$a";; esac\n'
        "  done\n"
        "fi"
    ),
    "id": (
        'if [ "$1" = -u ]; then echo 0; exit 0; fi\n'
        '[ -e "$STUB_STATE/user-$1" ] && echo "uid=999($1)"'
    ),
    "useradd": (
        'echo "useradd $*" >>"$STUB_LOG"\nfor a; do last=$a; done; touch "$STUB_STATE/user-$last"'
    ),
    "chown": 'echo "chown $*" >>"$STUB_LOG"',
    "systemctl": (
        'echo "systemctl $*" >>"$STUB_LOG"\n'
        'case "$1" in\n'
        '  is-enabled) [ -e "$STUB_STATE/enabled" ];;\n'
        '  enable) touch "$STUB_STATE/enabled";;\n'
        "esac"
    ),
    # `python3 -m venv DIR`: a venv whose python/pip are stubs too.
    "python3": (
        'echo "python3 $*" >>"$STUB_LOG"\n'
        'for a; do dir=$a; done\nmkdir -p "$dir/bin"\n'
        'cp "$STUB_BIN/venv-python" "$dir/bin/python"\n'
        'cp "$STUB_BIN/venv-pip" "$dir/bin/pip"'
    ),
    "venv-pip": 'echo "pip $*" >>"$STUB_LOG"',
    # `python -m edge enroll ... --config FILE`: writes what the real enroll writes.
    "venv-python": (
        'echo "python $*" >>"$STUB_LOG"\n'
        'while [ $# -gt 0 ]; do [ "$1" = --config ] && cfg=$2; shift; done\n'
        'printf \'server = "x"\\n[[camera]]\\nid = "cam-1"\\n\' >>"$cfg"'
    ),
}


class _Bundle(BaseHTTPRequestHandler):
    data = b""

    def do_GET(self) -> None:
        if self.path != "/edge-bundle.tar.gz":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.data)))
        self.end_headers()
        self.wfile.write(self.data)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    _Bundle.data = build_bundle()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Bundle)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    stub_bin = tmp_path / "stubs"
    stub_bin.mkdir()
    for name, body in STUBS.items():
        path = stub_bin / name
        path.write_text(f"#!/bin/bash\n{body}\n")
        path.chmod(0o755)
    (tmp_path / "state").mkdir()
    (tmp_path / "root").mkdir()
    return {
        "PATH": f"{stub_bin}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LIVECAM_ROOT": str(tmp_path / "root"),
        "STUB_BIN": str(stub_bin),
        "STUB_STATE": str(tmp_path / "state"),
        "STUB_LOG": str(tmp_path / "calls.log"),
    }


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=120
    )


def _calls(env: dict[str, str]) -> str:
    log = Path(env["STUB_LOG"])
    return log.read_text() if log.exists() else ""


def _files(env: dict[str, str]) -> list[Path]:
    return sorted(Path(env["LIVECAM_ROOT"]).rglob("*"))


def test_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing: ./run installs the Debian package"
    result = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_dry_run_prints_every_step_and_changes_nothing(env: dict[str, str], server: str) -> None:
    result = _run(env, "--server", server, "--code", CODE, "--dry-run")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for step in (
        "Debian packages",
        "system user",
        "edge code",
        "Python environment",
        "enrollment",
        "systemd unit",
    ):
        assert f"==> {step}" in out, out
    assert "would run: apt-get update" in out
    assert "would run: useradd" in out
    assert f"--code {CODE}" in out
    assert "would run: systemctl restart livecam-edge.service" in out
    assert "    run:" not in out
    assert _files(env) == []
    # Only read-only queries (dpkg -s, id, systemctl is-enabled) were made.
    assert [c for c in _calls(env).splitlines() if "is-enabled" not in c] == []


def test_install_then_rerun_is_idempotent(env: dict[str, str], server: str) -> None:
    first = _run(env, "--server", server + "/", "--code", CODE)
    assert first.returncode == 0, first.stdout + first.stderr
    root = Path(env["LIVECAM_ROOT"])
    assert (root / "opt/livecam-edge/app/edge/__main__.py").is_file()
    assert (root / "opt/livecam-edge/app/requirements.txt").is_file()
    assert not list(root.rglob("__pycache__"))
    unit = root / "etc/systemd/system/livecam-edge.service"
    assert unit.read_text() == (REPO / "systemd/livecam-edge.service").read_text()
    assert "[[camera]]" in (root / "etc/livecam-edge/edge.toml").read_text()
    calls = _calls(env)
    assert "apt-get install" in calls or "install -y" in calls
    assert "useradd --system" in calls
    assert f"-m edge enroll --server {server} --code {CODE}" in calls
    assert "--source picamera2" in calls
    assert "systemctl enable livecam-edge.service" in calls
    assert "systemctl restart livecam-edge.service" in calls

    Path(env["STUB_LOG"]).unlink()
    second = _run(env, "--server", server)  # no --code: the machine is enrolled
    assert second.returncode == 0, second.stdout + second.stderr
    for what in (
        "packages installed",
        "user livecam exists",
        "edge code is current",
        "requirements installed",
        "enrolled",
        "unit installed",
        "unit enabled",
    ):
        assert f"already done: {what}" in second.stdout, second.stdout
    again = _calls(env)
    assert "apt-get" not in again
    assert "useradd" not in again
    assert "enroll" not in again
    assert "pip install" not in again
    assert "systemctl restart" in again  # a re-run restarts onto the current code


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--server is required"),
        (["--server", "cams.example.com", "--code", CODE], "must start with https://"),
        (["--server", "https://x"], "--code is required"),
        (["--server", "https://x", "--code", CODE, "--source", "webcam"], "--source must be"),
        (["--server", "https://x", "--code", CODE, "--bundle", "/nonexistent"], "does not exist"),
        (["--server", "https://x", "--code", CODE, "--frobnicate"], "unknown argument"),
        (["--code"], "--code needs"),
    ],
)
def test_bad_arguments_fail_clearly_and_change_nothing(
    env: dict[str, str], args: list[str], message: str
) -> None:
    result = _run(env, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert _files(env) == []
    assert _calls(env) == ""


def test_unreachable_server_fails_without_half_an_install(env: dict[str, str]) -> None:
    result = _run(env, "--server", "http://127.0.0.1:9", "--code", CODE)
    assert result.returncode == 2
    assert "cannot download http://127.0.0.1:9/edge-bundle.tar.gz" in result.stderr
    assert not (Path(env["LIVECAM_ROOT"]) / "opt/livecam-edge/app").exists()


def test_help_lists_the_options(env: dict[str, str]) -> None:
    result = _run(env, "--help")
    assert result.returncode == 0
    for option in ("--server", "--code", "--source", "--bundle", "--dry-run"):
        assert option in result.stdout


def test_checkout_as_bundle(env: dict[str, str]) -> None:
    result = _run(env, "--server", "https://x", "--code", CODE, "--bundle", str(REPO))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (Path(env["LIVECAM_ROOT"]) / "opt/livecam-edge/app/edge/cli.py").is_file()
    assert os.access(SCRIPT, os.X_OK)
