"""The encrypted file format: round trips, and every kind of tampering refused correctly."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from app.backup.errors import (
    FormatError,
    TamperedError,
    TruncatedError,
    UnsupportedVersion,
    WrongKeyError,
)
from app.backup.format import (
    DEFAULT_CHUNK_SIZE,
    HEADER_BYTES,
    MIN_CHUNK_SIZE,
    EncryptingReader,
    decrypt_stream,
    encrypt_stream,
    encrypted_size,
    read_header,
)
from app.backup.keys import BackupKey, Keyring
from tests.app.backup.helpers import flip, random_key, records

CHUNK = MIN_CHUNK_SIZE


def encrypt(data: bytes, key: BackupKey, chunk_size: int = CHUNK) -> bytes:
    out = io.BytesIO()
    encrypt_stream(io.BytesIO(data), out, key, chunk_size=chunk_size)
    return out.getvalue()


def decrypt(blob: bytes, *keys: BackupKey) -> bytes:
    out = io.BytesIO()
    decrypt_stream(io.BytesIO(blob), out, Keyring(list(keys)))
    return out.getvalue()


@pytest.fixture
def key() -> BackupKey:
    return random_key()


@pytest.mark.parametrize(
    ("size", "chunk_size"),
    [
        (0, CHUNK),
        (1, CHUNK),
        (CHUNK - 1, CHUNK),
        (CHUNK, CHUNK),
        (CHUNK + 1, CHUNK),
        (3 * CHUNK, CHUNK),
        (5 * CHUNK + 17, CHUNK),
        (DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_SIZE),
        (2 * DEFAULT_CHUNK_SIZE + 12345, DEFAULT_CHUNK_SIZE),
    ],
)
def test_round_trip(key: BackupKey, size: int, chunk_size: int) -> None:
    data = os.urandom(size)
    out = io.BytesIO()
    result = encrypt_stream(io.BytesIO(data), out, key, chunk_size=chunk_size)
    blob = out.getvalue()

    assert result.plaintext_bytes == size
    assert result.ciphertext_bytes == len(blob) == encrypted_size(size, chunk_size)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.chunks == -(-size // chunk_size) + 1
    assert size < 16 or data not in blob
    back = io.BytesIO()
    decrypted = decrypt_stream(io.BytesIO(blob), back, Keyring([key]))
    assert back.getvalue() == data
    assert (decrypted.sha256, decrypted.file_id, decrypted.key_id) == (
        result.sha256,
        result.file_id,
        key.key_id_hex,
    )
    layout = records(blob)
    assert [r.final for r in layout] == [False] * (len(layout) - 1) + [True]


def test_encrypting_reader_matches_encrypt_stream(key: BackupKey) -> None:
    data = os.urandom(4 * CHUNK + 100)
    reader = EncryptingReader(io.BytesIO(data), key, chunk_size=CHUNK)
    parts = []
    # Odd read sizes: records are handed out across read boundaries.
    while part := reader.read(777):
        parts.append(part)
    blob = b"".join(parts)
    assert reader.result is not None
    assert reader.result.ciphertext_bytes == len(blob) == encrypted_size(len(data), CHUNK)
    assert blob[32:48].hex() == reader.file_id
    assert decrypt(blob, key) == data


def test_same_plaintext_encrypts_differently(key: BackupKey) -> None:
    data = b"x" * (3 * CHUNK)
    a, b = encrypt(data, key), encrypt(data, key)
    assert a != b
    nonces = [a[r.start + 4 : r.start + 16] for r in records(a)]
    assert len(set(nonces)) == len(nonces)
    # Identical plaintext chunks within a file do not give identical ciphertext either.
    ra = records(a)
    assert (
        a[ra[0].ciphertext_start : ra[0].tag_start] != a[ra[1].ciphertext_start : ra[1].tag_start]
    )


def test_header_names_key_and_chunk_size(key: BackupKey) -> None:
    blob = encrypt(b"hello", key, chunk_size=4096)
    header = read_header(io.BytesIO(blob))
    assert header.key_id == key.key_id
    assert header.chunk_size == 4096
    assert header.scrypt is None
    assert len(header.raw) == HEADER_BYTES == 104


def test_chunk_size_out_of_range_refused(key: BackupKey) -> None:
    with pytest.raises(ValueError, match="chunk size"):
        encrypt(b"x", key, chunk_size=16)


# --- tampering ------------------------------------------------------------------------

DATA = bytes(range(256)) * 20 + b"tail"  # 5 full chunks of 1024 and a short one


@pytest.fixture
def blob(key: BackupKey) -> bytes:
    return encrypt(DATA, key)


@pytest.mark.parametrize(
    ("offset", "error", "chunk_index"),
    [
        (0, FormatError, None),  # magic
        (9, UnsupportedVersion, None),  # version
        (10, TamperedError, None),  # kdf: scrypt with impossible parameters
        (11, TamperedError, None),  # reserved
        (13, TamperedError, None),  # chunk size (header MAC)
        (15, TamperedError, None),  # chunk size, low byte: out of range or MAC
        (20, WrongKeyError, None),  # key id: no such key
        (40, TamperedError, None),  # file id (header MAC)
        (50, TamperedError, None),  # salt on a key-file header
        (65, TamperedError, None),  # scrypt r on a key-file header
        (70, TamperedError, None),  # reserved
        (90, TamperedError, None),  # the header MAC itself
    ],
)
def test_header_bit_flip_refused(
    blob: bytes, key: BackupKey, offset: int, error: type[Exception], chunk_index: int | None
) -> None:
    with pytest.raises(error) as info:
        decrypt(flip(blob, offset), key)
    if isinstance(info.value, TamperedError):
        assert info.value.chunk_index == chunk_index
    if isinstance(info.value, WrongKeyError):
        assert info.value.key_id == flip(blob, offset)[16:32].hex()


@pytest.mark.parametrize("where", ["prefix", "nonce", "ciphertext", "tag"])
@pytest.mark.parametrize("index", [0, 3, 6])
def test_record_bit_flip_names_the_chunk(
    blob: bytes, key: BackupKey, where: str, index: int
) -> None:
    record = records(blob)[index]
    offset = {
        "prefix": record.start + 3,  # lowest bit of the length
        "nonce": record.start + 4 + 5,
        "ciphertext": record.ciphertext_start + 1,
        "tag": record.tag_start + 7,
    }[where]
    with pytest.raises(TamperedError) as info:
        decrypt(flip(blob, offset), key)
    assert info.value.chunk_index == index
    assert f"chunk {index}" in str(info.value)


def test_final_flag_set_on_a_data_record_refused(blob: bytes, key: BackupKey) -> None:
    record = records(blob)[2]
    with pytest.raises(TamperedError) as info:
        decrypt(flip(blob, record.start, bit=7), key)
    assert info.value.chunk_index == 2


def test_swapped_chunks_refused(blob: bytes, key: BackupKey) -> None:
    r = records(blob)
    swapped = blob[: r[1].start] + blob[r[2].start : r[2].end] + blob[r[1].start : r[1].end]
    swapped += blob[r[2].end :]
    assert len(swapped) == len(blob)
    with pytest.raises(TamperedError) as info:
        decrypt(swapped, key)
    assert info.value.chunk_index == 1


def test_dropped_middle_chunk_refused(blob: bytes, key: BackupKey) -> None:
    r = records(blob)
    with pytest.raises(TamperedError) as info:
        decrypt(blob[: r[2].start] + blob[r[2].end :], key)
    assert info.value.chunk_index == 2


def test_dropped_final_chunk_is_truncation(blob: bytes, key: BackupKey) -> None:
    r = records(blob)
    assert r[-1].final
    with pytest.raises(TruncatedError, match="without its final chunk"):
        decrypt(blob[: r[-1].start], key)


def test_dropped_last_data_chunk_refused(blob: bytes, key: BackupKey) -> None:
    r = records(blob)
    with pytest.raises(TamperedError) as info:
        decrypt(blob[: r[-2].start] + blob[r[-1].start :], key)
    assert info.value.chunk_index == len(r) - 2


@pytest.mark.parametrize("cut", [1, 50, HEADER_BYTES - 1, HEADER_BYTES + 2, HEADER_BYTES + 500])
def test_truncated_anywhere_refused(blob: bytes, key: BackupKey, cut: int) -> None:
    with pytest.raises(TruncatedError):
        decrypt(blob[:cut], key)


def test_truncated_mid_final_chunk_refused(blob: bytes, key: BackupKey) -> None:
    with pytest.raises(TruncatedError, match="inside chunk"):
        decrypt(blob[:-5], key)


def test_empty_file_refused(key: BackupKey) -> None:
    with pytest.raises(TruncatedError):
        decrypt(b"", key)


def test_appended_garbage_refused(blob: bytes, key: BackupKey) -> None:
    for garbage in (b"\x00", os.urandom(100)):
        with pytest.raises(TamperedError, match="follow the final chunk"):
            decrypt(blob + garbage, key)


def test_chunk_spliced_from_another_file_refused(blob: bytes, key: BackupKey) -> None:
    other = encrypt(DATA, key)  # same key, same plaintext, same positions
    r, o = records(blob), records(other)
    spliced = blob[: r[3].start] + other[o[3].start : o[3].end] + blob[r[3].end :]
    with pytest.raises(TamperedError) as info:
        decrypt(spliced, key)
    assert info.value.chunk_index == 3


def test_header_from_another_file_refused(blob: bytes, key: BackupKey) -> None:
    other = encrypt(DATA, key)
    with pytest.raises(TamperedError) as info:
        decrypt(other[:HEADER_BYTES] + blob[HEADER_BYTES:], key)
    assert info.value.chunk_index == 0


def test_wrong_key_names_the_key_wanted(blob: bytes, key: BackupKey) -> None:
    other = random_key()
    with pytest.raises(WrongKeyError) as info:
        decrypt(blob, other)
    assert info.value.key_id == key.key_id_hex
    assert key.key_id_hex in str(info.value)
    assert other.key_id_hex in str(info.value)


def test_same_key_id_other_secret_refused(blob: bytes, key: BackupKey) -> None:
    impostor = BackupKey(key.key_id, os.urandom(32), "impostor")
    with pytest.raises(TamperedError) as info:
        decrypt(blob, impostor)
    assert info.value.chunk_index is None


def test_not_a_backup_file(key: BackupKey) -> None:
    with pytest.raises(FormatError, match="not a livecam backup file"):
        decrypt(b"PK\x03\x04" + os.urandom(300), key)


def test_tampered_decrypt_writes_only_authenticated_chunks(blob: bytes, key: BackupKey) -> None:
    r = records(blob)
    out = io.BytesIO()
    with pytest.raises(TamperedError):
        decrypt_stream(io.BytesIO(flip(blob, r[2].ciphertext_start)), out, Keyring([key]))
    # Chunks 0 and 1 passed their tags; nothing of chunk 2 was written.
    assert out.getvalue() == DATA[: 2 * CHUNK]
