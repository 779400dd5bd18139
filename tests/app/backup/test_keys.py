"""Key files, passphrase keys and the keyring (rotation)."""

from __future__ import annotations

import io
import os
import stat
import struct
import time
import unicodedata
from pathlib import Path

import pytest

from app.backup.errors import KeyFilePermissionError, KeyProblem, TamperedError, WrongKeyError
from app.backup.format import decrypt_stream, encrypt_stream, read_header
from app.backup.keys import (
    BackupKey,
    Keyring,
    ScryptParams,
    derive_passphrase_key,
    generate_key_file,
    load_key_file,
    load_keyring,
    new_passphrase_key,
)
from tests.app.backup.helpers import flip, random_key

# A cheaper scrypt where the cost is not what a test is about (2**14: ~4 ms).
FAST = 14


def encrypt(data: bytes, key: BackupKey) -> bytes:
    out = io.BytesIO()
    encrypt_stream(io.BytesIO(data), out, key)
    return out.getvalue()


def decrypt(blob: bytes, keyring: Keyring) -> bytes:
    out = io.BytesIO()
    decrypt_stream(io.BytesIO(blob), out, keyring)
    return out.getvalue()


def test_generated_key_file_is_private_and_loads(tmp_path: Path) -> None:
    path = tmp_path / "backup.key"
    key = generate_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_key_file(path)
    assert (loaded.key_id, loaded.secret) == (key.key_id, key.secret)
    assert key.key_id_hex in path.read_text()
    other = generate_key_file(tmp_path / "other.key")
    assert other.key_id != key.key_id
    assert other.secret != key.secret


def test_keygen_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "backup.key"
    generate_key_file(path)
    before = path.read_bytes()
    with pytest.raises(KeyProblem, match="refusing to overwrite"):
        generate_key_file(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o602])
def test_key_file_others_can_access_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "backup.key"
    generate_key_file(path)
    path.chmod(mode)
    with pytest.raises(KeyFilePermissionError, match="chmod 600") as info:
        load_key_file(path)
    assert f"{mode:04o}" in str(info.value)


def test_read_only_key_file_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "backup.key"
    key = generate_key_file(path)
    path.chmod(0o400)
    assert load_key_file(path).secret == key.secret


def test_missing_or_malformed_key_file(tmp_path: Path) -> None:
    with pytest.raises(KeyProblem, match="does not exist"):
        load_key_file(tmp_path / "nope.key")
    bad = tmp_path / "bad.key"
    bad.write_text("hello\n")
    bad.chmod(0o600)
    with pytest.raises(KeyProblem, match="malformed"):
        load_key_file(bad)
    bad.write_text("livecam-backup-key: 1\nid: zz\nkey: 00\n")
    with pytest.raises(KeyProblem, match="not hex"):
        load_key_file(bad)
    bad.write_text("something: else\n")
    with pytest.raises(KeyProblem, match="not a livecam backup key file"):
        load_key_file(bad)


def test_passphrase_key_default_cost_in_header() -> None:
    started = time.monotonic()
    key = new_passphrase_key("correct horse battery staple")
    assert time.monotonic() - started < 30
    blob = encrypt(b"secret data", key)
    header = read_header(io.BytesIO(blob))
    assert header.scrypt == key.scrypt
    assert header.scrypt is not None
    assert (header.scrypt.log2_n, header.scrypt.r, header.scrypt.p) == (17, 8, 1)
    assert decrypt(blob, Keyring(passphrase="correct horse battery staple")) == b"secret data"


def test_passphrase_is_deterministic_per_salt_and_normalized() -> None:
    params = ScryptParams(os.urandom(16), FAST)
    composed = unicodedata.normalize("NFC", "café crème brûlée")
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    a = derive_passphrase_key(composed, params)
    b = derive_passphrase_key(decomposed, params)
    assert a.secret == b.secret
    assert a.key_id == b.key_id
    c = derive_passphrase_key(composed, ScryptParams(os.urandom(16), FAST))
    assert c.secret != a.secret
    assert c.key_id != a.key_id


def test_wrong_passphrase_is_named_as_such() -> None:
    key = new_passphrase_key("the right passphrase", log2_n=FAST)
    blob = encrypt(b"data", key)
    with pytest.raises(WrongKeyError, match="wrong passphrase") as info:
        decrypt(blob, Keyring(passphrase="the wrong passphrase"))
    assert info.value.key_id == key.key_id_hex
    with pytest.raises(WrongKeyError, match="--passphrase"):
        decrypt(blob, Keyring([random_key()]))


def test_short_passphrase_refused() -> None:
    with pytest.raises(KeyProblem, match="at least 8"):
        Keyring(passphrase="short")


def test_forged_scrypt_cost_refused_before_deriving() -> None:
    key = new_passphrase_key("the right passphrase", log2_n=FAST)
    blob = bytearray(encrypt(b"data", key))
    blob[64] = 28  # log2 N = 28 with r = 8: 32 GiB of scrypt memory
    started = time.monotonic()
    with pytest.raises(TamperedError, match="scrypt"):
        decrypt(bytes(blob), Keyring(passphrase="the right passphrase"))
    assert time.monotonic() - started < 1.0


def test_passphrase_salt_flip_is_refused() -> None:
    key = new_passphrase_key("the right passphrase", log2_n=FAST)
    blob = encrypt(b"data", key)
    # A damaged salt derives another key: reported as a key mismatch, nothing decrypted.
    with pytest.raises(WrongKeyError):
        decrypt(flip(blob, 50), Keyring(passphrase="the right passphrase"))


def test_keyring_rotation_decrypts_old_and_new(tmp_path: Path) -> None:
    old = generate_key_file(tmp_path / "2029.key")
    old_blob = encrypt(b"old footage", Keyring([old]).current)
    new = generate_key_file(tmp_path / "2030.key")
    ring = load_keyring([tmp_path / "2030.key", tmp_path / "2029.key"])
    assert ring.current.key_id == new.key_id
    new_blob = encrypt(b"new footage", ring.current)
    assert read_header(io.BytesIO(new_blob)).key_id == new.key_id
    assert decrypt(old_blob, ring) == b"old footage"
    assert decrypt(new_blob, ring) == b"new footage"
    # Without the old key, the old backup names the key it needs.
    with pytest.raises(WrongKeyError, match=old.key_id_hex):
        decrypt(old_blob, load_keyring([tmp_path / "2030.key"]))


def test_key_dir_newest_is_current(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    ids = {}
    for name, created in (("a", "2031-01-01T00:00:00Z"), ("b", "2029-01-01T00:00:00Z")):
        path = keys / f"{name}.key"
        ids[name] = generate_key_file(path).key_id
        text = path.read_text()
        start = text.index("created: ") + len("created: ")
        path.write_text(text[:start] + created + text[text.index("\n", start) :])
    (keys / "notes.txt").write_text("not a key")
    ring = load_keyring(key_dirs=[keys])
    assert ring.current.key_id == ids["a"]
    assert sorted(ring.key_ids()) == sorted(i.hex() for i in ids.values())
    # An explicit key file goes before the directory's keys.
    first = generate_key_file(tmp_path / "first.key")
    assert load_keyring([tmp_path / "first.key"], [keys]).current.key_id == first.key_id


def test_keyring_needs_a_key(tmp_path: Path) -> None:
    with pytest.raises(KeyProblem, match="no key"):
        Keyring()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(KeyProblem, match=r"no \*\.key"):
        load_keyring(key_dirs=[empty])


def test_passphrase_current_only_without_key_files(tmp_path: Path) -> None:
    keyfile = generate_key_file(tmp_path / "k.key")
    ring = Keyring([keyfile], passphrase="a long passphrase")
    assert ring.current.key_id == keyfile.key_id
    assert Keyring(passphrase="a long passphrase").current.scrypt is not None


def test_header_layout_of_passphrase_key() -> None:
    key = new_passphrase_key("a long passphrase", log2_n=FAST, r=4, p=2)
    blob = encrypt(b"", key)
    assert blob[10] == 1  # kdf: scrypt
    assert key.scrypt is not None
    assert blob[48:64] == key.scrypt.salt
    assert struct.unpack_from(">BBB", blob, 64) == (FAST, 4, 2)
