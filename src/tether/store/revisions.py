"""The newest migration ids, read from the version files: no SQLAlchemy, no Alembic.

Both the engine code (to skip Alembic when a database is current) and the stdlib read path of
one-shot commands (`store/glance.py`) need this answer; it lives here so the second one does not
pay for importing SQLAlchemy to get it.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

MIGRATIONS = Path(__file__).parent / "migrations"

_REVISION_LINE = re.compile(r"^(down_)?revision\b[^=\n]*=(.*)$", re.MULTILINE)


@functools.cache
def head_revisions() -> frozenset[str]:
    """The newest migration(s), read from the `revision` and `down_revision` lines of the version
    files without importing Alembic (tests check this agrees with Alembic's own answer)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        for down, value in _REVISION_LINE.findall(path.read_text(encoding="utf-8")):
            names = re.findall(r"[\"']([^\"']+)[\"']", value)
            (parents if down else revisions).update(names)
    return frozenset(revisions - parents)
