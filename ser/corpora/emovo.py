"""EMOVO, Italian emotional speech.

Names are ``<emo>-<SPK>-<sentence>`` (e.g. ``rab-f1-b1.wav``), usually under one folder per
speaker. Emotion codes are Italian: ``rab`` rabbia (anger), ``dis`` disgusto, ``pau`` paura
(fear), ``gio`` gioia (joy), ``neu`` neutro, ``tri`` tristezza (sadness), ``sor`` sorpresa
(surprise). Speakers f1–f3 are female, m1–m3 male.
"""

from __future__ import annotations

import re
from pathlib import Path

from ser.corpora.base import CorpusSpec

NAME_RE = re.compile(r"^(?P<emo>rab|dis|pau|gio|neu|tri|sor)-(?P<spk>[fm][1-3])"
                     r"-(?P<sent>[a-z]\d)$", re.IGNORECASE)
SPEAKERS = tuple((f"{s}{i}", "female" if s == "f" else "male") for s in "fm" for i in (1, 2, 3))


def parse_path(path: Path) -> dict | None:
    """Manifest fields of one EMOVO file, ``None`` when the name does not fit."""
    m = NAME_RE.match(Path(path).stem)
    if not m:
        return None
    emo, spk, sent = m["emo"].lower(), m["spk"].lower(), m["sent"].lower()
    return {"speaker": spk, "label_raw": emo, "sentence": sent, "clip": f"{emo}-{spk}-{sent}"}


SPEC = CorpusSpec(
    key="emovo",
    name="EMOVO",
    language="it",
    sample_rate=48000,
    speakers=SPEAKERS,
    labels=(("rab", "angry"), ("dis", "disgust"), ("pau", "fear"), ("gio", "happy"),
            ("neu", "neutral"), ("tri", "sad"), ("sor", None)),
    description="EMOVO: 6 Italian actors, 14 sentences, 7 emotions (Costantini et al. "
                "2014); distributed for research.",
    example="f1/rab-f1-b1.wav",
    parse=parse_path,
)
