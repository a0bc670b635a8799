"""EmoDB (Berlin Database of Emotional Speech).

Names are seven characters (e.g. ``03a01Wa.wav``): speaker (2 digits), text code (3),
emotion letter from the German word (W Wut anger, L Langeweile boredom, E Ekel disgust,
A Angst fear, F Freude happiness, T Trauer sadness, N neutral) and a version letter.
"""

from __future__ import annotations

import re
from pathlib import Path

from ser.corpora.base import CorpusSpec

NAME_RE = re.compile(r"^(?P<spk>\d{2})(?P<text>[a-b]\d{2})(?P<emo>[WLEAFTN])(?P<ver>[a-z])$")

SPEAKERS = (("03", "male"), ("08", "female"), ("09", "female"), ("10", "male"),
            ("11", "male"), ("12", "male"), ("13", "female"), ("14", "female"),
            ("15", "male"), ("16", "female"))
_IDS = {s for s, _ in SPEAKERS}


def parse_path(path: Path) -> dict | None:
    """Manifest fields of one EmoDB file, ``None`` when the name does not fit."""
    m = NAME_RE.match(Path(path).stem)
    if not m or m["spk"] not in _IDS:
        return None
    return {"speaker": m["spk"], "label_raw": m["emo"], "sentence": m["text"],
            "clip": Path(path).stem, "version": m["ver"]}


SPEC = CorpusSpec(
    key="emodb",
    name="EmoDB",
    language="de",
    sample_rate=16000,
    speakers=SPEAKERS,
    labels=(("W", "angry"), ("L", None), ("E", "disgust"), ("A", "fear"), ("F", "happy"),
            ("T", "sad"), ("N", "neutral")),
    description="Berlin Database of Emotional Speech: 10 German actors, 10 sentences, "
                "7 emotions (Burkhardt et al. 2005); free for research use.",
    example="03a01Wa.wav",
    parse=parse_path,
)
