"""The release code cache: where a snapshot's sources are written before they are imported.

Importing code runs it, so the cache must be as trustworthy as the database the snapshot came
from. It lives in a private per-user folder (`$XDG_CACHE_HOME/tether/code`, else
`~/.cache/tether/code`, created 0700; `TETHER_CODE_CACHE` overrides), folders that another user
owns or that group/others may write are refused, and the files of a snapshot are read back and
checked against its content hash before anything is imported: a folder that does not match is
thrown away and written again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path

from tether.agent.config import ConfigError

ENV = "TETHER_CODE_CACHE"


class CodeCacheError(ConfigError):
    """The code cache folder is not private to this user, so nothing in it may be imported."""


def sources_digest(sources: Mapping[str, str]) -> str:
    """The content hash of a set of source files (`ProjectSnapshot.code_hash`)."""
    canonical = json.dumps(dict(sources), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def cache_root() -> Path:
    """The cache folder, created private (0700) if missing, refused if others could write it."""
    configured = os.environ.get(ENV)
    if configured:
        root = Path(configured)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = Path(base) / "tether" / "code"
    if not root.exists():
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
    _check_private(root)
    return root


def _check_private(path: Path) -> None:
    """Refuse a folder (or file) that is not ours alone: another owner, or group/other-writable."""
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        info = path.stat()
    problem = None
    if info.st_uid != os.geteuid():
        problem = f"it is owned by uid {info.st_uid}, not by this user (uid {os.geteuid()})"
    elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problem = f"group or others may write it (mode {stat.S_IMODE(info.st_mode):o})"
    if problem:
        raise CodeCacheError(
            f"refusing the release code cache at {path}: {problem}; use a private folder "
            f"(owned by you, chmod 700) or point {ENV} at one"
        )


def _read_back(folder: Path) -> dict[str, str] | None:
    """Every file under a materialised folder (bytecode caches aside), or None if any is unsafe."""
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        here = Path(dirpath)
        _check_private(here)
        for name in filenames:
            path = here / name
            if path.is_symlink() or not path.is_file():
                return None
            _check_private(path)
            try:
                found[path.relative_to(folder).as_posix()] = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                return None
    return found


def _matches(folder: Path, sources: Mapping[str, str], code_hash: str) -> bool:
    files = _read_back(folder)
    return files is not None and sources_digest(files) == code_hash


def _discard(folder: Path) -> None:
    """Move a bad copy aside (atomically, so a racing process never imports half of it), then delete."""
    aside = folder.with_name(f".stale-{uuid.uuid4().hex}")
    try:
        folder.rename(aside)
    except FileNotFoundError:  # another process already moved it
        return
    shutil.rmtree(aside, ignore_errors=True)


def materialize(sources: Mapping[str, str]) -> Path:
    """The folder holding exactly these sources, verified against their hash; written if needed."""
    code_hash = sources_digest(sources)
    root = cache_root()
    target = root / code_hash
    if target.exists() or target.is_symlink():
        if not target.is_symlink() and target.is_dir():
            _check_private(target)
            if _matches(target, sources, code_hash):
                return target
        _discard(target)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".staging-"))
    for relative, text in sources.items():
        path = staging / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    try:
        staging.rename(target)
    except OSError:  # another process won the race; its copy is checked below like any other
        shutil.rmtree(staging, ignore_errors=True)
    _check_private(target)
    if not _matches(target, sources, code_hash):
        raise CodeCacheError(f"the release code at {target} does not match its content hash {code_hash}")
    return target
