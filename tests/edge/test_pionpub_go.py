"""edge/pionpub's own Go tests (the SEI that carries each frame's capture time and id)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

PIONPUB = Path(__file__).resolve().parents[2] / "edge" / "pionpub"


def test_pionpub_go_tests_pass() -> None:
    go = shutil.which("go")
    if go is None:
        pytest.skip("Go is not installed (./run test installs it for pionpub)")
    result = subprocess.run(
        [go, "test", "./..."],
        cwd=PIONPUB,
        env={**os.environ, "GOSUMDB": "off", "GOFLAGS": "-mod=readonly", "CGO_ENABLED": "0"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok" in result.stdout
