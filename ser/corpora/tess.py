"""TESS (Toronto Emotional Speech Set).

Names are ``<SPK>_<word>_<emotion>`` (e.g. ``OAF_back_angry.wav``): two female speakers,
OAF (older) and YAF (younger), each saying "Say the word ___" for 200 words in 7 emotions.
Copies of the corpus group files in folders such as ``OAF_angry/``; only the file names
matter here. One release file is named ``OA_bite_neutral`` (the speaker's F is missing);
it is read as speaker OAF, and clip ids always use the full speaker code.
"""

from __future__ import annotations

import re
from pathlib import Path

from ser.corpora.base import CorpusSpec

NAME_RE = re.compile(r"^(?P<spk>OAF|YAF|OA|YA)_(?P<word>[A-Za-z']+)"
                     r"_(?P<emo>angry|disgust|fear|happy|neutral|sad|ps)$", re.IGNORECASE)


def parse_path(path: Path) -> dict | None:
    """Manifest fields of one TESS file, ``None`` when the name does not fit."""
    m = NAME_RE.match(Path(path).stem)
    if not m:
        return None
    spk = m["spk"].upper()
    spk = spk if spk.endswith("F") else spk + "F"  # the OA_bite_neutral quirk
    word, emo = m["word"].lower(), m["emo"].lower()
    return {"speaker": spk, "label_raw": emo, "sentence": word,
            "sentence_text": f"Say the word {word}", "clip": f"{spk}_{word}_{emo}"}


SPEC = CorpusSpec(
    key="tess",
    name="TESS",
    language="en",
    sample_rate=24414,
    speakers=(("OAF", "female"), ("YAF", "female")),
    labels=(("angry", "angry"), ("disgust", "disgust"), ("fear", "fear"), ("happy", "happy"),
            ("neutral", "neutral"), ("sad", "sad"), ("ps", None)),
    description="Toronto Emotional Speech Set: 2 female Canadian speakers, 200 words in 7 "
                "emotions (Dupuis & Pichora-Fuller 2010); CC BY-NC-ND 4.0.",
    example="OAF_back_angry.wav",
    parse=parse_path,
)
