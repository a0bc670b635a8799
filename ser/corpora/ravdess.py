"""RAVDESS (Ryerson Audio-Visual Database of Emotional Speech and Song), speech audio only.

Names are seven two-digit fields, ``MM-VV-EE-II-SS-RR-AA`` (e.g. ``03-01-05-02-01-01-12``):
modality (03 = audio only), vocal channel (01 speech, 02 song), emotion, intensity
(01 normal, 02 strong), statement (01 / 02), repetition and actor (01–24; odd actors are
male, even female). The release keeps each actor under ``Actor_NN/``. Song files and
video modalities are not speech audio and stay unparsed.
"""

from __future__ import annotations

import re
from pathlib import Path

from ser.corpora.base import CorpusSpec

NAME_RE = re.compile(r"^03-01-(?P<emo>0[1-8])-(?P<int>0[12])-(?P<stmt>0[12])-(?P<rep>\d{2})"
                     r"-(?P<actor>\d{2})$")

#: Emotion code → the label RAVDESS uses for it.
EMOTION_CODES = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry",
                 "06": "fearful", "07": "disgust", "08": "surprised"}
STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
INTENSITIES = {"01": "normal", "02": "strong"}
ACTORS = tuple(f"{i:02d}" for i in range(1, 25))


def parse_path(path: Path) -> dict | None:
    """Manifest fields of one RAVDESS speech file, ``None`` for other names (or song)."""
    m = NAME_RE.match(Path(path).stem)
    if not m or m["actor"] not in ACTORS:
        return None
    return {"speaker": m["actor"], "label_raw": EMOTION_CODES[m["emo"]],
            "sentence": m["stmt"], "sentence_text": STATEMENTS[m["stmt"]],
            "intensity": INTENSITIES[m["int"]], "clip": Path(path).stem,
            "repetition": int(m["rep"])}


SPEC = CorpusSpec(
    key="ravdess",
    name="RAVDESS",
    language="en",
    sample_rate=48000,
    speakers=tuple((a, "male" if int(a) % 2 else "female") for a in ACTORS),
    labels=(("neutral", "neutral"), ("calm", None), ("happy", "happy"), ("sad", "sad"),
            ("angry", "angry"), ("fearful", "fear"), ("disgust", "disgust"),
            ("surprised", None)),
    description="24 North American actors, 2 statements, 8 emotions at two intensities "
                "(Livingstone & Russo 2018); CC BY-NC-SA 4.0.",
    example="Actor_12/03-01-05-02-01-01-12.wav",
    parse=parse_path,
)
