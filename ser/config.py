"""The constants the seeds fix, in one place.

Every module reads its numbers from here: label order, sample rate, STFT frame and hop,
mel bands, the FS2 time length. Changing one of them changes the feature contract and
invalidates caches and bundles (both record these values).
"""

from __future__ import annotations

import os
from pathlib import Path

#: Emotion labels in the one order used everywhere (model outputs, tables, plots).
LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad")
N_CLASSES = len(LABELS)

#: CREMA-D file-name emotion codes → labels.
EMOTION_CODES = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy",
                 "NEU": "neutral", "SAD": "sad"}
#: Crowd-rater vote letters (summaryTable.csv) → labels.
VOTE_LETTERS = {"A": "angry", "D": "disgust", "F": "fear", "H": "happy", "N": "neutral",
                "S": "sad"}
#: CREMA-D sentence codes → the sentence spoken (Cao et al. 2014).
SENTENCES = {
    "IEO": "It's eleven o'clock",
    "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before",
    "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}
INTENSITY_CODES = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}

#: Feature extraction (the Keras notebook seed's values).
SAMPLE_RATE = 22050
N_FFT = 2048
HOP_LENGTH = 512
N_MELS = 128
N_MFCC = 20
N_CHROMA = 12
#: Rows of librosa's spectral contrast at its default 6 sub-bands: one per band plus one.
CONTRAST_ROWS = 7
FS2_FRAMES = 216  # ≈ 5.0 s at 22050 Hz / hop 512
FS2_TOP_DB = 80.0
#: Variable-length FS2 (``TrainConfig.length = "variable"``): clips shorter than this many
#: frames are padded with the floor (the global-pooling models' minimum input); longer
#: clips keep their own length up to ``FS2_MAX_WINDOWS`` × FS2_FRAMES (≈ 20 s), beyond
#: which they are cropped so one outlier cannot blow up every padded batch.
FS2_MIN_FRAMES = 32
FS2_MAX_WINDOWS = 4
FS1_DIM = 1 + 1 + N_MFCC + N_CHROMA + CONTRAST_ROWS + N_MELS  # 169

#: Input shapes the models take (without the batch axis).
FS1_SHAPE = (1, FS1_DIM)
FS2_SHAPE = (1, N_MELS, FS2_FRAMES)

#: Longest clip `ser.audio.load_audio` accepts by default (seconds).
MAX_AUDIO_SECONDS = 600.0

#: Seed protocol: 70/30 train/test, then 5 % of train for validation.
RANDOM_TEST_FRACTION = 0.30
RANDOM_VAL_FRACTION = 0.05
NOISE_FACTOR = 0.01

AUDIO_EXTENSIONS = (".wav", ".mp3", ".flac", ".ogg", ".opus")

#: Where the project lives, and its writable folders (overridable for tests).
ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Folder for feature caches and the generated demo corpus (`SER_CACHE_DIR`)."""
    return Path(os.environ.get("SER_CACHE_DIR", ROOT / ".cache"))


def runs_dir() -> Path:
    """Folder holding one sub-folder per training run (`SER_RUNS_DIR`)."""
    return Path(os.environ.get("SER_RUNS_DIR", ROOT / "runs"))


def models_dir() -> Path:
    """Folder of shipped model bundles (`SER_MODELS_DIR`)."""
    return Path(os.environ.get("SER_MODELS_DIR", ROOT / "models"))


def display_path(path: str | Path) -> str:
    """A folder or file as a user reads it: relative to the project when it lies inside it
    (``models``, not ``/home/me/ser-studio/models``), under ``~`` when in the home folder,
    otherwise absolute. Only for showing; never used to open anything."""
    p = Path(path).expanduser().absolute()
    for base, prefix in ((ROOT, ""), (Path.home(), "~/")):
        try:
            rel = p.relative_to(base)
        except ValueError:
            continue
        if str(rel) == ".":
            return "." if not prefix else "~"
        return prefix + rel.as_posix()
    return p.as_posix()


def profiles_dir() -> Path:
    """Named voice profiles a user chose to save (Predict page); ``SER_PROFILES_DIR``."""
    return Path(os.environ.get("SER_PROFILES_DIR", ROOT / "profiles"))
