"""A 300 MB file is encrypted, stored and decrypted in a stream: memory stays flat."""

from __future__ import annotations

from pathlib import Path

from app.backup.format import EncryptingReader, decrypt_stream, encrypt_stream, encrypted_size
from app.backup.keys import Keyring
from app.backup.targets import LocalTarget
from tests.app.backup.helpers import Generated, HashingSink, peak_rss_growth, random_key

SIZE = 300 * 1000 * 1000
#: Allowed RSS growth: a few 1 MiB chunk buffers and a 1 MiB copy buffer, with slack for
#: the allocator; far below the 300 MB a non-streaming implementation would need.
MAX_GROWTH = 48 * 1024 * 1024


def test_large_file_streams_in_bounded_memory(tmp_path: Path) -> None:
    key = random_key()
    encrypted = tmp_path / "big.lcb"

    source = Generated(SIZE)
    with peak_rss_growth() as growth, open(encrypted, "wb") as dst:
        result = encrypt_stream(source, dst, key)
    assert growth[0] < MAX_GROWTH, f"encrypt grew RSS by {growth[0] / 2**20:.1f} MiB"
    assert result.plaintext_bytes == SIZE
    assert encrypted.stat().st_size == encrypted_size(SIZE) == result.ciphertext_bytes
    assert result.sha256 == source.sha.hexdigest()

    sink = HashingSink()
    with peak_rss_growth() as growth, open(encrypted, "rb") as src:
        decrypted = decrypt_stream(src, sink, Keyring([key]))
    assert growth[0] < MAX_GROWTH, f"decrypt grew RSS by {growth[0] / 2**20:.1f} MiB"
    assert sink.size == SIZE
    assert sink.sha.hexdigest() == decrypted.sha256 == source.sha.hexdigest()


def test_large_file_to_local_target_in_bounded_memory(tmp_path: Path) -> None:
    key = random_key()
    target = LocalTarget(tmp_path / "backups")
    target.check(create=True)
    source = Generated(SIZE)
    reader = EncryptingReader(source, key)
    with peak_rss_growth() as growth:
        stored = target.put("objects/big.lcb", reader)
    assert growth[0] < MAX_GROWTH, f"put grew RSS by {growth[0] / 2**20:.1f} MiB"
    assert stored == encrypted_size(SIZE)
    assert reader.result is not None
    assert reader.result.sha256 == source.sha.hexdigest()
    sink = HashingSink()
    with target.open("objects/big.lcb") as src:
        decrypt_stream(src, sink, Keyring([key]))
    assert sink.sha.hexdigest() == source.sha.hexdigest()
