"""Speech segmentation speed on a 60-second clip, and what it finds on a known clip.

    python benchmarks/segments.py [--repeats 5]

The audio is synthetic speech from ``ser.corpora.demo`` (a small corpus is generated in a
temporary folder): a 60 s "conversation" of utterances separated by 0.4–1.6 s pauses at
16 kHz and 44.1 kHz, and a clip with two utterances separated by 1.5 s of room noise
whose true boundaries (frame energy above -45 dBFS) are printed next to the segments.
The Silero VAD always runs on its own worker thread with one torch thread (see
``ser.segments``); torch is also limited to one thread here for resampling and the rest.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser import segments  # noqa: E402
from ser.audio import resample  # noqa: E402
from ser.corpora import demo  # noqa: E402

SR = 16000


def active_span(y: np.ndarray) -> tuple[float, float]:
    """First and last 10 ms frame above -45 dBFS, in seconds."""
    frame = SR // 100
    n = len(y) // frame
    db = 10 * np.log10(np.mean(y[: n * frame].reshape(n, frame).astype(np.float64) ** 2,
                               axis=1) + 1e-12)
    on = np.flatnonzero(db > -45.0)
    return on[0] * 0.01, (on[-1] + 1) * 0.01


def trimmed(y: np.ndarray) -> np.ndarray:
    a, b = active_span(y)
    return y[int(a * SR):int(b * SR)]


def room(seconds: float, rng: np.random.Generator) -> np.ndarray:
    return (rng.standard_normal(int(seconds * SR)) * 10 ** (-60 / 20)).astype(np.float32)


def timed(fn, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)

    with tempfile.TemporaryDirectory() as tmp:
        root = demo.generate(Path(tmp) / "corpus", n_speakers=2,
                             sentences=("TIE", "ITH", "IEO"), seed=0, sr=SR)
        clips = [trimmed(sf.read(p, dtype="float32")[0]) for p in sorted(root.glob("*.wav"))]

    parts, n_utt, t = [room(0.5, rng)], 0, 0.5
    while t < 60.0:
        clip = clips[n_utt % len(clips)]
        parts += [clip, room(float(rng.uniform(0.4, 1.6)), rng)]
        t += len(clip) / SR + len(parts[-1]) / SR
        n_utt += 1
    y60 = np.concatenate(parts)[: 60 * SR]

    t0 = time.perf_counter()
    segments.frame_speech_probs(y60[:SR], SR)
    print(f"first call (model load + TorchScript warm-up, 1 s clip): "
          f"{time.perf_counter() - t0:.3f} s")
    print(f"60.0 s clip, {n_utt} synthetic utterances; torch threads {torch.get_num_threads()}; "
          f"{args.repeats} repeats")
    print(f"{'input':<34} {'median s':>9} {'min s':>7} {'x real time':>12}")
    y44 = resample(y60, SR, 44100)
    runs = [
        ("frame_speech_probs, 16 kHz", lambda: segments.frame_speech_probs(y60, SR)),
        ("speech_segments, 16 kHz", lambda: segments.speech_segments(y60, SR)),
        ("speech_segments, 44.1 kHz", lambda: segments.speech_segments(y44, 44100)),
    ]
    found = None
    for name, fn in runs:
        out, times = timed(fn, args.repeats)
        med = statistics.median(times)
        print(f"{name:<34} {med:>9.3f} {min(times):>7.3f} {60.0 / med:>11.0f}x")
        if name == "speech_segments, 16 kHz":
            found = out
    lengths = [s.duration_s for s in found]
    print(f"  -> {len(found)} segments, {min(lengths):.2f}-{max(lengths):.2f} s long, "
          f"{sum(lengths):.1f} s of audio kept")

    a, b = clips[0], clips[1]
    y2 = np.concatenate([room(1.0, rng), a, room(1.5, rng), b, room(1.0, rng)])
    truth = [(1.0, 1.0 + len(a) / SR), (2.5 + len(a) / SR, 2.5 + (len(a) + len(b)) / SR)]
    print(f"\nTwo utterances, 1.5 s apart, {len(y2) / SR:.2f} s clip")
    print("  truth (energy > -45 dBFS):    "
          + ", ".join(f"{s:.3f}-{e:.3f}" for s, e in truth))
    for pad in (0.0, 0.1):
        segs = segments.speech_segments(y2, SR, pad_s=pad)
        print(f"  speech_segments(pad_s={pad}):   "
              + ", ".join(f"{s.start_s:.3f}-{s.end_s:.3f}" for s in segs))


if __name__ == "__main__":
    main()
