"""The dashboard's "Add camera": it creates the camera and shows the Pi's one-line install
command, whose enrollment code really enrolls an edge (once)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
from playwright.sync_api import BrowserContext, expect

from scripts.devstack import ROOT, Stack
from tests.browser.dashboard import collect_csp_violations, open_dashboard


def _enroll(stack: Stack, code: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "edge",
            "enroll",
            "--server",
            stack.api.url,
            "--code",
            code,
            "--config",
            str(config),
            "--source",
            "synthetic",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_add_camera_shows_a_command_whose_code_enrolls_once(
    browser: BrowserContext, stack: Stack, tmp_path: Path
) -> None:
    collect_csp_violations(browser)  # the server's own strict CSP applies to this page
    page = open_dashboard(browser, stack, route="#/add-camera")
    expect(page.locator("h1")).to_have_text("Add camera")
    expect(page.locator('nav a[data-route="add-camera"]')).to_have_attribute("aria-current", "page")
    page.fill("#camera-name", "Garage")
    page.select_option("#camera-source", "rtsp")
    page.click("#add-camera-form button[type=submit]")
    command = page.locator("#install-command")
    expect(command).to_contain_text("install-edge.sh")
    text = command.text_content() or ""
    origin = stack.api.url
    match = re.fullmatch(
        rf"curl -fsSL {re.escape(origin)}/install-edge\.sh \| sudo bash -s -- "
        rf"--server {re.escape(origin)} --code (\S+) --source rtsp",
        text,
    )
    assert match, text
    assert page.locator("#code-expiry").get_attribute("datetime")
    assert page.evaluate("window.__cspViolations") == []
    # The command's script is really there.
    assert httpx.get(f"{origin}/install-edge.sh").status_code == 200

    with stack.api.client() as c:
        cameras = {cam["name"]: cam["id"] for cam in c.get("/api/cameras").json()}
    assert "Garage" in cameras

    config = tmp_path / "edge.toml"
    first = _enroll(stack, match.group(1), config)
    assert first.returncode == 0, first.stderr
    assert f'id = "{cameras["Garage"]}"' in config.read_text()
    again = _enroll(stack, match.group(1), tmp_path / "other.toml")
    assert again.returncode == 1
    assert "enroll failed" in again.stderr


def test_add_camera_refuses_an_empty_name(browser: BrowserContext, stack: Stack) -> None:
    page = open_dashboard(browser, stack, route="#/add-camera")
    page.fill("#camera-name", "   ")
    page.click("#add-camera-form button[type=submit]")
    expect(page.locator("#add-camera-error")).to_contain_text("Could not create the camera")
    expect(page.locator("#add-camera-result")).to_be_hidden()
