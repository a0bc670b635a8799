"""Is the "everything is angry" collapse partly a noise-floor cue?

    python benchmarks/floor_probe.py [MODEL] [--data ../shared/datasets] [--per 40]
                                     [--snr 30 --snr 20] [--denoise] [--part 2]

Part 1 (no model): for every corpus, how far below the clip's peak its quietest frames sit
in FS2 (the 10th percentile over frames of each frame's loudest mel band, dB re the clip's
maximum; padding excluded), per emotion. CREMA-D's noise is constant while its actors'
level changes with the emotion, so there the floor goes with the emotion (loud emotions sit
far above it); corpora recorded more cleanly sit lower for every emotion. This is the
floor as the 2D models see it (FS2); the Dataset page's "Compare corpora" draws the same
confound from the waveform (`ser.acoustics`, ``dynamic_range_db``).

With ``--denoise`` Part 1 is printed a second time on the images with each band's noise
floor removed (`ser.features.floor_subtract`, the front end of ``fs2_norm=denoise``
models): there the quiet frames of every corpus and emotion fall to the same -80 dB.

Part 2 (MODEL, default ``ser2d.crema-si-pitch``): a balanced sample of each corpus (``--per``
clips per emotion, seeded) scored as is and with stationary white noise added at each
``--snr`` (dB against the clip's speech power, `ser.augment.speech_power`), which raises
the floor without touching the speech. If the model reads a low floor as "angry", the
angry share falls and UAR rises. CREMA-D's sample mixes training and test actors: read its
rows for the direction of the change, not as a score.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser.audio import load_audio  # noqa: E402
from ser.augment import speech_power  # noqa: E402
from ser.bundle import load_bundle  # noqa: E402
from ser.config import LABELS  # noqa: E402
from ser.corpora import load_corpus  # noqa: E402
from ser.ensemble import bundle_paths  # noqa: E402
from ser.features import floor_subtract  # noqa: E402
from ser.inference import Predictor  # noqa: E402
from ser.splits import usable  # noqa: E402
from ser.store import FeatureStore  # noqa: E402

CORPORA = ("crema-d", "tess", "savee", "emovo", "urdu")


def sample(manifest: pd.DataFrame, per: int) -> pd.DataFrame:
    m = manifest[usable(manifest)]
    return pd.concat([g.sample(min(len(g), per), random_state=0)
                      for _, g in m.groupby("emotion")])


def floors(paths: list[str], denoise: bool = False) -> np.ndarray:
    raw = np.asarray(FeatureStore(workers=1).features(paths, spaces=("fs2",))["fs2"])
    fs2 = floor_subtract(raw) if denoise else raw
    out = []
    for x, x0 in zip(fs2, raw):
        frames = x0.max(axis=0) > -79.9  # not the padding
        out.append(np.percentile(x[:, frames].max(axis=0), 10) if frames.any() else np.nan)
    return np.asarray(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?", default="ser2d.crema-si-pitch")
    ap.add_argument("--data", default="../shared/datasets", type=Path)
    ap.add_argument("--per", type=int, default=40, help="clips per emotion and corpus")
    ap.add_argument("--snr", type=float, action="append", default=None)
    ap.add_argument("--denoise", action="store_true",
                    help="also print Part 1 with each band's noise floor removed")
    ap.add_argument("--part", type=int, choices=(1, 2), action="append",
                    help="print only this part (repeatable; default both)")
    args = ap.parse_args()
    snrs = args.snr or [30.0, 20.0]
    keys = [k for k in CORPORA if (args.data / k).is_dir()]
    if not keys:
        print(f"No corpus folder under {args.data}.")
        return 1
    pd.set_option("display.width", 200)

    parts = set(args.part or (1, 2))
    samples = {k: sample(load_corpus(args.data / k).manifest, args.per * 5) for k in keys}
    for denoise in ((False, True) if args.denoise else (False,)) if 1 in parts else ():
        print("Part 1: floor of the quietest frames, dB re each clip's peak (mean per emotion; "
              f"{args.per * 5} clips per emotion at most)"
              + (", after the noise-floor removal" if denoise else ""))
        rows = []
        for k, m in samples.items():
            for e, f in zip(m["emotion"], floors(list(m["path"]), denoise)):
                rows.append({"corpus": k, "emotion": e, "floor": f})
        table = pd.DataFrame(rows).astype({"floor": float}).pivot_table(
            index="corpus", columns="emotion", values="floor")
        print(table.round(1).to_string(na_rep="–"), "\n")

    if 2 not in parts:
        return 0
    pred = Predictor(load_bundle(bundle_paths(args.model)[0]))
    rng = np.random.default_rng(0)
    print(f"Part 2: {pred.name} on {args.per} clips per emotion, as is and with white noise "
          f"at {', '.join(f'{s:g}' for s in snrs)} dB SNR")
    print(f"{'corpus':8} {'clips':>5} {'input':>9} {'UAR':>6}  {'top label':>14}  angry")
    for k in keys:
        m = sample(load_corpus(args.data / k).manifest, args.per)
        truth = m["emotion"].to_numpy()
        clips = [load_audio(p, sr=pred.cfg.sample_rate)[0] for p in m["path"]]
        for snr in [None, *snrs]:
            labels = []
            for y in clips:
                if snr is not None:
                    scale = np.sqrt(speech_power(y) / 10 ** (snr / 10))
                    y = y + (rng.standard_normal(len(y)) * scale).astype(np.float32)
                labels.append(pred.predict_samples(y, pred.cfg.sample_rate).label)
            labels = np.asarray(labels)
            present = [e for e in LABELS if (truth == e).any()]
            uar = np.mean([np.mean(labels[truth == e] == e) for e in present])
            share = pd.Series(labels).value_counts(normalize=True)
            name = "as is" if snr is None else f"{snr:g} dB"
            print(f"{k:8} {len(m):5d} {name:>9} {uar:6.1%}  {share.index[0]:>8} "
                  f"{share.iloc[0]:4.0%}"
                  f"  {share.get('angry', 0):4.0%}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
