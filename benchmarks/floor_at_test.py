"""A log-mel floor at prediction time: does clipping each image at D dB below its peak help a
model on voices it never heard?

    python benchmarks/floor_at_test.py MODEL --corpus tess=/data/tess [--corpus ...] \
        [--floors 30,40,50,60]

A random-floor model (``--random-floor 30``) saw every training image clipped at its own
floor between -30 and -80 dB re its peak, so an image clipped at any of those floors is
familiar to it; the Predict page keeps the full -80 dB range. This re-scores the model with
every image clipped at each of ``--floors`` (and with the average of the log-probabilities
over all of them, "mean of all"), on the clips `ser.crosscorpus.scored_clips` names: a
corpus the model heard on its held-out speakers only, any other corpus whole. Prints UAR
and the most-predicted label's share per corpus and floor. The floor was measured and not
adopted (README, *Voices from other corpora*).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rescore import arguments, table  # noqa: E402

from ser.dataset import Inputs, predict_proba, spaces_for  # noqa: E402


def floored(inputs: Inputs, position: int, mean: np.ndarray, std: np.ndarray,
            floor_db: float) -> Inputs:
    """``inputs`` with the standardised log-mel images clipped at ``floor_db`` dB below each
    clip's peak (FS2 is in dB re the clip's maximum; standardised per band)."""
    z = torch.as_tensor((-floor_db - mean) / std, dtype=torch.float32)[None, None, :, None]
    tensors = list(inputs)
    tensors[position] = torch.maximum(tensors[position], z)
    return Inputs(tensors, getattr(inputs, "lengths", None))


def main(argv=None) -> int:
    ap, name, floors, corpora, bundle = arguments(
        __doc__, "a shipped name, a folder or a .pt file (2D models)", "--floors",
        "30,40,50,60", "dB below each clip's peak, comma-separated (10–79)",
        lambda f: 10 <= f < 80, "lie between 10 and 79 dB below the peak", argv)
    card = bundle.card
    if card.speaker_normalised or card.features.fs2_norm != "none" or \
            "fs2" not in card.input_space:
        ap.error(f"{name} does not read globally standardised log-mel images")
    stats = card.normalisation_arrays()["fs2"]
    mean, std = np.asarray(stats["mean"]), np.asarray(stats["std"])
    position = spaces_for(card.input_space).index("fs2")
    print(f"{card.name or name}: UAR (most-predicted share) with each image clipped at "
          "D dB below its peak")

    def variants(x: Inputs) -> list[np.ndarray]:
        probs = [predict_proba(bundle.model, x)]
        probs += [predict_proba(bundle.model, floored(x, position, mean, std, f))
                  for f in floors]
        probs.append(np.exp(np.mean([np.log(np.clip(p, 1e-12, None)) for p in probs], 0)))
        return probs

    table(bundle, corpora, ["as is", *(f"{f:g} dB" for f in floors), "mean of all"], variants)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
