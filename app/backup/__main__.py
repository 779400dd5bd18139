"""``python -m app.backup``: see app/backup/cli.py (``--help`` for the commands)."""

from app.backup.cli import main

raise SystemExit(main())
