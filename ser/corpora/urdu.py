"""URDU, natural emotional speech cut from Urdu talk shows.

Layout ``<Emotion>/S<G><N>_F<NN>_<E><NN>`` (e.g. ``Angry/SM2_F1_A023.wav``): speaker
``S<G><N>`` where G is the speaker's sex (M / F), the speaker's file number, then the
emotion letter (A angry, H happy, N neutral, S sad) and a clip number. Four emotions only;
spontaneous speech, so there are no sentence codes.
"""

from __future__ import annotations

import re
from pathlib import Path

from ser.corpora.base import CorpusSpec

NAME_RE = re.compile(r"^(?P<spk>S(?P<sex>[MF])\d+)_F\d+_(?P<emo>[AHNS])\d+$")


def parse_path(path: Path) -> dict | None:
    """Manifest fields of one URDU file, ``None`` when the name does not fit."""
    m = NAME_RE.match(Path(path).stem)
    if not m:
        return None
    return {"speaker": m["spk"], "label_raw": m["emo"], "clip": Path(path).stem,
            "sex": "male" if m["sex"] == "M" else "female"}


SPEC = CorpusSpec(
    key="urdu",
    name="URDU",
    language="ur",
    sample_rate=44100,
    speakers=(),  # sex is in each speaker id (SM… / SF…)
    labels=(("A", "angry"), ("H", "happy"), ("N", "neutral"), ("S", "sad")),
    description="URDU: spontaneous Urdu speech from TV talk shows, 4 emotions (Latif et al. "
                "2018); research use only.",
    example="Angry/SM2_F1_A023.wav",
    parse=parse_path,
)
