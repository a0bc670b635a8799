"""Predictor latency for a 3-second clip, features included, on CPU, for every model.

    python benchmarks/inference.py [--repeats 20]

Each default-sized architecture is wrapped in a real bundle (untrained weights: latency does
not depend on their values), loaded through `ser.inference.Predictor` and timed from
decoded samples to probabilities (resampling, STFT, FS1/FS2, normalisation, forward).
Target: median ≤ 100 ms for every model.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser import config  # noqa: E402
from ser.bundle import save_bundle  # noqa: E402
from ser.card import Card  # noqa: E402
from ser.inference import Predictor  # noqa: E402
from ser.models import create_model, describe, list_models, model_input_space  # noqa: E402


def fake_card(arch: str) -> Card:
    space = model_input_space(arch)
    norm = {}
    if "fs1" in space:
        norm["fs1"] = {"mean": [0.0] * config.FS1_DIM, "std": [1.0] * config.FS1_DIM}
    if "fs2" in space:
        norm["fs2"] = {"mean": [-50.0] * config.N_MELS, "std": [20.0] * config.N_MELS}
    d = describe(arch)
    return Card(name=arch, arch=arch, input_space=space, model_kwargs=d["kwargs"],
                normalisation=norm)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(1)  # one request, one core: what a busy demo machine gives
    sr = 16000
    t = np.arange(3 * sr) / sr
    clip = (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))
            ).astype(np.float32)
    print(f"3.0 s clip at {sr} Hz; torch threads {torch.get_num_threads()}; "
          f"{args.repeats} repeats")
    print(f"{'model':<12} {'median ms':>10} {'p90 ms':>8}  target ≤ 100 ms")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for arch in list_models():
            path = Path(tmp) / f"{arch}.pt"
            save_bundle(path, create_model(arch), fake_card(arch))
            pred = Predictor(path)
            pred.predict_samples(clip, sr)  # warm-up
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                pred.predict_samples(clip, sr)
                times.append((time.perf_counter() - t0) * 1000)
            med = statistics.median(times)
            p90 = sorted(times)[int(0.9 * len(times)) - 1]
            worst = max(worst, med)
            print(f"{arch:<12} {med:>10.1f} {p90:>8.1f}  {'ok' if med <= 100 else 'SLOW'}")
    print(f"worst median: {worst:.1f} ms — {'all within' if worst <= 100 else 'over'} target")


if __name__ == "__main__":
    main()
