"""CREMA-D: find the clips under a folder and build the manifest.

File names follow ``ActorID_SENTENCE_EMOTION_LEVEL`` (e.g. ``1001_DFA_ANG_XX.wav``). The
official release ships WAV (``AudioWAV/``) and MP3 (``AudioMP3/``); any of
:data:`ser.config.AUDIO_EXTENSIONS` is accepted. ``VideoDemographics.csv`` (actor sex, age)
and ``summaryTable.csv`` (the crowd raters' votes) are joined when found in the folder or
up to two levels above it; neither is required.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from ser import config
from ser.corpora.base import CorpusSpec, ParsedFolder, find_audio_files

__all__ = ["CLIP_PEAK", "MANIFEST_COLUMNS", "NAME_RE", "SILENCE_PEAK", "SPEC",
           "STANDARD_TEST_ACTORS", "STANDARD_VALIDATION_ACTORS", "ParsedFolder",
           "find_audio_files", "parse_name", "parse_path", "quirks", "read_demographics",
           "read_votes", "scan"]

NAME_RE = re.compile(
    r"^(?P<speaker>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emotion>ANG|DIS|FEA|HAP|NEU|SAD)"
    r"_(?P<level>LO|MD|HI|XX)$"
)

#: Standard speaker-independent split (TensorFlow Datasets' crema_d; actors shuffled with
#: numpy RandomState(0) from the sorted ID strings, 70/10/20 by actor).
STANDARD_VALIDATION_ACTORS = ("1015", "1020", "1021", "1030", "1050", "1070", "1079", "1089",
                              "1090")
STANDARD_TEST_ACTORS = ("1010", "1013", "1022", "1026", "1037", "1038", "1040", "1045", "1047",
                        "1048", "1059", "1065", "1066", "1068", "1071", "1073", "1084", "1086",
                        "1088")

#: Peak below which a clip counts as digital silence (−80 dBFS). Not exactly 0: a lossy
#: codec (the Opus copy of CREMA-D) decodes an all-zero file to values around 1e-34.
SILENCE_PEAK = 1e-4
#: Peak at or above which a clip counts as clipped (reaching full scale, −0.09 dBFS). Lossy
#: copies move peaks by a fraction of a dB; this threshold finds the 550 clipped clips of
#: the official WAVs in the Opus copy too.
CLIP_PEAK = 0.99

MANIFEST_COLUMNS = ["path", "dataset", "speaker", "sentence", "emotion", "intensity",
                    "duration_s"]


def parse_name(name: str) -> dict | None:
    """Parse a CREMA-D clip name (with or without extension); ``None`` if it does not fit."""
    m = NAME_RE.match(Path(name).stem if "." in name else name)
    if not m:
        return None
    sentence = m["sentence"]
    if sentence not in config.SENTENCES:
        return None
    return {
        "speaker": m["speaker"],
        "sentence": sentence,
        "emotion": config.EMOTION_CODES[m["emotion"]],
        "intensity": config.INTENSITY_CODES[m["level"]],
    }


def parse_path(path: Path) -> dict | None:
    """Manifest fields of one CREMA-D file (the registry's detector uses this)."""
    meta = parse_name(Path(path).stem)
    if meta is None:
        return None
    return {"speaker": meta["speaker"], "sentence": meta["sentence"],
            "label_raw": Path(path).stem.split("_")[2], "intensity": meta["intensity"],
            "clip": Path(path).stem, "sentence_text": config.SENTENCES[meta["sentence"]]}


def _find_near(folder: Path, filename: str) -> Path | None:
    """Look for a metadata file in the folder and its sub-folders, in its parent and the
    parent's sub-folders (the release keeps ``processedResults/`` beside ``AudioWAV/``),
    and in the grandparent itself. Not in the grandparent's other children: a folder of
    clips two levels below a datasets folder must not borrow another corpus's files.
    """
    folder = Path(folder).resolve()
    for candidate in (folder / filename, *sorted(folder.glob(f"*/{filename}")),
                      folder.parent / filename, *sorted(folder.parent.glob(f"*/{filename}")),
                      folder.parent.parent / filename):
        if candidate.is_file():
            return candidate
    return None


def read_demographics(folder: Path) -> pd.DataFrame | None:
    """``speaker, sex, age, race, ethnicity`` from VideoDemographics.csv, if present."""
    path = _find_near(folder, "VideoDemographics.csv")
    if path is None:
        return None
    df = pd.read_csv(path)
    df = df.rename(columns={"ActorID": "speaker", "Age": "age", "Sex": "sex", "Race": "race",
                            "Ethnicity": "ethnicity"})
    df["speaker"] = df["speaker"].astype(str).str.zfill(4)
    df["sex"] = df["sex"].astype(str).str.lower()
    return df[["speaker", "sex", "age", "race", "ethnicity"]]


def read_votes(folder: Path) -> pd.DataFrame | None:
    """Raters' voice-only vote per clip from summaryTable.csv, if present.

    ``human_vote`` holds the voted labels joined by ``:`` (a tie lists several);
    ``human_vote_level`` the mean rated intensity.
    """
    path = _find_near(folder, "summaryTable.csv")
    if path is None:
        return None
    df = pd.read_csv(path)
    if "FileName" not in df or "VoiceVote" not in df:
        return None

    def letters_to_labels(vote: object) -> str:
        if not isinstance(vote, str):
            return ""
        return ":".join(config.VOTE_LETTERS[v] for v in vote.split(":")
                        if v in config.VOTE_LETTERS)

    return pd.DataFrame({
        "clip": df["FileName"].astype(str),
        "human_vote": df["VoiceVote"].map(letters_to_labels),
        "human_vote_level": pd.to_numeric(df.get("VoiceLevel"), errors="coerce"),
    })


def scan(folder: str | Path, *, dataset: str = "crema-d") -> ParsedFolder:
    """Build the manifest of every parseable clip below ``folder``.

    Files whose names do not parse are listed in ``unparsed``; files whose header cannot
    be read are listed in ``unreadable``. Neither stops the scan.
    """
    folder = Path(folder)
    rows, unparsed, unreadable = [], [], []
    for path in find_audio_files(folder):
        meta = parse_name(path.stem)
        if meta is None:
            unparsed.append(str(path))
            continue
        try:
            inf = sf.info(str(path))
            duration = inf.frames / inf.samplerate if inf.samplerate else float("nan")
        except (sf.LibsndfileError, RuntimeError):
            unreadable.append(str(path))
            continue
        rows.append({"path": str(path), "dataset": dataset, **meta, "duration_s": duration,
                     "clip": path.stem, "sentence_text": config.SENTENCES[meta["sentence"]]})
    df = pd.DataFrame(rows, columns=MANIFEST_COLUMNS + ["clip", "sentence_text"])
    # One clip per name: the official release has the same clip as WAV and MP3; keep the
    # first format found (sorted by name then path) so the two copies never both count.
    df = df.drop_duplicates("clip", keep="first").reset_index(drop=True)
    demo = read_demographics(folder)
    if demo is not None and len(df):
        df = df.merge(demo, on="speaker", how="left")
    votes = read_votes(folder)
    if votes is not None and len(df):
        df = df.merge(votes, on="clip", how="left")
    # Columns shared by every corpus, appended so the ones above keep their order.
    df["corpus"] = dataset
    df["language"] = "en"
    df["label_raw"] = df["clip"].str.split("_").str[2] if len(df) else ""
    if "sex" not in df:
        df["sex"] = ""
    return ParsedFolder(df, unparsed, unreadable)


def _scan_crema(folder: Path) -> ParsedFolder:
    return scan(folder, dataset="crema-d")


SPEC = CorpusSpec(
    key="crema-d",
    name="CREMA-D",
    language="en",
    sample_rate=16000,
    # Sex comes from VideoDemographics.csv when it is found; no list is hard-coded here.
    speakers=(),
    labels=tuple((code, label) for code, label in config.EMOTION_CODES.items()),
    description="Crowd-sourced Emotional Multimodal Actors Dataset: 91 actors, 12 English "
                "sentences, 6 emotions (Cao et al. 2014); Open Database License.",
    example="1001_DFA_ANG_XX.wav",
    parse=parse_path,
    scan_fn=_scan_crema,
)


def quirks(manifest: pd.DataFrame, *, workers: int | None = None, progress=None) -> dict:
    """Find digital silence, identical audio under different labels, and clipping.

    Returns a dict with ``silent`` (clip names), ``duplicates`` (lists of clip names whose
    decoded audio is identical), ``duplicates_conflicting`` (those whose labels differ),
    ``clipped`` (clips reaching full scale) and ``peak`` per clip.
    """
    from ser.fileio import file_stamp
    from ser.parallel import map_unordered

    paths = list(manifest["path"])
    cache = _read_stats_cache()
    stamps = {p: list(s) if (s := file_stamp(p)) else None for p in paths}  # as JSON keeps it
    stats = {p: tuple(cache[p][1]) for p in paths if p in cache and cache[p][0] == stamps[p]}
    # New times but the same bytes (a corpus copied or provisioned again): no new decode.
    restamped = [p for p in paths if p not in stats and stamps[p] and len(cache.get(p, ())) > 2
                 and cache[p][2] is not None and cache[p][2] == _digest(p)]
    stats.update({p: tuple(cache[p][1]) for p in restamped})
    todo = [p for p in paths if p not in stats]
    if todo:  # decode only the clips not seen before (or changed since)
        stats.update(map_unordered(_clip_stats, todo, workers=workers, progress=progress))
    if todo or restamped or any(len(cache.get(p, ())) < 3 for p in paths if stamps[p]):
        cache.update({p: [stamps[p], list(stats[p]), _digest(p)] for p in paths
                      if stamps[p]})
        _write_stats_cache(cache)
    clips = dict(zip(manifest["path"], manifest["clip"]))
    labels = dict(zip(manifest["clip"], manifest["emotion"]))
    by_hash: dict[str, list[str]] = {}
    for path, (digest, _peak) in stats.items():
        by_hash.setdefault(digest, []).append(clips[path])
    dups = sorted(sorted(v) for v in by_hash.values() if len(v) > 1)
    return {
        "silent": sorted(clips[p] for p, (_, peak) in stats.items() if peak < SILENCE_PEAK),
        "duplicates": dups,
        "duplicates_conflicting": [d for d in dups if len({labels[c] for c in d}) > 1],
        "clipped": sorted(clips[p] for p, (_, peak) in stats.items() if peak >= CLIP_PEAK),
        "peak": {clips[p]: peak for p, (_, peak) in stats.items()},
    }


STATS_CACHE = "clip_stats.json"


def _digest(path: str) -> str | None:
    """The file's byte digest, or None when it cannot be read (the scan reports it)."""
    from ser.fileio import content_digest

    try:
        return content_digest(path)
    except OSError:
        return None


def _read_stats_cache() -> dict:
    """Per clip path: its [size, mtime], (decoded-audio digest, peak) and the file's byte
    digest, from earlier scans."""
    from ser import config
    from ser.fileio import read_json

    try:
        return dict(read_json(config.cache_dir() / STATS_CACHE))
    except (OSError, ValueError, TypeError):
        return {}


def _write_stats_cache(cache: dict) -> None:
    from ser import config
    from ser.fileio import write_json

    try:
        write_json(config.cache_dir() / STATS_CACHE, cache)
    except OSError:  # a read-only cache only costs the next scan its time
        pass


def _clip_stats(path: str) -> tuple[str, tuple[str, float]]:
    import hashlib

    from ser.audio import AudioError, load_audio

    try:
        y, _ = load_audio(path)
    except AudioError:
        return path, ("unreadable:" + path, float("nan"))
    # Hash the decoded samples, not the bytes: the same audio stored as WAV and Opus, or
    # with different headers, is still the same recording.
    q = np.round(y * 32767).astype(np.int16)
    return path, (hashlib.sha1(q.tobytes()).hexdigest(), float(np.max(np.abs(y))) if len(y)
                  else 0.0)
