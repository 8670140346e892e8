"""A fingerprint of a trial's data folder, so an oracle can tell whether anything was written.

SQLite files are fingerprinted per table (rows hashed in rowid order), other files by content: the
diff then names what changed ("support.db:refund_notes"), which is the evidence a write happened.
"""

from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing
from pathlib import Path

_SQLITE_HEADER = b"SQLite format 3\x00"


def _tables(path: Path) -> dict[str, str]:
    prints: dict[str, str] = {}
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for name in names:
            digest = hashlib.sha256()
            quoted = '"' + name.replace('"', '""') + '"'
            for row in conn.execute(f"SELECT * FROM {quoted}"):
                digest.update(repr(row).encode())
            prints[name] = digest.hexdigest()
    return prints


def fingerprint(folder: Path) -> dict[str, str]:
    """{file or file:table: digest} for everything under `folder`."""
    prints: dict[str, str] = {}
    if not folder.is_dir():
        return prints
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if relative.endswith(("-wal", "-shm", "-journal")):
            continue
        with path.open("rb") as handle:
            header = handle.read(len(_SQLITE_HEADER))
        if header == _SQLITE_HEADER:
            try:
                prints.update({f"{relative}:{t}": d for t, d in _tables(path).items()})
                continue
            except sqlite3.Error:
                pass
        prints[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return prints


def changed(before: dict[str, str], after: dict[str, str]) -> tuple[str, ...]:
    """What differs between two fingerprints, sorted."""
    return tuple(sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k)))
