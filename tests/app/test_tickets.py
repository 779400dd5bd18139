"""app.tickets: MJPEG tickets are bound to one camera, expire, and cannot be forged."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.tickets import SERVER_SECRET_FILE, TicketSigner, load_server_secret

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def signer() -> TicketSigner:
    return TicketSigner(b"k" * 32)


def test_ticket_is_valid_for_its_camera_until_it_expires(signer: TicketSigner) -> None:
    ticket = signer.issue("door", NOW)
    assert ticket.expires_at == NOW + timedelta(seconds=60)
    assert signer.verify(ticket.value, "door", NOW)
    assert signer.verify(ticket.value, "door", NOW + timedelta(seconds=59))
    assert not signer.verify(ticket.value, "door", NOW + timedelta(seconds=60))
    assert not signer.verify(ticket.value, "yard", NOW), "bound to its camera"


def test_ticket_from_another_secret_or_tampered_is_refused(signer: TicketSigner) -> None:
    value = signer.issue("door", NOW).value
    assert not TicketSigner(b"x" * 32).verify(value, "door", NOW)
    version, expires, mac = value.split(".")
    later = str(int(expires) + 3600)
    assert not signer.verify(f"{version}.{later}.{mac}", "door", NOW), "expiry is signed"
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    assert not signer.verify(f"{version}.{expires}.{flipped}", "door", NOW)


@pytest.mark.parametrize(
    "value", ["", "v1", "v1..", "v2.1893553445.abc", "v1.-5.abc", "v1.soon.abc", "a.b.c.d"]
)
def test_malformed_tickets_are_refused(signer: TicketSigner, value: str) -> None:
    assert not signer.verify(value, "door", NOW)


def test_ticket_is_url_safe(signer: TicketSigner) -> None:
    value = signer.issue("front-door", NOW).value
    assert all(c.isalnum() or c in "._-" for c in value)


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        TicketSigner(b"short")


def test_server_secret_is_created_private_once_and_reused(tmp_path: Path) -> None:
    first = load_server_secret(tmp_path)
    path = tmp_path / SERVER_SECRET_FILE
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_server_secret(tmp_path) == first
    assert [p.name for p in tmp_path.iterdir()] == [SERVER_SECRET_FILE], "no temp file left"


def test_a_damaged_server_secret_is_an_error(tmp_path: Path) -> None:
    (tmp_path / SERVER_SECRET_FILE).write_text("not hex\n")
    with pytest.raises(RuntimeError, match="delete it to renew"):
        load_server_secret(tmp_path)
