"""The systemd units in systemd/ are well formed and carry the required hardening."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

UNITS_DIR = Path(__file__).resolve().parents[2] / "systemd"
UNITS = sorted(UNITS_DIR.glob("*.service"))

REQUIRED_SERVICE_KEYS = (
    "Restart",
    "RestartSec",
    "ExecStart",
    "NoNewPrivileges",
    "ProtectSystem",
    "ProtectHome",
    "PrivateTmp",
    "CapabilityBoundingSet",
    "RestrictAddressFamilies",
    "SystemCallFilter",
    "EnvironmentFile",
)


def _parse(unit: Path) -> configparser.RawConfigParser:
    """Parse a unit file; repeated keys (DeviceAllow) are kept as the last value."""
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read(unit)
    return parser


def test_units_exist() -> None:
    names = {u.name for u in UNITS}
    assert {"livecam-api.service", "livecam-edge.service", "livekit-server.service"} <= names


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_has_required_keys(unit: Path) -> None:
    parser = _parse(unit)
    service = parser["Service"]
    missing = [k for k in REQUIRED_SERVICE_KEYS if k not in service]
    assert not missing, f"{unit.name} lacks {missing}"
    assert service["Restart"] == "on-failure"
    assert service["ProtectSystem"] == "strict"
    assert service["CapabilityBoundingSet"] == ""
    assert "StartLimitBurst" in parser["Unit"]
    assert "User" in service or service.get("DynamicUser") == "yes"
    assert parser["Install"]["WantedBy"] == "multi-user.target"


def test_edge_unit_is_notify_with_watchdog() -> None:
    service = _parse(UNITS_DIR / "livecam-edge.service")["Service"]
    assert service["Type"] == "notify"
    assert service["WatchdogSec"] == "30"
    assert service["SupplementaryGroups"] == "video"
    assert service["StateDirectory"] == "livecam-edge"
    text = (UNITS_DIR / "livecam-edge.service").read_text()
    assert "DeviceAllow=/dev/dma_heap" in text
    assert "DeviceAllow=char-video4linux" in text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_systemd_analyze_verify(unit: Path) -> None:
    # verify complains about missing ExecStart binaries and users on a dev box; those
    # are install-time facts, so only syntax/unknown-key errors count here.
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    errors = [
        line
        for line in proc.stderr.splitlines()
        if ("Unknown key" in line or "Invalid" in line or "Failed to parse" in line)
        and "is not executable" not in line
    ]
    assert not errors, proc.stderr


def test_python_units_start_modules_that_exist() -> None:
    """`python -m <module>` in ExecStart names a package of this repo with a __main__."""
    repo = UNITS_DIR.parent
    for name in ("livecam-api.service", "livecam-edge.service"):
        argv = _parse(UNITS_DIR / name)["Service"]["ExecStart"].split()
        module = argv[argv.index("-m") + 1]
        assert (repo / module / "__main__.py").is_file(), f"{name}: no {module}/__main__.py"
