"""Seconds per "inside the models" view, for every shipped model, on one clip, on the CPU.

    python benchmarks/insight.py [--clip FILE] [--models DIR] [--repeats 3]

Without ``--clip`` the clip is a demo-corpus utterance cut or padded to 3.0 s. Each model is
loaded through `ser.inference.Predictor` and `ser.insight.Inspector` (load not timed), then
each view is timed from decoded samples, the way a page computes it on a cache miss:

- ``attribution``: features + normalisation + Grad-CAM (2D) / integrated gradients (1D) /
  both (combined), the default layer;
- ``maps``: features + the 8 strongest feature maps of the default layer;
- ``field``: features + the receptive field of the strongest unit of that layer (the
  connectivity probe is built on the first call; that call is included).

The default layer is the Grad-CAM layer for models that read the spectrogram, else the
last layer. Speaker-normalised models read the clip with a profile of three clips of its
speaker. One torch thread (what the app gives a request). Target: every view ≤ 2 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser import config  # noqa: E402
from ser.audio import load_audio  # noqa: E402
from ser.inference import Predictor  # noqa: E402
from ser.insight import Inspector  # noqa: E402
from ser.speakers import VoiceProfile  # noqa: E402

TARGET_S = 2.0


def demo_clip(seconds: float = 3.0) -> tuple[np.ndarray, int, VoiceProfile]:
    """A demo utterance at exactly ``seconds`` and a voice profile of its speaker."""
    from ser.corpora import demo

    root = demo.ensure()
    paths = sorted(root.rglob("*_ANG_*.wav"))
    y, sr = load_audio(paths[0], sr=config.SAMPLE_RATE)
    n = int(seconds * sr)
    y = np.pad(y, (0, max(0, n - len(y))))[:n]
    voice = VoiceProfile(sample_rate=sr)
    speaker = paths[0].name.split("_")[0]
    for p in sorted(root.rglob(f"{speaker}_*.wav"))[1:4]:
        voice.add(*load_audio(p, sr=sr))
    return y, sr, voice


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_model(path: Path, y: np.ndarray, sr: int, voice: VoiceProfile, repeats: int
               ) -> tuple[tuple[float, float, float], str]:
    """Seconds for (attribution, maps, field) of one model, and the layer used."""
    p = Predictor(path)
    ins = Inspector(p)
    v = voice if p.needs_voice else None
    layer = (ins.default_cam_layer or ins.layers[-1]).name

    def field():
        ins.receptive_field(ins.view(y, sr, voice=v), layer)

    t_field_first = timed(field, 1)  # builds the connectivity probe
    t_attr = timed(lambda: ins.attribute(ins.view(y, sr, voice=v)), repeats)
    t_maps = timed(lambda: ins.feature_maps(ins.view(y, sr, voice=v), layer, 8), repeats)
    t_field = max(t_field_first, timed(field, repeats))
    return (t_attr, t_maps, t_field), layer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", help="audio file (default: a 3.0 s demo-corpus utterance)")
    ap.add_argument("--models", default=str(config.models_dir()), help="folder of models")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    y, sr, voice = demo_clip()
    if args.clip:
        y, sr = load_audio(args.clip, sr=config.SAMPLE_RATE)
        voice = VoiceProfile(sample_rate=sr, clips=[y, y, y])
    bundles = sorted(Path(args.models).glob("*/model.pt"))
    print(f"clip {args.clip or 'demo utterance'}: {len(y) / sr:.1f} s; torch threads "
          f"{torch.get_num_threads()}; median of {args.repeats}; seconds per view "
          f"(target ≤ {TARGET_S:g} s)")
    if bundles:  # librosa's first call in a process compiles code: timed on its own
        t0 = time.perf_counter()
        first = Predictor(bundles[0])
        Inspector(first).view(y, sr, voice=voice if first.needs_voice else None)
        print(f"first clip in a fresh process (librosa warm-up, once per server): "
              f"{time.perf_counter() - t0:.2f} s")
    print(f"{'model':<40} {'attribution':>11} {'maps':>6} {'field':>6}  layer")
    worst = 0.0
    for path in bundles:
        times, layer = time_model(path, y, sr, voice, args.repeats)
        worst = max(worst, *times)
        print(f"{path.parent.name:<40} {times[0]:>11.2f} {times[1]:>6.2f} {times[2]:>6.2f}  "
              f"{layer}")
    print(f"slowest view: {worst:.2f} s — {'within' if worst <= TARGET_S else 'OVER'} the "
          f"{TARGET_S:g} s target")


if __name__ == "__main__":
    main()
