"""ONNX Runtime vs PyTorch latency for a 3-second clip, on one CPU thread.

    python benchmarks/export.py [NAME ...] [--repeats 50] [--clip FILE]

For each model (default: the Predict page's default models, at most three; NAME may be a
shipped model's name, a model folder or a .pt bundle) the bundle is exported to a temporary
folder and timed on the same 3 s of audio (the start of ``--clip``, else a synthetic voiced
signal), one thread each, median of ``--repeats``:

- full chain: samples at 22.05 kHz → probabilities. PyTorch: `ser.inference.Predictor`
  (librosa front end, normalisation, forward); ONNX: the ``.waveform.onnx`` graph.
- network only: standardised features → probabilities. PyTorch forward + softmax vs the
  ``.onnx`` feature graph.

Target: ONNX ≤ PyTorch. Needs ``pip install onnxruntime onnx``.
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
from ser.bundle import load_bundle  # noqa: E402
from ser.dataset import model_inputs, spaces_for  # noqa: E402
from ser.ensemble import bundle_paths  # noqa: E402
from ser.export import OnnxModel, export_onnx  # noqa: E402
from ser.features import clip_features  # noqa: E402
from ser.inference import Predictor  # noqa: E402


def timed(fn, repeats: int) -> float:
    """Median milliseconds of ``fn()`` after two warm-up calls."""
    fn()
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def signal(clip: str | None) -> np.ndarray:
    n = 3 * config.SAMPLE_RATE
    if clip:
        from ser.audio import load_audio

        y, _ = load_audio(clip, sr=config.SAMPLE_RATE)
        return np.pad(y, (0, max(0, n - len(y))))[:n].astype(np.float32)
    t = np.arange(n) / config.SAMPLE_RATE
    phase = 2 * np.pi * np.cumsum(140 * (1 + 0.1 * np.sin(2 * np.pi * 3 * t))) / config.SAMPLE_RATE
    y = sum(np.sin(k * phase) / k for k in range(1, 10)) * 0.2
    return (y + 0.003 * np.random.default_rng(0).standard_normal(n)).astype(np.float32)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*")
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--clip", help="an audio file (its first 3 s are used)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    paths = [p for m in (args.models or ["default"]) for p in bundle_paths(m)]
    if not args.models:
        paths = paths[:3]
    if not paths:
        print("no models found", file=sys.stderr)
        return 2
    y = signal(args.clip)
    print(f"3-s clip, one thread, median of {args.repeats} (ms)")
    print(f"{'model':<40} {'chain: torch':>12} {'onnx':>8} {'net: torch':>11} {'onnx':>8}  ok")
    ok_all = True
    with tempfile.TemporaryDirectory() as tmp:
        for path in paths:
            bundle = load_bundle(path)
            waveform = bundle.input_space == "fs2" and not bundle.card.speaker_normalised \
                and bundle.card.features.fs2_norm == "none"
            export_onnx(bundle, Path(tmp) / "m.onnx", waveform=waveform)
            pred = Predictor(bundle)
            feats = clip_features(y, cfg=bundle.card.features,
                                  spaces=spaces_for(bundle.input_space))
            inputs = model_inputs({k: v[None] for k, v in feats.items()},
                                  bundle.input_space, bundle.normalisation)

            def net_torch(inputs=inputs, model=bundle.model):
                with torch.inference_mode():
                    torch.softmax(model(*inputs), dim=1)

            net = OnnxModel(Path(tmp) / "m.onnx")
            arrays = [x.numpy() for x in inputs]
            t_chain = timed(lambda pred=pred: pred.predict_samples(y, config.SAMPLE_RATE),
                            args.repeats)
            o_chain = float("nan")
            if waveform:
                wave = OnnxModel(Path(tmp) / "m.waveform.onnx")
                o_chain = timed(lambda wave=wave: wave(y[None]), args.repeats)
            t_net = timed(net_torch, args.repeats)
            o_net = timed(lambda net=net, arrays=arrays: net(*arrays), args.repeats)
            ok = o_net <= t_net and (not waveform or o_chain <= t_chain)
            ok_all &= ok
            print(f"{bundle.name:<40} {t_chain:>12.2f} {o_chain:>8.2f} {t_net:>11.2f} "
                  f"{o_net:>8.2f}  {'yes' if ok else 'NO'}", flush=True)
    print("target ONNX ≤ PyTorch: " + ("met" if ok_all else "NOT met"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
