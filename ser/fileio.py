"""Crash-safe file writes: write to a temporary sibling, then rename over the target."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any


def current_umask() -> int:
    """The process umask, read without changing it where the system allows (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: read by setting, then restore at once
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so a reader sees the old or the new file, never half.

    The file gets the permissions an ordinary ``open(path, "w")`` would give (0666 minus
    the umask), not the private 0600 of a temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")


def safe_name(name: str, what: str = "name") -> str:
    """``name`` if it can be used as one file or folder name inside a folder of ours:
    letters, digits and ``. _ + -``, not starting with a dot or a dash, at most 100
    characters (so no ``/``, no ``..``, no absolute path). ``ValueError`` otherwise."""
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name) or ".." in name:
        shown = name if isinstance(name, str) and len(name) <= 60 else "that"
        raise ValueError(f"{what} {shown!r} cannot be used: use letters, digits and . _ + - "
                         "only (no slashes, no '..', not starting with a dot or dash).")
    return name


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON (numpy scalars converted)."""
    atomic_write_text(path, json.dumps(obj, indent=2, default=_jsonable) + "\n")


def file_stamp(path: str | Path) -> tuple[int, int] | None:
    """``(size, mtime_ns)`` of a file, or None when it cannot be read: what caches keyed by
    a file compare to tell whether it changed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


#: Digests already computed in this process, by (path, size, mtime).
_DIGESTS: dict[tuple[str, int, int], str] = {}


def content_digest(path: str | Path) -> str:
    """A digest of the file's bytes (BLAKE2b, 128 bits), for caches that must survive a
    file being copied, moved or provisioned again with new times. Read once per process
    while the file's size and mtime hold (CREMA-D's 143 MB: about 1 s)."""
    st = os.stat(path)
    memo = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    digest = _DIGESTS.get(memo)
    if digest is None:
        h = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        digest = _DIGESTS[memo] = h.hexdigest()
    return digest


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def append_jsonl(path: str | Path, obj: Any) -> None:
    """Append one JSON line. A single short ``write`` of a whole line: readers skip a line
    that is incomplete (see `read_jsonl`), so a crash mid-write loses at most that line."""
    line = json.dumps(obj, default=_jsonable) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)


def read_jsonl(path: str | Path) -> list[dict]:
    """Every complete JSON line of ``path`` (a partial last line is ignored)."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _jsonable(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
