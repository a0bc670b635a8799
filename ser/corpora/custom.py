"""The user's own recordings: one sub-folder per emotion, or a CSV listing the clips.

Folder layout
    ``<label>/<file>`` or ``<label>/<speaker>/<file>`` (``<speaker>/<label>/<file>`` is
    recognised too, when the second level holds the label names). Without speaker folders
    every clip gets the speaker ``unknown``, which is enough for the random protocol but
    not for a speaker-independent split.
CSV
    Columns ``path``, ``label`` and ``speaker`` (required) and optionally ``sex``,
    ``language``, ``sentence`` and ``intensity``. ``path`` is relative to the CSV's folder
    or absolute. Point at the CSV file itself, or at a folder whose top level holds exactly
    one CSV with those columns.

Labels are matched to the six without regard to case, with common variants (``anger``,
``fearful``, ``happiness``…); any other label is kept with an empty ``emotion``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ser.corpora.base import (
    CorpusError,
    CorpusSpec,
    ParsedFolder,
    duration_of,
    find_audio_files,
    frame,
    make_row,
)

#: Label spellings accepted for each of the six (lower case).
SYNONYMS = {
    "angry": ("angry", "anger", "ang", "mad"),
    "disgust": ("disgust", "disgusted", "dis"),
    "fear": ("fear", "fearful", "afraid", "scared", "fea"),
    "happy": ("happy", "happiness", "joy", "hap"),
    "neutral": ("neutral", "neu"),
    "sad": ("sad", "sadness"),
}
_LOOKUP = {s: label for label, spellings in SYNONYMS.items() for s in spellings}
REQUIRED_COLUMNS = ("path", "label", "speaker")
OPTIONAL_COLUMNS = ("sex", "language", "sentence", "intensity")
UNKNOWN_SPEAKER = "unknown"


def label_for(raw: str) -> str | None:
    """One of the six labels for a user's label spelling, ``None`` if it names none."""
    return _LOOKUP.get(str(raw).strip().lower())


def _sex(value: object) -> str:
    v = str(value).strip().lower() if isinstance(value, str) else ""
    return {"m": "male", "male": "male", "man": "male", "f": "female", "female": "female",
            "woman": "female"}.get(v, "")


def _spec_for(raws) -> CorpusSpec:
    """The custom spec with this data's own label map."""
    labels = tuple((r, label_for(r)) for r in dict.fromkeys(raws))
    return CorpusSpec(key=SPEC.key, name=SPEC.name, language="", sample_rate=None,
                      speakers=(), labels=labels, description=SPEC.description,
                      scan_fn=scan)


# -- folder per emotion ---------------------------------------------------------------


def _folder_layout(rel_parts: list[tuple[str, ...]]) -> int:
    """Which level of the relative folders holds the labels: 0 (``label/…``) or 1."""
    def known(level: int) -> int:
        return sum(len(p) > level and label_for(p[level]) is not None for p in rel_parts)

    return 1 if known(1) > known(0) else 0


def looks_like_label_folders(folder: Path, files: list[Path] | None = None) -> bool:
    """True when the folder's sub-folders name at least two of the six emotions."""
    folder = Path(folder)
    files = find_audio_files(folder) if files is None else files
    parts = [p.relative_to(folder).parts[:-1] for p in files]
    level = _folder_layout(parts)
    found = {label_for(p[level]) for p in parts if len(p) > level} - {None}
    return len(found) >= 2


def scan_folder(folder: str | Path) -> ParsedFolder:
    """Manifest of a ``<label>/[<speaker>/]<file>`` folder (see the module docstring)."""
    folder = Path(folder)
    files = find_audio_files(folder)
    rel = [p.relative_to(folder).parts[:-1] for p in files]
    level = _folder_layout(rel)
    rows, unparsed, unreadable = [], [], []
    for path, parts in zip(files, rel):
        # Files directly in the root, or nested deeper than label/speaker, carry no label
        # we can trust.
        if len(parts) <= level or len(parts) > 2:
            unparsed.append(str(path))
            continue
        raw = parts[level]
        speaker = parts[1 - level] if len(parts) == 2 else UNKNOWN_SPEAKER
        duration = duration_of(path)
        if duration is None:
            unreadable.append(str(path))
            continue
        clip = path.relative_to(folder).with_suffix("").as_posix()
        rows.append({"speaker": speaker, "label_raw": raw, "clip": clip, "_path": path,
                     "_duration": duration})
    spec = _spec_for(r["label_raw"] for r in rows)
    out = [make_row(spec, r.pop("_path"), r, r.pop("_duration")) for r in rows]
    return ParsedFolder(frame(out), unparsed, unreadable)


# -- CSV --------------------------------------------------------------------------------


def _csv_columns(path: Path) -> list[str]:
    try:
        return [c.strip().lower() for c in pd.read_csv(path, nrows=0).columns]
    except (OSError, ValueError, UnicodeDecodeError):
        return []


def find_csv(folder: Path) -> Path | None:
    """The one CSV at the folder's top level with ``path, label, speaker`` columns.

    Raises
    ------
    CorpusError
        Several such CSV files: which one is meant is not clear.
    """
    found = [p for p in sorted(Path(folder).glob("*.csv"))
             if set(REQUIRED_COLUMNS) <= set(_csv_columns(p))]
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise CorpusError(f"{folder} holds several clip lists ({names}); choose one by "
                          "giving the CSV file's path instead of the folder.")
    return found[0] if found else None


def scan_csv(csv_path: str | Path) -> ParsedFolder:
    """Manifest from a CSV with ``path, label, speaker`` (+ optional) columns.

    Files listed but missing or unreadable go to ``unreadable``.

    Raises
    ------
    CorpusError
        The CSV cannot be read, lacks a required column, has empty cells in one, lists a
        file twice, or none of its files exists.
    """
    csv_path = Path(csv_path)
    try:
        df = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise CorpusError(f"Cannot read {csv_path} as a CSV file ({exc}).") from exc
    df.columns = [str(c).strip().lower() for c in df.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in df]
    if missing:
        raise CorpusError(
            f"{csv_path.name} lacks the column(s) {', '.join(missing)}; a clip list needs "
            f"the columns {', '.join(REQUIRED_COLUMNS)} (optional: "
            f"{', '.join(OPTIONAL_COLUMNS)}). It has: {', '.join(df.columns) or 'none'}.")
    if df.empty:
        raise CorpusError(f"{csv_path.name} lists no clips; add one row per clip.")
    for col in REQUIRED_COLUMNS:
        empty = [i + 2 for i, v in enumerate(df[col]) if not str(v).strip()]
        if empty:
            raise CorpusError(f"{csv_path.name}: column {col!r} is empty on line(s) "
                              f"{', '.join(map(str, empty[:10]))}"
                              f"{' …' if len(empty) > 10 else ''}; fill it in or drop "
                              "those rows.")
    base = csv_path.parent
    paths = [Path(p.strip()).expanduser() for p in df["path"]]
    paths = [p if p.is_absolute() else base / p for p in paths]
    resolved = pd.Series([str(p.resolve()) for p in paths])
    dup = resolved[resolved.duplicated()]
    if len(dup):
        raise CorpusError(f"{csv_path.name} lists {len(dup)} file(s) more than once (e.g. "
                          f"{dup.iloc[0]}); keep one row per clip.")
    rows, unreadable = [], []
    for (_, rec), path in zip(df.iterrows(), paths):
        duration = duration_of(path) if path.is_file() else None
        if duration is None:
            unreadable.append(str(path))
            continue
        try:
            clip = path.resolve().relative_to(base.resolve()).with_suffix("").as_posix()
        except ValueError:  # absolute path outside the CSV's folder
            clip = path.with_suffix("").as_posix()
        meta = {"speaker": rec["speaker"].strip(), "label_raw": rec["label"].strip(),
                "clip": clip, "sex": _sex(rec.get("sex", ""))}
        for col in ("language", "sentence", "intensity"):
            if str(rec.get(col, "")).strip():
                meta[col] = str(rec[col]).strip()
        rows.append((path, meta, duration))
    if not rows:
        raise CorpusError(
            f"None of the {len(df)} files listed in {csv_path} could be read (first: "
            f"{paths[0]}). Paths are taken relative to the CSV's folder unless absolute.")
    spec = _spec_for(m["label_raw"] for _, m, _ in rows)
    out = frame([make_row(spec, p, m, d) for p, m, d in rows])
    return ParsedFolder(out, [], unreadable)


def scan(folder: str | Path) -> ParsedFolder:
    """The user's data at ``folder``: a CSV file, a folder with one, or label sub-folders."""
    folder = Path(folder)
    if folder.is_file():
        return scan_csv(folder)
    csv_path = find_csv(folder)
    return scan_csv(csv_path) if csv_path is not None else scan_folder(folder)


SPEC = CorpusSpec(
    key="custom",
    name="Own data",
    language="",
    sample_rate=None,
    speakers=(),
    labels=tuple((s, label) for s, label in _LOOKUP.items()),
    description="Your own recordings: one sub-folder per emotion, or a CSV with path, label "
                "and speaker columns; the licence is yours to check.",
    example="angry/clip01.wav",
    scan_fn=scan,
)
