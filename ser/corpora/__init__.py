"""Corpora: where clips come from, as one manifest (see DESIGN.md, "Manifest").

`load_corpus` picks the folder the user asked for (argument, then ``SER_DATA_DIR``, then a
``data/`` folder in the project), and falls back to the generated synthetic demo corpus,
saying so in ``Corpus.name`` and ``Corpus.is_demo``. Which corpus a folder holds is
detected from its file names (:func:`detect`); one adapter module per corpus knows the
names (:func:`list_corpora`). Several corpora pool into one manifest with
:func:`load_pool`, or by giving ``load_corpus`` a data string that lists several folders
separated by commas (``"/data/crema-d,/data/tess"``; see :mod:`ser.corpora.pool`).

Manifest columns (one row per clip): ``path, dataset, speaker, sentence, emotion,
intensity, duration_s, clip, sentence_text, corpus, language, label_raw, sex``, plus what a
corpus adds (CREMA-D: ``age, race, ethnicity, human_vote, human_vote_level``). ``emotion``
is one of :data:`ser.config.LABELS`, or ``""`` for a corpus label outside the six (kept,
but never put in a split); ``label_raw`` is the corpus's own label.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ser import config
from ser.corpora import crema_d, custom, demo, emodb, emovo, ravdess, savee, tess, urdu
from ser.corpora.base import (
    Corpus,
    CorpusError,
    CorpusSpec,
    ParsedFolder,
    find_audio_files,
)
from ser.corpora.pool import combine, is_pool_spec, parse_pool_spec, pool_spec_string

#: Adapters whose file names identify the corpus, in the order that breaks detection ties
#: (CREMA-D first, so folders that loaded as CREMA-D before still do).
_NAMED = (crema_d, ravdess, tess, savee, emodb, emovo, urdu)
_SPECS: dict[str, CorpusSpec] = {m.SPEC.key: m.SPEC for m in (*_NAMED, custom, demo)}


def list_corpora() -> list[CorpusSpec]:
    """The spec of every supported corpus (named corpora, then ``custom``, then ``demo``)."""
    return list(_SPECS.values())


def emotion_from_name(name: str) -> str | None:
    """The emotion a file name states in one corpus's naming scheme ("1001_DFA_ANG_XX.wav",
    "DC_a01.opus", "03-01-05-01-01-01-12.wav", "03a01Wa.wav", "rab-f1-b1.wav"), as one of
    :data:`ser.config.LABELS`; ``None`` when no named corpus's scheme fits, or the label lies
    outside the six (calm, surprise, boredom). Only the name is read, never a folder, so a
    layout that needs its folder (SAVEE's release) does not count."""
    found = set()
    for module in _NAMED:
        meta = module.SPEC.parse(Path(Path(name).name))
        if meta:
            label = module.SPEC.label_map.get(str(meta["label_raw"]))
            if label in config.LABELS:
                found.add(label)
    return found.pop() if len(found) == 1 else None


def get_spec(key: str) -> CorpusSpec:
    """The spec for a corpus key (case-insensitive).

    Raises
    ------
    CorpusError
        Unknown key; the message lists the known ones.
    """
    spec = _SPECS.get(str(key).strip().lower())
    if spec is None:
        raise CorpusError(f"Unknown corpus kind {key!r}; choose one of {', '.join(_SPECS)}.")
    return spec


def display_name(key: str) -> str:
    """A corpus key's display name (``"tess"`` → ``"TESS"``); the key itself when unknown."""
    try:
        return get_spec(key).name
    except CorpusError:
        return key


def detect_counts(folder: str | Path, files: list[Path] | None = None) -> dict[str, int]:
    """How many audio files below ``folder`` each named corpus's parser accepts."""
    files = find_audio_files(Path(folder)) if files is None else files
    return {m.SPEC.key: sum(m.SPEC.parse(p) is not None for p in files) for m in _NAMED}


def detect(folder: str | Path) -> str | None:
    """The key of the corpus a folder (or CSV file) holds, ``None`` if none fits.

    The generated demo corpus is ``"demo"``; a CSV clip list (the file, or a folder with
    one at its top level) is ``"custom"``; otherwise the named corpus whose file names
    match most files wins, CREMA-D on ties; failing that, sub-folders named after at least
    two emotions make it ``"custom"``.
    """
    folder = Path(folder).expanduser()
    if folder.is_file():
        return "custom" if folder.suffix.lower() == ".csv" else None
    if not folder.is_dir():
        return None
    if demo.is_demo_path(folder):
        return "demo"
    try:
        if custom.find_csv(folder) is not None:
            return "custom"
    except CorpusError:  # several clip lists: still the user's own data
        return "custom"
    files = find_audio_files(folder)
    counts = detect_counts(folder, files)
    best = max(counts, key=lambda k: counts[k])  # first of the best: CREMA-D wins ties
    if counts[best]:
        return best
    if custom.looks_like_label_folders(folder, files):
        return "custom"
    return None


def resolve_data_dir(path: str | Path | None = None) -> tuple[Path | None, str]:
    """The corpus folder to use and why: ``(folder, source)``; ``(None, "demo")`` if none."""
    if path:
        return Path(path).expanduser(), "chosen folder"
    env = os.environ.get("SER_DATA_DIR")
    if env:
        return Path(env).expanduser(), "SER_DATA_DIR"
    local = config.ROOT / "data"
    if local.is_dir() and any(local.iterdir()):
        return local, "data/ folder"
    return None, "demo"


def _no_clips_error(folder: Path, spec: CorpusSpec | None, parsed: ParsedFolder | None
                    ) -> CorpusError:
    """The message for a folder that yields no clip: what it holds and what would work."""
    if parsed is not None and parsed.unreadable and not parsed.unparsed:
        return CorpusError(f"No usable clips in {folder}. Its {len(parsed.unreadable)} audio "
                           f"files could not be read (first: {parsed.unreadable[0]}); check "
                           "that they are complete audio files.")
    n_audio = (len(parsed.unparsed) + len(parsed.unreadable) if parsed is not None
               else len(find_audio_files(folder)))
    if not n_audio:
        return CorpusError(f"No usable clips in {folder}. It has no audio files "
                           f"({', '.join(config.AUDIO_EXTENSIONS)}).")
    if spec is not None and spec.key != "crema-d":
        return CorpusError(f"No usable clips in {folder}. It has {n_audio} audio files, but "
                           f"none named like {spec.name} (e.g. {spec.example}).")
    others = ", ".join(m.SPEC.name for m in _NAMED[1:])
    return CorpusError(
        f"No usable clips in {folder}. It has {n_audio} audio files, but none named like "
        f"CREMA-D (e.g. 1001_DFA_ANG_XX.wav) or another supported corpus ({others}). For "
        "your own recordings, put them in one sub-folder per emotion (angry/, sad/, …) or "
        "list them in a CSV with the columns path, label and speaker.")


def load_corpus(path: str | Path | Sequence | None = None, *, kind: str | None = None,
                progress=None) -> Corpus:
    """Scan the chosen corpus folder, or generate/load the synthetic demo corpus.

    Parameters
    ----------
    path
        A corpus folder, a CSV clip list, a data string naming several folders
        (``"/data/crema-d,/data/tess"``, pooled with :func:`load_pool`) or a list of
        folders. ``None``: ``SER_DATA_DIR``, then the project's ``data/`` folder, then the
        demo corpus.
    kind
        Corpus key (see :func:`list_corpora`) to use instead of detecting it.
    progress
        ``progress(done, total)`` while the demo corpus is generated.

    Returns
    -------
    Corpus
        ``name`` is the corpus's display name (``"CREMA-D"``, the demo's name, or the pool's
        members joined with `` + ``); ``key`` and ``spec`` say which adapter read it.

    Raises
    ------
    CorpusError
        The folder does not exist, is not a folder, or holds no clip whose name parses;
        ``kind`` is unknown.
    """
    if isinstance(path, (list, tuple)):
        return load_pool(path, progress=progress)
    folder, source = resolve_data_dir(path)
    raw = str(path) if path else os.environ.get("SER_DATA_DIR", "")
    if folder is not None and source != "data/ folder" and is_pool_spec(raw):
        if kind is not None:
            raise CorpusError("kind names the corpus of one folder; in a data string, prefix "
                              "each folder with its kind instead (e.g. tess=/data/tess).")
        pool = load_pool(raw, progress=progress)
        pool.source = source
        return pool
    if folder is None:
        folder = demo.ensure(progress=progress)
    if not folder.exists():
        raise CorpusError(f"The folder {folder} does not exist.")
    if folder.is_file() and folder.suffix.lower() != ".csv":
        raise CorpusError(f"{folder} is a file; choose the folder that holds the clips (or a "
                          "CSV file listing them).")
    is_demo = demo.is_demo_path(folder)
    spec = get_spec(kind) if kind is not None else None
    if is_demo and (spec is None or spec.key in ("crema-d", "demo")):
        spec = demo.SPEC
    if spec is None:
        key = detect(folder)
        if key is None:
            raise _no_clips_error(folder, None, None)
        spec = _SPECS[key]
    parsed = spec.scan(folder)
    if parsed.manifest.empty:
        raise _no_clips_error(folder, spec, parsed)
    if spec.key == "custom":
        name = f"{spec.name}: {folder.stem if folder.is_file() else folder.name}"
    else:
        name = spec.name
    return Corpus(folder, name, is_demo, parsed.manifest, "demo" if is_demo else source,
                  parsed.unparsed, parsed.unreadable, key=spec.key, spec=spec)


def load_pool(paths_or_corpora: str | Sequence[Corpus | str | Path | tuple[str | None, str]],
              *, progress=None) -> Corpus:
    """Load several corpora and pool them into one :class:`Corpus`.

    Parameters
    ----------
    paths_or_corpora
        A data string (folders separated by commas, each optionally ``key=folder``), or a
        list of loaded :class:`Corpus` objects, folders, data strings and
        ``(key, folder)`` pairs.
    progress
        Passed to :func:`load_corpus` (demo generation).

    Returns
    -------
    Corpus
        With two or more corpora: ``key == "pool"``, speakers ``<corpus>:<id>``, clips
        ``<corpus>/<clip>``, name like ``"CREMA-D + TESS"``, ``members`` the corpora.
        With one: that corpus, unchanged.

    Raises
    ------
    CorpusError
        A member cannot be loaded (the message names it), or a corpus is listed twice.
    """
    items = ([paths_or_corpora] if isinstance(paths_or_corpora, (str, Path))
             else list(paths_or_corpora))
    loaded: list[Corpus] = []
    for item in items:
        if isinstance(item, Corpus):
            loaded.append(item)
            continue
        if isinstance(item, tuple):
            pairs = [(item[0], Path(item[1]).expanduser())]
        elif isinstance(item, Path) or Path(str(item)).expanduser().exists():
            pairs = [(None, Path(item).expanduser())]
        else:
            pairs = parse_pool_spec(str(item), tuple(_SPECS))
        for key, folder in pairs:
            loaded.append(load_corpus(folder, kind=key, progress=progress))
    return combine(loaded)


def summary(corpus: Corpus) -> dict:
    """Counts a user wants first: clips, speakers, per emotion / sentence / intensity.

    Also ``per_corpus`` (clips, speakers, emotions and clips outside the six for each
    pooled corpus) and ``outside_six`` (clips whose corpus label is none of the six, by
    their own label in ``outside_six_labels``).
    """
    m = corpus.manifest
    sentences = m["sentence"].fillna("").astype(str)
    outside = m[~m["emotion"].isin(config.LABELS)]
    corpus_col = m["corpus"] if "corpus" in m else None
    # Pool members contribute their rows in order, so the n-th corpus id is the n-th member.
    names = (dict(zip(dict.fromkeys(corpus_col), (c.name for c in corpus.members)))
             if corpus_col is not None and corpus.members else {})
    per_corpus = {}
    for key in (list(dict.fromkeys(corpus_col)) if corpus_col is not None else [corpus.key]):
        sub = m if corpus_col is None else m[corpus_col == key]
        per_corpus[key] = {
            "name": names.get(key, corpus.name),
            "clips": len(sub),
            "speakers": int(sub["speaker"].nunique()),
            "per_emotion": {e: int((sub["emotion"] == e).sum()) for e in config.LABELS},
            "outside_six": int((~sub["emotion"].isin(config.LABELS)).sum()),
        }
    sex = m["sex"].fillna("").astype(str) if "sex" in m else None
    return {
        "name": corpus.name,
        "key": corpus.key,
        "root": str(corpus.root),
        "synthetic": corpus.is_demo,
        "clips": len(m),
        "speakers": int(m["speaker"].nunique()),
        "sentences": int(sentences[sentences != ""].nunique()),
        "per_emotion": {e: int((m["emotion"] == e).sum()) for e in config.LABELS},
        "per_intensity": m["intensity"].value_counts().to_dict(),
        "per_sentence": sentences[sentences != ""].value_counts().sort_index().to_dict(),
        "duration_s": {"min": float(m["duration_s"].min()), "max": float(m["duration_s"].max()),
                       "mean": float(m["duration_s"].mean()),
                       "total_h": float(m["duration_s"].sum() / 3600)},
        "unparsed": len(corpus.unparsed),
        "unreadable": len(corpus.unreadable),
        "has_demographics": bool(sex is not None and (sex != "").any()),
        "has_votes": "human_vote" in m,
        "corpora": list(per_corpus),
        "per_corpus": per_corpus,
        "languages": (m["language"].value_counts().to_dict() if "language" in m else {}),
        "outside_six": len(outside),
        "outside_six_labels": (outside["label_raw"].value_counts().to_dict()
                               if "label_raw" in outside else {}),
    }


__all__ = ["Corpus", "CorpusError", "CorpusSpec", "ParsedFolder", "crema_d", "custom", "demo",
           "detect", "detect_counts", "emodb", "emovo", "get_spec", "is_pool_spec",
           "list_corpora", "load_corpus", "load_pool", "parse_pool_spec", "pool_spec_string",
           "ravdess", "resolve_data_dir", "savee", "summary", "tess", "urdu"]


def corpus_available(data: str | Path | None) -> bool:
    """Whether every folder (or CSV) a data string names exists on this machine; a card
    trained elsewhere records a path that may not."""
    if not data:
        return True
    raw = str(data)
    if Path(raw).expanduser().exists():
        return True
    if is_pool_spec(raw):
        return all(Path(folder).expanduser().exists()
                   for _, folder in parse_pool_spec(raw, tuple(_SPECS)))
    return False
