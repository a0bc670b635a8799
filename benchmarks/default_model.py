"""The Predict page's default model set (``models/default.json``): what it scores, what it costs.

    python benchmarks/default_model.py [--corpus tess=/data/tess ...] [--repeats 20]

Prints, for each member and for the average of their probabilities (what the page shows)
when there are several:

- validation and test UAR / accuracy from the stored per-clip predictions, per corpus of
  the models' split (CREMA-D alone for CREMA-D models; each pooled corpus's held-out
  speakers, and the pool, for a general model), each member temperature-scaled with its
  calibration before averaging, as on the page; members of different splits (a general
  and a CREMA-D model) are all scored on the held-out clips they share;
- with ``--corpus``: UAR and the most-predicted share on each corpus none of them heard
  (`ser.crosscorpus.score_average`, every six-emotion clip scored); a corpus a member
  trained on is skipped (its training clips would be scored);
- latency for a 3-s clip, decoded samples to probabilities, one torch thread, median of
  ``--repeats``: the members one after the other sharing one feature pass, as the page
  scores them (#16's target for the default: ≤ 20 ms).
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
from ser.ensemble import default_models, scaled_probs, shared_clips  # noqa: E402
from ser.metrics import classification_metrics  # noqa: E402
from ser.zoo import shipped_models  # noqa: E402

PARTS = {"validation": "val", "test": "test"}


def part_scores(names: list[str], part: str) -> list[tuple[str, str, float, float, int]]:
    """Each member and (for several) their average on the stored ``part`` predictions,
    temperature-scaled as the page does (`ser.ensemble.scaled_probs`): one row
    ``(label, corpus, UAR, accuracy, n)`` per corpus of the split, and one for the whole
    part (corpus "pooled") when it holds several corpora. Members of different splits (a
    pooled and a CREMA-D model) are all scored on the held-out clips they share."""
    by_name = {e.name: e for e in shipped_models()}
    members = [by_name[n] for n in names]
    frames = [m.predictions(part) for m in members]
    if any(f is None for f in frames):
        return []
    if len(frames) > 1:
        frames = shared_clips(frames, "validation" if part == "val" else "test")
    y = frames[0]["true"].map({lab: i for i, lab in enumerate(config.LABELS)}).to_numpy()
    probs = scaled_probs(members, frames)
    corpora = frames[0]["corpus"].astype(str).to_numpy() if "corpus" in frames[0] else None
    sets = [(n, [p]) for n, p in zip(names, probs)] + (
        [(f"average of {len(names)}", probs)] if len(names) > 1 else [])
    groups = ([("pooled", np.ones(len(y), bool))] if corpora is None else
              [(c, corpora == c) for c in dict.fromkeys(corpora)])
    if corpora is not None and len(groups) > 1:
        groups.append(("pooled", np.ones(len(y), bool)))
    rows = []
    for label, ps in sets:
        avg = np.mean(ps, axis=0)
        for corpus, mask in groups:
            m = classification_metrics(y[mask], avg[mask])
            rows.append((label, corpus, m["uar"], m["accuracy"], int(mask.sum())))
    return rows


def latency_ms(names: list[str], repeats: int, *, voice: bool = False) -> float:
    """Median ms to score a 3-s clip with every model of ``names`` on one thread. ``voice``:
    as after a calibration (10 takes of 3 s, prepared once before timing): each model
    adapted to the voice or reading the clip relative to it."""
    from ser.inference import Predictor
    from ser.speakers import VoiceProfile

    torch.set_num_threads(1)
    preds = [Predictor(config.models_dir() / n / "model.pt") for n in names]
    rng = np.random.default_rng(0)
    y = (0.1 * rng.standard_normal(3 * 16000)).astype(np.float32)
    profile = None
    if voice:
        profile = VoiceProfile()
        for _ in range(10):
            profile.add((0.1 * rng.standard_normal(3 * 16000)).astype(np.float32), 16000)
        for p in preds:  # what the page does once per voice, not per clip
            p.predict_samples(y, 16000, voice=profile)
    times = []
    for i in range(repeats + 1):
        t = time.perf_counter()
        shared: dict = {}  # as on the page: one feature pass per feature config
        for p in preds:
            p.predict_samples(y, 16000, features=shared, voice=profile)
        if i:  # the first call warms librosa up
            times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", action="append", default=[], metavar="KEY=FOLDER")
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args(argv)
    from ser.crosscorpus import parse_corpora

    try:
        corpora = parse_corpora(args.corpus)
    except ValueError as err:
        ap.error(str(err))
    names, why = default_models()
    print(f"default: {', '.join(names)}\n  ({why})")
    for part, file in PARTS.items():
        print(f"{part}: held-out speakers of the models' split (CREMA-D: the standard "
              "speaker-independent actor lists)")
        for name, corpus, uar, acc, n in part_scores(names, file):
            print(f"  {name:<40} {corpus:<8} UAR {uar:6.1%}  accuracy {acc:6.1%}  (n={n})")
    if corpora:
        from ser.bundle import load_bundle
        from ser.crosscorpus import score_average

        bundles = [load_bundle(config.models_dir() / n / "model.pt") for n in names]
        heard = {c for b in bundles for c in b.card.trained_corpora}
        for key in [k for k in corpora if k in heard]:
            print(f"  {key}: skipped — a default model trained on it (see the split above)")
            del corpora[key]
        if corpora:
            print("corpora none of them heard (every six-emotion clip):")
            for c in score_average(bundles, corpora):
                print(f"  {c.corpus:<8} UAR {c.uar:6.1%}  top {c.top_share:4.0%} "
                      f"({c.top_label})  n={c.n}")
    ms = latency_ms(names, args.repeats)
    print(f"latency, 3-s clip, 1 thread, median of {args.repeats}: {ms:.1f} ms "
          f"(target ≤ 20 ms: {'met' if ms <= 20 else 'NOT met'})")
    voice_names, _ = default_models(voice=True)
    ms = latency_ms(voice_names, args.repeats, voice=True)
    print(f"calibrated to a voice ({', '.join(voice_names)}): {ms:.1f} ms per 3-s clip, "
          "1 thread, the voice's statistics prepared once")


if __name__ == "__main__":
    main()
