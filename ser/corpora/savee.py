"""SAVEE (Surrey Audio-Visual Expressed Emotion), audio.

Two layouts are read: the release's ``AudioData/<SPK>/<code><NN>.wav`` and the flat copy
``<SPK>_<code><NN>.wav`` found on Kaggle. Codes: ``a`` anger, ``d`` disgust, ``f`` fear,
``h`` happiness, ``n`` neutral, ``sa`` sadness, ``su`` surprise. Both layouts give the clip
id ``<SPK>_<code><NN>`` (e.g. ``DC_sa11``), so the same clip never counts twice.
"""

from __future__ import annotations

import re
from pathlib import Path

from ser.corpora.base import CorpusSpec

SPEAKERS = ("DC", "JE", "JK", "KL")
_CODE = r"(?P<code>sa|su|a|d|f|h|n)(?P<num>\d{2})"
FLAT_RE = re.compile(rf"^(?P<spk>DC|JE|JK|KL)_{_CODE}$")
RELEASE_RE = re.compile(rf"^{_CODE}$")


def parse_path(path: Path) -> dict | None:
    """Manifest fields of one SAVEE file in either layout, ``None`` otherwise."""
    path = Path(path)
    m = FLAT_RE.match(path.stem)
    spk = m["spk"] if m else None
    if m is None:
        m = RELEASE_RE.match(path.stem)
        spk = path.parent.name if path.parent.name in SPEAKERS else None
        if m is None or spk is None:
            return None
    code = m["code"] + m["num"]
    # The code names the prompt within an emotion's list, read by all four speakers.
    return {"speaker": spk, "label_raw": m["code"], "sentence": code,
            "clip": f"{spk}_{code}"}


SPEC = CorpusSpec(
    key="savee",
    name="SAVEE",
    language="en",
    sample_rate=44100,
    speakers=tuple((s, "male") for s in SPEAKERS),
    labels=(("a", "angry"), ("d", "disgust"), ("f", "fear"), ("h", "happy"), ("n", "neutral"),
            ("sa", "sad"), ("su", None)),
    description="Surrey Audio-Visual Expressed Emotion: 4 male British speakers, TIMIT "
                "sentences in 7 emotions (Haq & Jackson 2009); free for research use.",
    example="DC_sa11.wav",
    parse=parse_path,
)
