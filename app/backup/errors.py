"""Every error the backup package raises on purpose: one family, each with a clear message.

The CLI maps them to exit codes (see ``app/backup/cli.py``): an ``IntegrityError`` means
the backup itself is damaged or was tampered with; a ``KeyProblem`` means the right key
is not at hand or cannot be used; everything else is a usage or environment problem.
"""

from __future__ import annotations


class BackupError(Exception):
    """Base class: something the user must know about; the message says what and where."""


class FormatError(BackupError):
    """The bytes are not a livecam backup file (wrong magic, impossible header values)."""


class UnsupportedVersion(FormatError):
    """A backup file written by a newer (or unknown) version of the format."""

    def __init__(self, version: int, supported: int) -> None:
        super().__init__(
            f"backup file format version {version} is not supported (this livecam reads "
            f"version {supported}); upgrade livecam to read it"
        )
        self.version = version


class IntegrityError(BackupError):
    """The backup file was damaged or tampered with: nothing it decrypted may be trusted."""


class TamperedError(IntegrityError):
    """An authentication tag or checksum does not match. ``chunk_index`` is the chunk that
    failed (0 is the first chunk), or None when the header itself failed."""

    def __init__(self, message: str, chunk_index: int | None = None) -> None:
        super().__init__(message)
        self.chunk_index = chunk_index


class TruncatedError(IntegrityError):
    """The file ends before its authenticated final chunk: it was cut short."""


class KeyProblem(BackupError):
    """A key cannot be used (missing, unreadable, bad permissions, malformed)."""


class KeyFilePermissionError(KeyProblem):
    """A key file that group or others can read: refused, as it may have leaked."""


class WrongKeyError(KeyProblem):
    """No key in the keyring opens the file; ``key_id`` (hex) names the key it wants."""

    def __init__(self, message: str, key_id: str) -> None:
        super().__init__(message)
        self.key_id = key_id


class TargetError(BackupError):
    """The backup target cannot be reached or refused an operation."""


class RunNotFound(BackupError):
    """No run of that name in the target."""


class ObjectNotFound(TargetError):
    """No object of that name in the target."""
