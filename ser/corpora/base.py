"""What every corpus adapter shares: the spec it declares, the scan loop and the manifest.

An adapter is a module with a ``SPEC`` (:class:`CorpusSpec`) whose ``parse(path)`` turns one
audio file's path into a dict of manifest fields, or ``None`` when the name does not fit the
corpus. :func:`scan_files` walks a folder with that parser and builds the manifest; the
registry in :mod:`ser.corpora` uses the same parsers to tell which corpus a folder holds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import soundfile as sf

from ser import config


class CorpusError(ValueError):
    """The folder cannot serve as a corpus; the message says why."""


@dataclass
class ParsedFolder:
    """Result of scanning a folder: the manifest and the files that could not be used."""

    manifest: pd.DataFrame
    unparsed: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


#: Columns every manifest has, in this order (DESIGN.md, "Manifest"). Adapters may add more.
SHARED_COLUMNS = ["path", "dataset", "speaker", "sentence", "emotion", "intensity",
                    "duration_s", "clip", "sentence_text", "corpus", "language", "label_raw",
                    "sex"]

#: Language codes used in the manifest → names for screens.
LANGUAGE_NAMES = {"en": "English", "de": "German", "it": "Italian", "ur": "Urdu", "": "unknown"}

ParseFn = Callable[[Path], "dict | None"]
ScanFn = Callable[[Path], ParsedFolder]


@dataclass(frozen=True)
class CorpusSpec:
    """What an adapter declares about its corpus.

    Attributes
    ----------
    key
        Short id used in manifests, data strings and split cards (``"tess"``).
    name
        Display name (``"TESS"``).
    language
        Language code of the speech (``"en"``), ``""`` when it varies.
    sample_rate
        Sample rate of the official release in Hz, ``None`` when it varies.
    speakers
        ``(speaker id, sex)`` pairs known in advance; sex is ``"male"``, ``"female"`` or ``""``.
    labels
        ``(raw label, label)`` pairs: the corpus's own label and the one of
        :data:`ser.config.LABELS` it means, or ``None`` when there is none (calm, surprise…).
    description
        One line: what the corpus is, and its licence.
    example
        A file name in the corpus's naming scheme, for messages to the user.
    parse
        ``parse(path) -> dict | None``: manifest fields from one file's path, ``None`` if
        the name does not fit. ``None`` for adapters that do not work file by file.
    scan_fn
        Custom scan; by default :func:`scan_files` with ``parse``.
    """

    key: str
    name: str
    language: str
    sample_rate: int | None
    speakers: tuple[tuple[str, str], ...]
    labels: tuple[tuple[str, str | None], ...]
    description: str
    example: str = ""
    parse: ParseFn | None = field(default=None, repr=False, compare=False)
    scan_fn: ScanFn | None = field(default=None, repr=False, compare=False)

    @property
    def label_map(self) -> dict[str, str | None]:
        """Raw label → one of the six labels, or ``None``."""
        return dict(self.labels)

    @property
    def speaker_sex(self) -> dict[str, str]:
        """Speaker id → ``"male"`` / ``"female"`` / ``""``."""
        return dict(self.speakers)

    @property
    def outside_labels(self) -> list[str]:
        """Raw labels that have no counterpart among the six."""
        return [raw for raw, lab in self.labels if lab is None]

    def scan(self, folder: str | Path) -> ParsedFolder:
        """Manifest of every clip of this corpus below ``folder`` (see :func:`scan_files`)."""
        if self.scan_fn is not None:
            return self.scan_fn(Path(folder))
        return scan_files(folder, self)


#: A corpus scan gives up after this many directory entries (the largest supported corpus
#: has about 12,000 files): pointing it at ``/`` must fail fast, not walk the disk.
MAX_SCAN_ENTRIES = 200_000
#: Kernel pseudo file systems: no corpus lives there, and reading them can block.
_PSEUDO = ("/proc", "/sys", "/dev")


def find_audio_files(folder: Path) -> list[Path]:
    """All audio files below ``folder`` (recursively), sorted by name then path.

    Unreadable sub-folders are skipped; symbolic links to folders are not followed.

    Raises
    ------
    CorpusError
        ``folder`` holds more than `MAX_SCAN_ENTRIES` entries, or is a kernel pseudo
        file system.
    """
    folder = Path(folder)
    real = os.path.realpath(folder)
    if any(real == p or real.startswith(p + os.sep) for p in _PSEUDO):
        raise CorpusError(f"{folder} is a system folder, not a corpus folder.")
    exts = set(config.AUDIO_EXTENSIONS)
    files, seen = [], 0
    for root, dirs, names in os.walk(folder, onerror=lambda err: None):
        seen += len(dirs) + len(names)
        if seen > MAX_SCAN_ENTRIES:
            raise CorpusError(f"{folder} holds more than {MAX_SCAN_ENTRIES:,} files and "
                              "folders; choose the folder of the corpus itself.")
        dirs[:] = [d for d in dirs if os.path.join(root, d) not in _PSEUDO]
        files += [Path(root) / n for n in names if os.path.splitext(n)[1].lower() in exts]
    files = [p for p in files if p.is_file()]
    return sorted(files, key=lambda p: (p.name, str(p)))


def duration_of(path: Path) -> float | None:
    """Duration in seconds from the file header, ``None`` when the header cannot be read."""
    try:
        inf = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError):
        return None
    return inf.frames / inf.samplerate if inf.samplerate else float("nan")


def make_row(spec: CorpusSpec, path: Path, meta: dict, duration: float) -> dict:
    """One manifest row from an adapter's parsed fields, filling the shared columns.

    ``meta`` must hold ``speaker``, ``label_raw`` and ``clip``; ``sentence``,
    ``sentence_text``, ``intensity`` and ``sex`` are optional (sex falls back to the spec's
    speaker list).
    """
    raw = meta["label_raw"]
    emotion = spec.label_map.get(raw)
    return {
        "path": str(path), "dataset": spec.key, "speaker": meta["speaker"],
        "sentence": meta.get("sentence", ""), "emotion": emotion or "",
        "intensity": meta.get("intensity", "unspecified"), "duration_s": duration,
        "clip": meta["clip"], "sentence_text": meta.get("sentence_text", ""),
        "corpus": spec.key, "language": meta.get("language", spec.language),
        "label_raw": raw,
        "sex": meta.get("sex") or spec.speaker_sex.get(meta["speaker"], ""),
        **{k: v for k, v in meta.items() if k not in _ROW_KEYS},
    }


_ROW_KEYS = {"speaker", "sentence", "sentence_text", "intensity", "clip", "label_raw", "sex",
             "language", "emotion"}


def frame(rows: list[dict], columns: Iterable[str] = SHARED_COLUMNS) -> pd.DataFrame:
    """Rows → manifest, shared columns first, one row per clip id (first path wins)."""
    columns = list(columns)
    extra = list(dict.fromkeys(k for r in rows for k in r if k not in columns))
    df = pd.DataFrame(rows, columns=columns + extra)
    # The same clip can sit in a folder twice (WAV and MP3 copies, or a Kaggle copy with
    # duplicated sub-folders); the first path in sorted order is kept so it counts once.
    return df.drop_duplicates("clip", keep="first").reset_index(drop=True)


def scan_files(folder: str | Path, spec: CorpusSpec) -> ParsedFolder:
    """Build the manifest of every clip below ``folder`` whose name ``spec.parse`` accepts.

    Files whose names do not parse are listed in ``unparsed``; files whose header cannot
    be read are listed in ``unreadable``. Neither stops the scan.
    """
    assert spec.parse is not None, f"{spec.key} has no file-name parser"
    rows, unparsed, unreadable = [], [], []
    for path in find_audio_files(Path(folder)):
        meta = spec.parse(path)
        if meta is None:
            unparsed.append(str(path))
            continue
        duration = duration_of(path)
        if duration is None:
            unreadable.append(str(path))
            continue
        rows.append(make_row(spec, path, meta, duration))
    return ParsedFolder(frame(rows), unparsed, unreadable)


def count_parsed(files: Iterable[Path], parse: ParseFn) -> int:
    """How many of ``files`` a parser accepts (name only, no header read)."""
    return sum(parse(p) is not None for p in files)


@dataclass
class Corpus:
    """A scanned corpus, or a pool of several: manifest, what was skipped, how it was chosen.

    ``key`` is the corpus key (``"crema-d"``, ``"tess"``, …; ``"pool"`` for several pooled
    corpora), ``spec`` its :class:`CorpusSpec` (``None`` for a pool), ``members`` the pooled
    corpora (empty for a single corpus).
    """

    root: Path
    name: str
    is_demo: bool
    manifest: pd.DataFrame
    source: str
    unparsed: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    key: str = "crema-d"
    spec: CorpusSpec | None = None
    members: list[Corpus] = field(default_factory=list)

    @property
    def label(self) -> str:
        """One line for screens and logs, e.g. ``CREMA-D (7,442 clips, 91 speakers)``."""
        m = self.manifest
        return f"{self.name} ({len(m):,} clips, {m['speaker'].nunique()} speakers)"

    @property
    def corpora(self) -> list[str]:
        """Keys of the corpora in the manifest, in manifest order."""
        if "corpus" not in self.manifest:
            return [self.key]
        return list(dict.fromkeys(self.manifest["corpus"]))
