"""A PostgreSQL database is backed up with pg_dump and comes back with pg_restore.

Runs against a fresh database in the PostgreSQL cluster the test run starts (Debian's
postgresql), or the one ``LIVECAM_TEST_POSTGRES_URL`` names.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.app.backup.helpers import run_cli


def test_postgres_dump_round_trip(tmp_path: Path, key_file: Path, postgres_url: str) -> None:
    assert shutil.which("pg_dump"), "postgresql-client is missing"
    assert shutil.which("pg_restore"), "postgresql-client is missing"
    engine = create_engine(postgres_url)
    with engine.begin() as db:
        db.execute(text("DROP TABLE IF EXISTS backup_probe"))
        db.execute(text("CREATE TABLE backup_probe (id serial PRIMARY KEY, note text)"))
        db.execute(
            text(
                "INSERT INTO backup_probe (note) SELECT 'row ' || g FROM generate_series(1, 500) g"
            )
        )
    data = tmp_path / "data"
    (data / "events").mkdir(parents=True)
    target = tmp_path / "backups"
    result = run_cli(
        "run", "--target", target, "--key-file", key_file, "--data", data,
        env={"DATABASE_URL": postgres_url},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    with engine.begin() as db:
        db.execute(text("DELETE FROM backup_probe"))

    restored = tmp_path / "restored"
    result = run_cli(
        "restore", "latest", "--to", restored, "--target", target, "--key-file", key_file
    )
    assert result.returncode == 0, result.stderr
    assert "pg_restore" in result.stdout
    dump = restored / "postgresql.dump"
    libpq = (
        make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    subprocess.run(
        ["pg_restore", "--clean", "--if-exists", "--table=backup_probe", "-d", libpq, str(dump)],
        check=True,
        capture_output=True,
    )
    with engine.begin() as db:
        assert db.execute(text("SELECT count(*) FROM backup_probe")).scalar() == 500
        db.execute(text("DROP TABLE backup_probe"))
    engine.dispose()
