"""Can the corpus still be read from a model's embedding?

    python benchmarks/corpus_probe.py MODEL [MODEL ...] --held-out savee
                                      [--data ../shared/datasets] [--per 200]

For each MODEL (a shipped name, a model folder or a .pt bundle) the clips of the training
corpora of a leave-one-corpus-out run (CREMA-D, TESS, SAVEE, EMOVO, URDU without
``--held-out``; ``--per`` six-emotion clips of each, seeded) go through the model; the input
of its last linear layer (the embedding the emotion is read from; `ser.adversary`) is
kept, and a logistic regression (standardised inputs, 5-fold cross-validation) learns to
name each clip's corpus from it. Near chance (1 / the number of corpora): the embedding
hides the corpus, as corpus-adversarial training (``--adversary``) intends; near 100 %:
the corpus is there for any later layer to use.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser.adversary import classifier_layer  # noqa: E402
from ser.config import LABELS  # noqa: E402
from ser.corpora import load_corpus  # noqa: E402
from ser.dataset import featurise  # noqa: E402
from ser.names import bundle_files  # noqa: E402
from ser.splits import corpus_ids  # noqa: E402

CORPORA = ("crema-d", "tess", "savee", "emovo", "urdu")


def embeddings(bundle, clips: pd.DataFrame) -> np.ndarray:
    """The input of the model's last linear layer for every clip (eval mode)."""
    import torch

    inputs = featurise(bundle.card, clips)
    layer = classifier_layer(bundle.model, len(LABELS))
    kept: list[torch.Tensor] = []
    hook = layer.register_forward_pre_hook(lambda _m, args: kept.append(args[0].detach()))
    try:
        with torch.no_grad():
            for i in range(0, len(clips), 128):
                bundle.model(*[x[i:i + 128] for x in inputs])
    finally:
        hook.remove()
    return torch.cat(kept).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--held-out", required=True, choices=CORPORA,
                    help="the corpus the models never heard (left out of the probe)")
    ap.add_argument("--data", default="../shared/datasets")
    ap.add_argument("--per", type=int, default=200, help="clips per corpus")
    args = ap.parse_args()

    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ser.bundle import load_bundle

    torch.set_num_threads(1)
    names = [c for c in CORPORA if c != args.held_out]
    m = load_corpus(",".join(f"{c}={Path(args.data) / c}" for c in names)).manifest
    m = m[m["emotion"].isin(LABELS)]
    clips = pd.concat([g.sample(min(args.per, len(g)), random_state=0)
                       for _, g in m.groupby(corpus_ids(m))])
    corpus = corpus_ids(clips)
    print(f"{len(clips)} clips: {', '.join(sorted(set(corpus)))} (chance "
          f"{100 / len(set(corpus)):.0f} %); logistic regression, 5-fold")
    for name in args.models:
        for path in bundle_files(name) or [Path(name)]:
            b = load_bundle(path)
            e = embeddings(b, clips)
            probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
            acc = cross_val_score(probe, e, corpus, cv=5)
            print(f"{b.name}: corpus named from the {e.shape[1]}-d embedding on "
                  f"{100 * acc.mean():.1f} % ± {100 * acc.std():.1f} of the clips")


if __name__ == "__main__":
    main()
