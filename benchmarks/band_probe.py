"""Does a CREMA-D model fail on other corpora because of the band above 8 kHz?

    python benchmarks/band_probe.py MODEL [DATASETS]   (DATASETS: ../shared/datasets)

CREMA-D is recorded at 16 kHz, so its log-mel bands above ~8 kHz are empty; TESS, SAVEE,
EMOVO and URDU have energy there. For each of those corpora this prints the model's UAR and
most-predicted share as is, and with every band above 7.8 kHz set to 0 (the value those
bands take after per-utterance normalisation on CREMA-D) before the model sees it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import librosa
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser.bundle import load_bundle  # noqa: E402
from ser.corpora import load_corpus  # noqa: E402
from ser.dataset import encode_labels, model_inputs, predict_proba  # noqa: E402
from ser.ensemble import bundle_paths  # noqa: E402
from ser.metrics import classification_metrics  # noqa: E402
from ser.splits import usable  # noqa: E402
from ser.store import FeatureStore  # noqa: E402


def main(model: str, root: Path) -> int:
    b = load_bundle(bundle_paths(model)[0])
    cfg = b.card.features
    high = librosa.mel_frequencies(n_mels=cfg.n_mels, fmin=0, fmax=cfg.sample_rate / 2) > 7800
    print(f"{b.name}: {int(high.sum())} of {cfg.n_mels} mel bands above 7.8 kHz")
    for key in ("tess", "savee", "emovo", "urdu"):
        c = load_corpus(root / key)
        m = c.manifest[usable(c.manifest)]
        x = np.asarray(FeatureStore(cfg=cfg).features(list(m["path"]), spaces=("fs2",))["fs2"])
        y = encode_labels(m["emotion"])
        for label, xx in (("as is", x), ("bands > 7.8 kHz set to 0",
                                         np.where(high[None, :, None], 0.0, x))):
            p = predict_proba(b.model, model_inputs({"fs2": xx}, "fs2",
                                                    b.card.normalisation_arrays()))
            share = np.bincount(p.argmax(1), minlength=6) / len(p)
            print(f"  {key:<6} {label:<26} UAR {classification_metrics(y, p)['uar']:.1%}  "
                  f"top {share.max():.0%}", flush=True)
    return 0


if __name__ == "__main__":
    here = Path(__file__).resolve().parents[2] / "shared" / "datasets"
    raise SystemExit(main(sys.argv[1], Path(sys.argv[2]) if len(sys.argv) > 2 else here))
