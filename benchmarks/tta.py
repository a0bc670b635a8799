"""Test-time augmentation (a lever of the 70 % issue), measured on validation clips only.

    python benchmarks/tta.py [MODEL] [--data ../shared/datasets/crema-d]

Scores MODEL's validation clips (the ones its ``val_predictions.csv`` lists: for the
CREMA-D speaker-independent split, the 738 clips of the 9 validation actors) as they are,
and averages its probabilities over variants of each clip: the clip delayed by 0.1 and
0.2 s (leading silence, so the 216-frame window sees it at another offset) and the clip
pitch-shifted by ±1 semitone. Prints the validation UAR of each average. Test clips are
not touched.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser.audio import load_audio  # noqa: E402
from ser.bundle import load_bundle  # noqa: E402
from ser.config import LABELS  # noqa: E402
from ser.corpora import load_corpus  # noqa: E402
from ser.ensemble import bundle_paths  # noqa: E402
from ser.inference import Predictor  # noqa: E402


def uar(probs: np.ndarray, truth: np.ndarray) -> float:
    labels = np.asarray(LABELS)[probs.argmax(axis=1)]
    present = [e for e in LABELS if (truth == e).any()]
    return float(np.mean([np.mean(labels[truth == e] == e) for e in present]))


def main() -> int:
    import librosa
    import torch
    from tqdm import tqdm

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?", default="ser2d.crema-si-pitch-stretch-x3")
    ap.add_argument("--data", default="../shared/datasets/crema-d", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    folder = bundle_paths(args.model)[0]
    folder = folder if folder.is_dir() else folder.parent
    val_file = folder / "val_predictions.csv"
    if not val_file.is_file():
        print(f"{args.model} has no val_predictions.csv: nothing to score on validation.")
        return 1
    if not args.data.is_dir():
        print(f"No corpus folder at {args.data}.")
        return 1
    val = pd.read_csv(val_file)
    manifest = load_corpus(args.data).manifest.set_index("clip")
    missing = sorted(set(val["clip"]) - set(manifest.index))
    if missing:
        print(f"{len(missing)} validation clips are not in {args.data} (e.g. {missing[0]}).")
        return 1
    pred = Predictor(load_bundle(folder / "model.pt"))
    sr = pred.cfg.sample_rate
    variants = {
        "as is": lambda y: y,
        "delayed 0.1 s": lambda y: np.concatenate([np.zeros(int(0.1 * sr), np.float32), y]),
        "delayed 0.2 s": lambda y: np.concatenate([np.zeros(int(0.2 * sr), np.float32), y]),
        "pitch +1": lambda y: librosa.effects.pitch_shift(y, sr=sr, n_steps=1),
        "pitch -1": lambda y: librosa.effects.pitch_shift(y, sr=sr, n_steps=-1),
    }
    probs = {k: [] for k in variants}
    for clip in tqdm(val["clip"], desc="validation clips", unit="clip"):
        y = load_audio(manifest.loc[clip, "path"], sr=sr)[0]
        for k, f in variants.items():
            probs[k].append(pred.predict_samples(f(y), sr).probs)
    p = {k: np.asarray(v) for k, v in probs.items()}
    truth = val["true"].to_numpy()
    print(f"{pred.name}: validation UAR on {len(truth)} clips (probabilities averaged)")
    rows = [("as is", ["as is"]),
            ("as is + delayed 0.1 / 0.2 s", ["as is", "delayed 0.1 s", "delayed 0.2 s"]),
            ("as is + pitch ±1 semitone", ["as is", "pitch +1", "pitch -1"]),
            ("all five", list(variants))]
    for name, keys in rows:
        print(f"  {name:30} {uar(sum(p[k] for k in keys), truth):6.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
