"""Encrypted backups of the server's data (database, clips, snapshots).

``format`` is the encrypted file format (AES-256-GCM in authenticated chunks, see
FORMAT.md), ``keys`` the key files, passphrase keys and keyring, ``targets`` where
backup files go (a local directory or S3), ``runs`` what a backup run copies and how
runs are listed, verified and restored, ``cli`` the ``python -m app.backup`` commands.
"""
