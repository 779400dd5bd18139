"""The encrypted backup file format, version 1 (every byte is described in FORMAT.md).

A file is a 104-byte header and a sequence of records, each one AES-256-GCM chunk:

    header | data record 0 | data record 1 | ... | final record

Data records hold up to ``chunk_size`` bytes of plaintext each (1 MiB by default); the
final record holds the plaintext's length and SHA-256. Every record has its own random
96-bit nonce, and its additional authenticated data binds the SHA-256 of the header
(magic, version, key id, a random file id, chunk size, KDF parameters, header MAC), the
record's index and its 4-byte length/final field. So a record moved to another place,
taken from another file, or relabelled as final fails its tag; a file without its final
record is refused as truncated; bytes after it are refused too.

Each file is encrypted under its own key, HKDF-SHA256(backup key, salt=file id), which
also keys an HMAC of the header: a damaged header is reported as such before any chunk.

Streaming: memory is bounded by two chunk buffers whatever the file size; plaintext and
ciphertext go through preallocated buffers (``readinto``, ``encrypt_into``,
``decrypt_into``), no per-chunk allocation. ``decrypt_stream`` writes plaintext as it is
authenticated chunk by chunk: the output is only valid once it returns; on an exception,
discard what it wrote (restore writes to a temp file for that reason).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import secrets
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.backup.errors import (
    FormatError,
    KeyProblem,
    TamperedError,
    TruncatedError,
    UnsupportedVersion,
)
from app.backup.keys import KEY_ID_BYTES, SALT_BYTES, BackupKey, Keyring, ScryptParams
from app.backup.streams import Readable, Writable, read_into, read_upto

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

MAGIC = b"\x89LCBK\r\n\x1a"
VERSION = 1
KDF_NONE = 0
KDF_SCRYPT = 1

DEFAULT_CHUNK_SIZE = 1024 * 1024
MIN_CHUNK_SIZE = 1024
MAX_CHUNK_SIZE = 64 * 1024 * 1024

FILE_ID_BYTES = 16
NONCE_BYTES = 12
TAG_BYTES = 16
MAC_BYTES = 32
#: magic, version, kdf, reserved, chunk size, key id, file id, salt, log2 n, r, p, reserved
_HEADER_BODY = struct.Struct(f">8sHBBI{KEY_ID_BYTES}s{FILE_ID_BYTES}s{SALT_BYTES}sBBB5s")
HEADER_BYTES = _HEADER_BODY.size + MAC_BYTES  # 104
_PREFIX = struct.Struct(">I")
RECORD_OVERHEAD = _PREFIX.size + NONCE_BYTES + TAG_BYTES  # 32
FINAL_FLAG = 0x8000_0000
_TRAILER = struct.Struct(">Q32s")  # plaintext length, plaintext SHA-256
_INDEX = struct.Struct(">Q")
_HKDF_INFO = b"livecam-backup v1 file keys"


@dataclass(frozen=True, slots=True)
class Header:
    """The parsed header of a backup file (readable without any key)."""

    version: int
    chunk_size: int
    key_id: bytes
    file_id: bytes
    scrypt: ScryptParams | None
    raw: bytes

    @property
    def key_id_hex(self) -> str:
        """The key id as 32 hex digits."""
        return self.key_id.hex()

    @property
    def file_id_hex(self) -> str:
        """The file id as 32 hex digits."""
        return self.file_id.hex()


@dataclass(frozen=True, slots=True)
class EncryptResult:
    """What ``encrypt_stream`` wrote: sizes, the plaintext's SHA-256 (hex), the ids."""

    plaintext_bytes: int
    ciphertext_bytes: int
    sha256: str
    key_id: str
    file_id: str
    chunks: int


@dataclass(frozen=True, slots=True)
class DecryptResult:
    """What ``decrypt_stream`` authenticated: sizes, SHA-256 (hex, checked against the
    authenticated trailer), the ids from the header."""

    plaintext_bytes: int
    ciphertext_bytes: int
    sha256: str
    key_id: str
    file_id: str
    chunks: int


def _file_keys(key: BackupKey, file_id: bytes) -> tuple[AESGCM, bytes]:
    """The file's AES-256-GCM key and header MAC key, derived from the backup key."""
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=file_id, info=_HKDF_INFO).derive(
        key.secret
    )
    return AESGCM(okm[:32]), okm[32:]


def _header_body(key: BackupKey, file_id: bytes, chunk_size: int) -> bytes:
    s = key.scrypt
    return _HEADER_BODY.pack(
        MAGIC,
        VERSION,
        KDF_SCRYPT if s else KDF_NONE,
        0,
        chunk_size,
        key.key_id,
        file_id,
        s.salt if s else bytes(SALT_BYTES),
        s.log2_n if s else 0,
        s.r if s else 0,
        s.p if s else 0,
        bytes(5),
    )


def parse_header(raw: bytes) -> Header:
    """Parses the first HEADER_BYTES of a file (not yet authenticated: that needs the key).
    FormatError / UnsupportedVersion / TruncatedError when it cannot be a v1 header."""
    if len(raw) < len(MAGIC) or raw[: len(MAGIC)] != MAGIC:
        if len(raw) < len(MAGIC) and MAGIC.startswith(raw):
            raise TruncatedError(f"the file ends inside its header ({len(raw)} bytes)")
        raise FormatError("not a livecam backup file (wrong magic bytes)")
    if len(raw) >= 10:
        version = struct.unpack_from(">H", raw, 8)[0]
        if version != VERSION:
            raise UnsupportedVersion(version, VERSION)
    if len(raw) < HEADER_BYTES:
        raise TruncatedError(f"the file ends inside its header ({len(raw)} bytes)")
    (_, version, kdf, reserved, chunk_size, key_id, file_id, salt, log2_n, r, p, reserved2) = (
        _HEADER_BODY.unpack_from(raw)
    )
    if kdf not in (KDF_NONE, KDF_SCRYPT) or reserved or any(reserved2):
        raise TamperedError("header fields hold impossible values (damaged header)", None)
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise TamperedError(f"header names an impossible chunk size {chunk_size}", None)
    scrypt: ScryptParams | None = None
    if kdf == KDF_SCRYPT:
        scrypt = ScryptParams(salt, log2_n, r, p)
        try:
            scrypt.check()
        except KeyProblem:
            raise TamperedError("header names impossible scrypt parameters", None) from None
    elif any(salt) or log2_n or r or p:
        raise TamperedError("header holds scrypt parameters for a key-file key", None)
    return Header(version, chunk_size, key_id, file_id, scrypt, bytes(raw[:HEADER_BYTES]))


def read_header(src: Readable) -> Header:
    """Reads and parses the header at the start of ``src`` (no key needed): which key and
    file id a backup file has."""
    return parse_header(read_upto(src, HEADER_BYTES))


def _aad(header_hash: bytes, index: int, prefix: int) -> bytes:
    return header_hash + _INDEX.pack(index) + _PREFIX.pack(prefix)


class _Encryptor:
    """Makes the file's bytes one piece at a time: the header, then one record per call."""

    def __init__(self, src: Readable, key: BackupKey, chunk_size: int) -> None:
        if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk size must be {MIN_CHUNK_SIZE}..{MAX_CHUNK_SIZE} bytes")
        self._src = src
        self._key = key
        self.chunk_size = chunk_size
        self.file_id = secrets.token_bytes(FILE_ID_BYTES)
        self._aes, mac_key = _file_keys(key, self.file_id)
        body = _header_body(key, self.file_id, chunk_size)
        self.header = body + hmac.digest(mac_key, body, "sha256")
        self._header_hash = hashlib.sha256(self.header).digest()
        self._plain = bytearray(chunk_size)
        self._out = bytearray(chunk_size + RECORD_OVERHEAD)
        self._sha = hashlib.sha256()
        self._index = 0
        self._done = False
        self.plaintext_bytes = 0
        self.ciphertext_bytes = len(self.header)

    def next_record(self) -> memoryview | None:
        """The next record's bytes (valid until the next call), or None after the final."""
        if self._done:
            return None
        plain = memoryview(self._plain)
        length = read_into(self._src, plain)
        if length:
            prefix = length
            self._sha.update(plain[:length])
            self.plaintext_bytes += length
        else:
            # End of input: the final record carries the length and the SHA-256.
            prefix = FINAL_FLAG | _TRAILER.size
            length = _TRAILER.size
            _TRAILER.pack_into(self._plain, 0, self.plaintext_bytes, self._sha.digest())
            self._done = True
        out = memoryview(self._out)
        nonce = secrets.token_bytes(NONCE_BYTES)
        _PREFIX.pack_into(self._out, 0, prefix)
        out[_PREFIX.size : _PREFIX.size + NONCE_BYTES] = nonce
        start = _PREFIX.size + NONCE_BYTES
        end = start + length + TAG_BYTES
        self._aes.encrypt_into(
            nonce, plain[:length], _aad(self._header_hash, self._index, prefix), out[start:end]
        )
        self._index += 1
        self.ciphertext_bytes += end
        return out[:end]

    def result(self) -> EncryptResult:
        return EncryptResult(
            self.plaintext_bytes,
            self.ciphertext_bytes,
            self._sha.hexdigest(),
            self._key.key_id_hex,
            self.file_id.hex(),
            self._index,
        )


def encrypt_stream(
    src: Readable, dst: Writable, key: BackupKey, *, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> EncryptResult:
    """Encrypts everything ``src`` yields into ``dst`` (the whole file: header, records,
    final record). Memory: two buffers of ``chunk_size``, whatever the input's size."""
    enc = _Encryptor(src, key, chunk_size)
    dst.write(enc.header)
    while (record := enc.next_record()) is not None:
        dst.write(record)
    return enc.result()


class EncryptingReader(io.RawIOBase):
    """The encrypted file as a readable stream, made as it is read: hand it to an uploader
    (boto3 ``upload_fileobj``) and nothing is staged on disk. ``result`` is set once the
    stream has been read to its end."""

    def __init__(
        self, src: Readable, key: BackupKey, *, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> None:
        super().__init__()
        self._enc = _Encryptor(src, key, chunk_size)
        self._pending: memoryview | None = memoryview(self._enc.header)
        self.result: EncryptResult | None = None

    @property
    def file_id(self) -> str:
        """The random file id (hex) of the file being made: it names the object."""
        return self._enc.file_id.hex()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        # RawIOBase.read may return None (non-blocking streams); this one never blocks.
        return super().read(size) or b""

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        target = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(target):
            if self._pending is None or not len(self._pending):
                self._pending = self._enc.next_record()
                if self._pending is None:
                    self.result = self._enc.result()
                    break
            n = min(len(target) - filled, len(self._pending))
            target[filled : filled + n] = self._pending[:n]
            self._pending = self._pending[n:]
            filled += n
        return filled


def decrypt_stream(src: Readable, dst: Writable | None, keyring: Keyring) -> DecryptResult:
    """Authenticates and decrypts a whole backup file from ``src`` into ``dst`` (None: only
    verify). Raises FormatError / UnsupportedVersion (not a v1 file), WrongKeyError (no key
    for it), TamperedError (a tag, the header MAC, the order of records or the checksum
    fails; ``chunk_index`` says which), TruncatedError (no final record). On an exception
    ``dst`` holds unverified partial output: discard it."""
    header = read_header(src)
    key = keyring.key_for(header.key_id, header.scrypt)
    aes, mac_key = _file_keys(key, header.file_id)
    body = header.raw[: _HEADER_BODY.size]
    if not hmac.compare_digest(
        hmac.digest(mac_key, body, "sha256"), header.raw[_HEADER_BODY.size :]
    ):
        raise TamperedError("the header fails authentication: it was damaged or altered", None)
    header_hash = hashlib.sha256(header.raw).digest()
    chunk_size = header.chunk_size
    record = bytearray(chunk_size + NONCE_BYTES + TAG_BYTES)
    plain = bytearray(chunk_size)
    record_mv, plain_mv = memoryview(record), memoryview(plain)
    sha = hashlib.sha256()
    total = 0
    ciphertext = HEADER_BYTES
    index = 0
    short_seen = False
    while True:
        prefix_raw = read_upto(src, _PREFIX.size)
        if len(prefix_raw) < _PREFIX.size:
            raise TruncatedError(
                f"the file ends after {index} chunks without its final chunk: it was cut short"
            )
        (prefix,) = _PREFIX.unpack(prefix_raw)
        final = bool(prefix & FINAL_FLAG)
        length = prefix & ~FINAL_FLAG
        if final and length != _TRAILER.size:
            raise TamperedError(f"chunk {index}: final chunk of impossible length", index)
        if not final and not 1 <= length <= chunk_size:
            raise TamperedError(f"chunk {index}: impossible length {length}", index)
        if not final and short_seen:
            raise TamperedError(f"chunk {index}: data after a short (last) data chunk", index)
        size = NONCE_BYTES + length + TAG_BYTES
        got = read_into(src, record_mv[:size])
        if got < size:
            raise TruncatedError(f"the file ends inside chunk {index}: it was cut short")
        try:
            aes.decrypt_into(
                record_mv[:NONCE_BYTES],
                record_mv[NONCE_BYTES:size],
                _aad(header_hash, index, prefix),
                plain_mv[:length],
            )
        except InvalidTag:
            raise TamperedError(
                f"chunk {index} fails authentication: it was altered, moved, or taken "
                "from another file",
                index,
            ) from None
        ciphertext += _PREFIX.size + size
        index += 1
        if final:
            break
        short_seen = length < chunk_size
        sha.update(plain_mv[:length])
        total += length
        if dst is not None:
            dst.write(plain_mv[:length])
    want_total, want_sha = _TRAILER.unpack_from(plain)
    if want_total != total or not hmac.compare_digest(want_sha, sha.digest()):
        raise TamperedError(
            f"checksum mismatch: the final chunk names {want_total} bytes and another "
            f"SHA-256 than the {total} bytes decrypted",
            index - 1,
        )
    if read_upto(src, 1):
        raise TamperedError(f"bytes follow the final chunk (chunk {index - 1})", index)
    return DecryptResult(
        total, ciphertext, sha.hexdigest(), header.key_id_hex, header.file_id_hex, index
    )


def encrypted_size(plaintext_bytes: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> int:
    """The size of the encrypted file for a plaintext of ``plaintext_bytes``."""
    chunks = -(-plaintext_bytes // chunk_size)
    return (
        HEADER_BYTES + plaintext_bytes + chunks * RECORD_OVERHEAD + RECORD_OVERHEAD + _TRAILER.size
    )
