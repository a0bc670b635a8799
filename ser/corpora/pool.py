"""Pools: several corpora as one manifest, and the data string that names a pool.

A data string lists corpus folders separated by commas, each optionally prefixed with the
corpus key and ``=`` to skip detection::

    /data/crema-d,/data/tess
    /data/crema-d, tess=/data/tess, savee=/data/savee

A string that is itself an existing path is always one folder, commas and all.

In a pool of two or more corpora every speaker becomes ``<corpus>:<id>`` (``tess:OAF``),
every clip ``<corpus>/<clip>`` and every non-empty sentence code ``<corpus>:<code>``, so
corpora never share a speaker, clip or sentence by accident. A pool of one corpus is that
corpus, unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ser.corpora.base import SHARED_COLUMNS, Corpus, CorpusError

SEPARATOR = ","
#: Manifest columns holding text; a pool fills them with "" where a member lacks them.
_TEXT_COLUMNS = [c for c in SHARED_COLUMNS if c != "duration_s"]


def is_pool_spec(value: object) -> bool:
    """True when ``value`` names several corpora (a list, or a string with commas that is
    not itself an existing path)."""
    if isinstance(value, (list, tuple)):
        return True
    if not isinstance(value, str) or SEPARATOR not in value:
        return False
    return not Path(value).expanduser().exists()


def parse_pool_spec(value: str, known_keys: Sequence[str] = ()) -> list[tuple[str | None, Path]]:
    """Split a data string into ``(key or None, folder)`` pairs.

    Parameters
    ----------
    value
        Folders separated by commas; each may start with ``<key>=`` where ``<key>`` is one
        of ``known_keys``.
    known_keys
        Corpus keys allowed as prefixes. A prefix that is not one of them is read as part
        of the path.

    Raises
    ------
    CorpusError
        The string names no folder.
    """
    items = []
    for part in str(value).split(SEPARATOR):
        part = part.strip()
        if not part:
            continue
        key = None
        head, eq, tail = part.partition("=")
        if eq and head.strip().lower() in known_keys:
            key, part = head.strip().lower(), tail.strip()
        items.append((key, Path(part).expanduser()))
    if not items:
        raise CorpusError(f"The data string {value!r} names no corpus folder; separate "
                          "folders with commas, e.g. /data/crema-d,/data/tess.")
    return items


def pool_spec_string(items: Sequence[Corpus | str | Path | tuple[str | None, str | Path]]
                     ) -> str:
    """The data string for these corpora (their folders joined with commas).

    Items are :class:`Corpus` objects, folders, or ``(key, folder)`` pairs (written as
    ``key=folder``). Pooled corpora contribute their members.

    Raises
    ------
    ValueError
        A folder's path contains a comma, so it cannot be part of a data string.
    """
    parts = []
    for item in items:
        if isinstance(item, Corpus):
            if item.members:
                parts.append(pool_spec_string(item.members))
                continue
            item = (None, item.root)
        key, folder = item if isinstance(item, tuple) else (None, item)
        text = str(folder)
        if SEPARATOR in text:
            raise ValueError(f"The folder {text} has a comma in its path, so it cannot be "
                             "listed in a data string; rename or link it without one.")
        parts.append(f"{key}={text}" if key else text)
    return SEPARATOR.join(parts)


def combine(corpora: Sequence[Corpus]) -> Corpus:
    """Pool loaded corpora into one :class:`Corpus` (see the module docstring).

    Raises
    ------
    CorpusError
        No corpus given, or the same corpus (key or folder) given twice.
    """
    # A pool inside a pool is flattened, so speakers get one namespace, not two.
    corpora = [m for c in corpora for m in (c.members or [c])]
    if not corpora:
        raise CorpusError("A pool needs at least one corpus.")
    if len(corpora) == 1:
        return corpora[0]
    roots = [c.root.resolve() for c in corpora]
    if len(set(roots)) < len(roots):
        raise CorpusError("The same folder is listed twice in the pool; list each corpus once.")
    frames, ids = [], []
    for c in corpora:
        cid = c.key
        if cid in ids:
            if cid != "custom":
                raise CorpusError(f"{c.name} is listed twice in the pool; list each corpus once.")
            # Several folders of one's own data are distinct corpora: number them.
            cid = f"custom-{sum(i.startswith('custom') for i in ids) + 1}"
        ids.append(cid)
        m = c.manifest.copy()
        m["corpus"] = cid
        m["dataset"] = cid
        m["speaker"] = cid + ":" + m["speaker"].astype(str)
        m["clip"] = cid + "/" + m["clip"].astype(str)
        sent = m["sentence"].fillna("").astype(str)
        m["sentence"] = sent.where(sent == "", cid + ":" + sent)
        frames.append(m)
    manifest = pd.concat(frames, ignore_index=True, sort=False)
    for col in _TEXT_COLUMNS:
        if col in manifest:
            manifest[col] = manifest[col].fillna("")
    try:
        root = Path(os.path.commonpath([str(r) for r in roots]))
    except ValueError:  # different drives
        root = roots[0]
    return Corpus(
        root=root, name=" + ".join(c.name for c in corpora),
        is_demo=any(c.is_demo for c in corpora), manifest=manifest, source="pool",
        unparsed=[p for c in corpora for p in c.unparsed],
        unreadable=[p for c in corpora for p in c.unreadable],
        key="pool", spec=None, members=corpora)
