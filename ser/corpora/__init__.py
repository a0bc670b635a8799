"""Corpora: where clips come from, as one manifest (see DESIGN.md, "Manifest").

`load_corpus` picks the folder the user asked for (argument, then ``SER_DATA_DIR``, then a
``data/`` folder in the project), and falls back to the generated synthetic demo corpus,
saying so in ``Corpus.name`` and ``Corpus.is_demo``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ser import config
from ser.corpora import crema_d, demo


class CorpusError(ValueError):
    """The folder cannot serve as a corpus; the message says why."""


@dataclass
class Corpus:
    """A scanned corpus: its manifest plus what was skipped and how it was chosen."""

    root: Path
    name: str
    is_demo: bool
    manifest: pd.DataFrame
    source: str
    unparsed: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """One line for screens and logs, e.g. ``CREMA-D (7,442 clips, 91 actors)``."""
        m = self.manifest
        return f"{self.name} ({len(m):,} clips, {m['speaker'].nunique()} speakers)"


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


def load_corpus(path: str | Path | None = None, *, progress=None) -> Corpus:
    """Scan the chosen corpus folder, or generate/load the synthetic demo corpus.

    Raises
    ------
    CorpusError
        The folder does not exist, is not a folder, or holds no clip whose name parses.
    """
    folder, source = resolve_data_dir(path)
    if folder is None:
        folder = demo.ensure(progress=progress)
    if not folder.exists():
        raise CorpusError(f"The folder {folder} does not exist.")
    if not folder.is_dir():
        raise CorpusError(f"{folder} is a file; choose the folder that holds the clips.")
    is_demo = demo.is_demo_path(folder)
    parsed = crema_d.scan(folder, dataset="demo" if is_demo else "crema-d")
    if parsed.manifest.empty:
        n_audio = len(parsed.unparsed) + len(parsed.unreadable)
        hint = (f" It has {n_audio} audio files, but none named like CREMA-D "
                "(e.g. 1001_DFA_ANG_XX.wav)." if n_audio else
                f" It has no audio files ({', '.join(config.AUDIO_EXTENSIONS)}).")
        raise CorpusError(f"No usable clips in {folder}.{hint}")
    name = demo.DEMO_NAME if is_demo else "CREMA-D"
    return Corpus(folder, name, is_demo, parsed.manifest, "demo" if is_demo else source,
                  parsed.unparsed, parsed.unreadable)


def summary(corpus: Corpus) -> dict:
    """Counts a user wants first: clips, speakers, per emotion / sentence / intensity."""
    m = corpus.manifest
    return {
        "name": corpus.name,
        "root": str(corpus.root),
        "synthetic": corpus.is_demo,
        "clips": len(m),
        "speakers": int(m["speaker"].nunique()),
        "sentences": int(m["sentence"].nunique()),
        "per_emotion": {e: int((m["emotion"] == e).sum()) for e in config.LABELS},
        "per_intensity": m["intensity"].value_counts().to_dict(),
        "per_sentence": m["sentence"].value_counts().sort_index().to_dict(),
        "duration_s": {"min": float(m["duration_s"].min()), "max": float(m["duration_s"].max()),
                       "mean": float(m["duration_s"].mean()),
                       "total_h": float(m["duration_s"].sum() / 3600)},
        "unparsed": len(corpus.unparsed),
        "unreadable": len(corpus.unreadable),
        "has_demographics": "sex" in m,
        "has_votes": "human_vote" in m,
    }


__all__ = ["Corpus", "CorpusError", "crema_d", "demo", "load_corpus", "resolve_data_dir",
           "summary"]
