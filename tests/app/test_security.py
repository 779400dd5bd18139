"""app/security.py: secret formats and hashing."""

from __future__ import annotations

import re

from app.security import (
    ENROLLMENT_ALPHABET,
    hash_secret,
    new_admin_key,
    new_camera_id,
    new_edge_credential,
    new_enrollment_code,
    normalize_enrollment_code,
    secrets_equal,
)


def test_formats() -> None:
    assert re.fullmatch(r"lca_[A-Za-z0-9_-]{40}", new_admin_key())
    assert re.fullmatch(r"lce_[A-Za-z0-9_-]{43}", new_edge_credential())
    assert re.fullmatch(r"[a-z0-9]{8}", new_camera_id())
    code = new_enrollment_code()
    assert re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}", code)
    assert set(code.replace("-", "")) <= set(ENROLLMENT_ALPHABET)
    assert len({new_admin_key() for _ in range(50)}) == 50


def test_alphabet_has_no_lookalikes() -> None:
    assert not set("01OILU") & set(ENROLLMENT_ALPHABET)


def test_code_normalization() -> None:
    assert normalize_enrollment_code(" k7qm-3xht 9wzb\n") == "K7QM3XHT9WZB"


def test_hashing_and_comparison() -> None:
    digest = hash_secret("lca_x")
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert digest == hash_secret("lca_x") != hash_secret("lca_y")
    assert secrets_equal(digest, hash_secret("lca_x"))
    assert not secrets_equal(digest, hash_secret("lca_y"))
