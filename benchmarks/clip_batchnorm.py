"""BatchNorm statistics from the clip itself: does moving a network's BatchNorm statistics
towards those of the one clip it scores help on voices it never heard?

    python benchmarks/clip_batchnorm.py MODEL --corpus tess=/data/tess [--corpus ...] \
        [--weights 0.1,0.25,0.5]

Calibrating to a voice moves a BatchNorm model's statistics halfway towards those of the
visitor's takes (`ser.training.adapt_batchnorm`, README *BatchNorm statistics and the
offset*). Without takes, the only statistics at hand are the scored clip's own: every
layer's per-channel mean and variance measured over that clip's time and frequency, given
the share W against the trained ones (a per-utterance normalisation inside the network,
where the input-level one failed). Each clip is scored by its own adapted copy. Prints UAR
and the most-predicted label's share per corpus and weight, on the clips
`ser.crosscorpus.scored_clips` names (a corpus the model heard on its held-out speakers
only, any other whole). Measured and not adopted (README, *Voices from other corpora*).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rescore import arguments, table  # noqa: E402

from ser.dataset import Inputs, input_lengths, predict_proba  # noqa: E402
from ser.training import adapt_batchnorm  # noqa: E402


def one(inputs: Inputs, i: int) -> Inputs:
    """The model inputs of clip ``i`` alone."""
    lengths = input_lengths(inputs)
    return Inputs([x[i:i + 1] for x in inputs], None if lengths is None else lengths[i:i + 1])


def clip_adapted(model: torch.nn.Module, inputs: Inputs, weight: float) -> np.ndarray:
    """Probabilities of every clip, each from a copy of ``model`` whose BatchNorm statistics
    moved towards that clip's own by ``weight``."""
    n = len(inputs[0])
    return np.concatenate([predict_proba(adapt_batchnorm(model, one(inputs, i), weight),
                                         one(inputs, i)) for i in range(n)])


def main(argv=None) -> int:
    ap, name, weights, corpora, bundle = arguments(
        __doc__, "a shipped name, a folder or a .pt file (a BatchNorm model)", "--weights",
        "0.1,0.25,0.5", "the clip's share of the statistics, comma-separated (0–1]",
        lambda w: 0 < w <= 1, "lie in (0, 1]: the clip's share of the BatchNorm statistics",
        argv)
    if bundle.card.speaker_normalised:
        ap.error(f"{name} is speaker-normalised: it reads clips relative to a voice's takes")
    if not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
               for m in bundle.model.modules()):
        ap.error(f"{name} has no BatchNorm layer: there are no statistics to move")
    print(f"{bundle.card.name or name}: UAR (most-predicted share) with each clip's own "
          "BatchNorm statistics at share W")
    table(bundle, corpora, ["as is", *(f"W = {w:g}" for w in weights)],
          lambda x: [predict_proba(bundle.model, x),
                     *(clip_adapted(bundle.model, x, w) for w in weights)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
