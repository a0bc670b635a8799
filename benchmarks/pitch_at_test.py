"""The height of a voice at prediction time: do a model's answers on voices it never heard
move when every clip is shifted up or down in pitch?

    python benchmarks/pitch_at_test.py MODEL --corpus emovo=/data/emovo [--corpus ...] \
        [--shifts=-3,3]

Each scored clip (`ser.crosscorpus.scored_clips`: a corpus the model heard on its held-out
speakers only, any other corpus whole) is scored as recorded and after
`librosa.effects.pitch_shift` by each of ``--shifts`` semitones (the formants move with the
pitch; write ``--shifts=-3,3`` with the ``=``, as a list that starts with a minus sign is
otherwise taken for an option), through the Predict page's own path
(`ser.inference.Predictor.predict_samples`, windows averaged). Prints UAR (most-predicted
share) per variant for the whole corpus, then for each sex (where the corpus names it) and
each speaker, so a voice whose answers lean one way shows, and whether moving its height
moves them. A diagnosis, not a cure: a shift chosen per clip would need to know the voice
(README, *Voices from other corpora*).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rescore import arguments, scored_corpora  # noqa: E402

from ser import crosscorpus  # noqa: E402
from ser.audio import load_audio  # noqa: E402
from ser.inference import Predictor  # noqa: E402


def groups(clips) -> list[tuple[str, np.ndarray]]:
    """``(name, mask)``: every clip, each sex the corpus names, each speaker."""
    out = [("all", np.ones(len(clips), bool))]
    if "sex" in clips:
        sex = clips["sex"].fillna("").astype(str).str.lower().to_numpy()
        out += [(f"  sex {s}", sex == s) for s in sorted(set(sex)) if s]
    speaker = clips["speaker"].astype(str).to_numpy()
    out += [(f"  speaker {s}", speaker == s) for s in sorted(set(speaker))]
    return out


def main(argv=None) -> int:
    import librosa
    import torch
    from tqdm import tqdm

    ap, name, shifts, corpora, bundle = arguments(
        __doc__, "a shipped name, a folder or a .pt file", "--shifts", "-3,3",
        "semitones, comma-separated (non-zero, within ±12); --shifts=-3,3",
        lambda s: s != 0 and abs(s) <= 12,
        "lie within ±12 semitones and not be 0", argv)
    if bundle.card.speaker_normalised:
        ap.error(f"{name} is speaker-normalised: it needs each voice's takes, not one clip")
    torch.set_num_threads(1)
    predictor = Predictor(bundle)
    sr = predictor.cfg.sample_rate
    headers = ["as recorded", *(f"{s:+g} st" for s in shifts)]
    print(f"{name}: UAR (most-predicted share) with every clip shifted in pitch")
    print(f"{'corpus':<22}{'kind':<10}{'n':>6}" + "".join(f"{h:>16}" for h in headers))
    for key, kind, clips, y in scored_corpora(bundle, corpora):
        preds = np.zeros((len(headers), len(clips)), int)
        for i, path in enumerate(tqdm(clips["path"], desc=key, unit="clip", file=sys.stderr,
                                      disable=None)):
            wave = load_audio(path, sr=sr)[0]
            for j, s in enumerate([0.0, *shifts]):
                z = wave if s == 0 else librosa.effects.pitch_shift(wave, sr=sr, n_steps=s)
                preds[j, i] = int(predictor.predict_samples(z, sr).probs.argmax())
        for label, mask in groups(clips):
            cells = [crosscorpus.cell(key, kind, y[mask], p[mask]) for p in preds]
            cols = (f"{key:<22}{kind:<10}" if label == "all" else f"{label:<32}")
            print(cols + f"{int(mask.sum()):>6}" + "".join(
                f"{f'{c.uar:.1%} ({c.top_share:.0%})':>16}" for c in cells), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
