"""Feature extraction speed on a real corpus: SER Studio's batch path vs a seed-style loop.

    python benchmarks/features.py [CORPUS_DIR] [--sample 100]

Measures, on this machine:
1. cold: FS1 + FS2 for every clip, plus a noise-augmented copy of the training clips of the
   speaker-independent split (the training set the seeds build), into an empty cache;
2. cached: the same call again, reading every array fully; then the same lookup as a new
   process makes it (each clip's bytes hashed for its cache key, arrays memory-mapped);
3. seed-style: `librosa.load` at its default rate and each feature function called on its
   own (its own STFT each), one clip at a time, on a sample of clips, scaled to the same
   number of extractions.
Prints the figures and the speed-up. Default corpus: ../shared/datasets/crema-d.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser.augment import AugmentConfig  # noqa: E402
from ser.corpora import load_corpus  # noqa: E402
from ser.parallel import cpu_count  # noqa: E402
from ser.splits import speaker_independent  # noqa: E402
from ser.store import FeatureStore  # noqa: E402


def seed_style(path: str, noise: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """What the Keras notebook does per clip: reload, then one STFT per feature."""
    import librosa

    data, sr = librosa.load(path)
    if noise:
        data = data + 0.01 * np.random.default_rng(0).standard_normal(len(data))
    kw = dict(n_fft=2048, hop_length=512)
    parts = [
        librosa.feature.zero_crossing_rate(y=data, frame_length=2048, hop_length=512),
        librosa.feature.rms(y=data, frame_length=2048, hop_length=512),
        librosa.feature.mfcc(y=data, sr=sr, **kw),
        librosa.feature.chroma_stft(y=data, sr=sr, **kw),
        librosa.feature.spectral_contrast(y=data, sr=sr, **kw),
        librosa.feature.melspectrogram(y=data, sr=sr, **kw),
    ]
    v = np.concatenate([p.mean(axis=1) for p in parts])
    mel = librosa.power_to_db(librosa.feature.melspectrogram(y=data, sr=sr, **kw), ref=np.max)
    return v, mel


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus", nargs="?", default=str(Path(__file__).resolve().parents[2] /
                                                     "shared/datasets/crema-d"))
    ap.add_argument("--sample", type=int, default=100)
    args = ap.parse_args()
    corpus = load_corpus(args.corpus)
    m = corpus.manifest
    split = speaker_independent(m)
    paths = list(m["path"])
    train_paths = [paths[i] for i in split.train]
    n_total = len(paths) + len(train_paths)
    print(f"corpus: {corpus.label}; {len(paths):,} clips + {len(train_paths):,} noise-augmented "
          f"training copies = {n_total:,} extractions; {cpu_count()} cores")

    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        t = time.perf_counter()
        store = FeatureStore(cache / "features")
        store.with_copies(paths, train_paths, augment=AugmentConfig(noise=True))
        cold = time.perf_counter() - t
        t = time.perf_counter()
        a = store.features(paths)
        b = store.augmented(train_paths, AugmentConfig(noise=True))
        total = sum(float(np.asarray(x[s]).sum()) for x in (a, b) for s in x)  # read it all
        cached = time.perf_counter() - t
        from ser import fileio

        fileio._DIGESTS.clear()  # as in a new process: every clip's bytes hashed again
        t = time.perf_counter()
        FeatureStore(cache / "features").features(paths)
        FeatureStore(cache / "features").augmented(train_paths, AugmentConfig(noise=True))
        fresh = time.perf_counter() - t
        size = sum(f.stat().st_size for f in cache.rglob("*.npy")) / 2**30
    print(f"SER Studio cold:   {cold:8.1f} s  ({cold / n_total * 1000:.1f} ms per extraction)")
    print(f"SER Studio cached: {cached:8.2f} s  (every array read; {size:.2f} GiB; "
          f"checksum {total:.3g})")
    print(f"cached, new process: {fresh:6.2f} s  (clips' content digests computed once, "
          "arrays memory-mapped)")

    rng = np.random.default_rng(0)
    sample = [paths[i] for i in rng.choice(len(paths), size=min(args.sample, len(paths)),
                                           replace=False)]
    seed_style(sample[0])  # warm-up (imports, numba)
    t = time.perf_counter()
    for p in sample:
        seed_style(p)
    per = (time.perf_counter() - t) / len(sample)
    scaled = per * n_total
    print(f"seed-style loop:   {per * 1000:8.1f} ms per clip on {len(sample)} clips → "
          f"{scaled:.0f} s scaled to {n_total:,} extractions")
    print(f"speed-up (seed-style / SER Studio cold): {scaled / cold:.1f}×  (target ≥ 10×)")
    print(f"cached reload within 2 s: {'yes' if cached <= 2 else 'no'}")
    os.environ.pop("SER_CACHE_DIR", None)


if __name__ == "__main__":
    main()
